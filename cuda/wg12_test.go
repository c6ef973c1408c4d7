package cuda

import (
	"testing"

	"github.com/briefapp/brief/inference"
)

// TestAWQWg12Plan: the 7B's q|k|v at a whole 512-token chunk runs in blocks
// of 12 stripes (two rounds of 12 an SM instead of two of 16 on 132 SMs);
// its last 291-token chunk (one round of 16) and everything but the
// fused-RoPE wgmma GEMM keep their launch.
func TestAWQWg12Plan(t *testing.T) {
	qkv := &awqPacked{In: 4096, Out: 6144, Group: 128}
	base := awqWgmmaPlan(awqGemmEpiPlan(qkv, 512, 90, epiRope), qkv, 512)
	got := awqWg12Plan(base, qkv, 512, 132)
	want := base
	want.Kernel, want.Grid[0], want.Block[0] = "awq_gemm_wg12_g128_rope", 32, 384
	if got != want {
		t.Errorf("512 tokens: %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		l      awqLaunch
		tokens int
	}{
		{awqWgmmaPlan(awqGemmEpiPlan(qkv, 291, 90, epiRope), qkv, 291), 291},
		{awqWgmmaPlan(awqPlan(qkv, 512, 90), qkv, 512), 512},
		{awqGemmEpiPlan(qkv, 512, 90, epiRope), 512},
		{awqPlan(qkv, 8, 90), 8},
	} {
		if got := awqWg12Plan(tc.l, qkv, tc.tokens, 132); got != tc.l {
			t.Errorf("%s, %d tokens: became %+v", tc.l.Kernel, tc.tokens, got)
		}
	}
}

// TestWg12SameBits: prefills in chunks of 512 and 130 tokens, then decode
// and verify steps, give the same logits bit for bit with q|k|v's fused-RoPE
// GEMM in blocks of 12 stripes and of 16 (the small models' q|k|v take
// blocks of 12 at every chunk size).
func TestWg12SameBits(t *testing.T) {
	wgDevice(t)
	knobSameSteps(t, 61, "blocks of 12", "blocks of 16", func(t *testing.T, m *inference.Model, opts Options, on bool) *Engine {
		return withKnob(t, m, opts, "gemmWg12", &gemmWg12, on, func(e *Engine) bool { return e.gemmWg12 })
	})
}
