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
	// TestWg12SameBits relies on the small models' q|k|v taking blocks of
	// 12 at their chunks (96 and 48 stripes: one round either way).
	for _, small := range []*awqPacked{{In: 1024, Out: 1536, Group: 128}, {In: 512, Out: 768, Group: 128}} {
		for _, T := range []int{512, 188, 130} {
			l := awqWgmmaPlan(awqGemmEpiPlan(small, T, 90, epiRope), small, T)
			if got := awqWg12Plan(l, small, T, 132); got.Kernel != "awq_gemm_wg12_g128_rope" {
				t.Errorf("q|k|v out %d, %d tokens: %s, want blocks of 12", small.Out, T, got.Kernel)
			}
		}
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
// blocks of 12 at every chunk size), with awq_gemm_wg's kernels (gemmXP off).
func TestWg12SameBits(t *testing.T) {
	wgDevice(t)
	knobSameSteps(t, 61, "blocks of 12", "blocks of 16", func(t *testing.T, m *inference.Model, opts Options, on bool) *Engine {
		defer noGemmXP()()
		return withKnob(t, m, opts, "gemmWg12", &gemmWg12, on, func(e *Engine) bool { return e.gemmWg12 })
	})
}
