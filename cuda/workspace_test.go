package cuda

import (
	"testing"

	"github.com/briefapp/brief/inference"
)

// TestAttnWorkspaceCoversPlans: the split workspace sized at open holds
// every step size's plan, on GPUs of several multiprocessor counts (an
// A100 has 108, an H100 or H200 132).
func TestAttnWorkspaceCoversPlans(t *testing.T) {
	cfg := inference.Config{Heads: 32, KVHeads: 8, HeadDim: 128, SlidingWindow: 4096}
	for _, sms := range []int{46, 84, 108, 114, 128, 132, 144} {
		e := &Engine{cfg: cfg, chunk: 512, cap: 4096 + 512 + 1, d: &device{sms: sms}}
		acc, ml := e.attnWorkspace()
		for T := 1; T <= e.chunk; T++ {
			p := e.attnPlan(T)
			rows := int64(p.splits) * int64(T) * int64(cfg.Heads)
			if rows*int64(cfg.HeadDim)*4 > acc || rows*2*4 > ml {
				t.Fatalf("%d SMs, %d tokens: %d splits need %d rows, the workspace holds %d", sms, T, p.splits, rows, acc/int64(cfg.HeadDim*4))
			}
		}
	}
}
