package cuda

import (
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/briefapp/brief/inference"
)

// Tests of the x-producer wgmma GEMM (awq_gemm_xp.sm90a.cu; awq.go:
// gemmXP). The kernel tests need an sm_90 GPU and skip elsewhere;
// TestAWQXpPlan runs anywhere.

func xpDevice(t *testing.T) *device {
	t.Helper()
	return sm90Device(t, "awq_gemm_xp_g128")
}

func TestAWQXpPlan(t *testing.T) {
	p := &awqPacked{In: 4096, Out: 6144 + 8, Group: 128} // 385 stripes
	for _, epi := range []string{"", epiSilu, epiRope} {
		want := awqLaunch{
			Kernel: "awq_gemm_xp_g128" + epi,
			Grid:   [3]uint32{3, 49, 1}, // 300 tokens, 385 stripes in blocks of 8
			Block:  [3]uint32{384, 1, 1},
			Shared: 4*128*128 + 1024,
		}
		for _, base := range []string{"awq_gemm_g128", "awq_gemm_small_g128"} {
			if got := awqXpPlan(awqLaunch{Kernel: base + epi}, p, 300); got != want {
				t.Errorf("%s%s: %+v, want %+v", base, epi, got, want)
			}
		}
	}
	for _, tc := range []struct {
		base   awqLaunch
		p      *awqPacked
		tokens int
	}{
		{awqLaunch{Kernel: "awq_gemv_g128_n1"}, p, 300},
		{awqLaunch{Kernel: "awq_gemm_g128"}, p, 16},
		{awqLaunch{Kernel: "awq_gemm_g64"}, &awqPacked{In: 4096, Out: 4096, Group: 64}, 300},
		{awqLaunch{}, p, 300},
	} {
		if got := awqXpPlan(tc.base, tc.p, tc.tokens); got != tc.base {
			t.Errorf("%q (group %d, %d tokens) became %+v", tc.base.Kernel, tc.p.Group, tc.tokens, got)
		}
	}
	v := xpVariant{cw: 3, stages: 6}
	if got := v.plan(awqLaunch{Kernel: "awq_gemm_g128"}, p, 300); got.Kernel != "awq_gemm_xp_c3s6_g128" ||
		got.Grid != [3]uint32{3, 33, 1} || got.Block[0] != 512 || got.Shared != 6*128*128+1024 {
		t.Errorf("variant c3s6: %+v", got)
	}
}

// xpVariant is one of awq_gemm_xp's plain-store variants
// (AWQ_GEMM_XP_VARIANT): cw consumer warpgroups, stages x stages.
type xpVariant struct{ cw, stages int }

var xpVariants = []xpVariant{{2, 6}, {3, 4}, {3, 6}}

func (v xpVariant) name() string { return fmt.Sprintf("c%ds%d", v.cw, v.stages) }

// plan moves a plain-store GEMM to the variant.
func (v xpVariant) plan(base awqLaunch, p *awqPacked, tokens int) awqLaunch {
	l := awqXpPlan(base, p, tokens)
	if l.Kernel != "awq_gemm_xp_g128" {
		return l
	}
	return awqXpLaunch("awq_gemm_xp_"+v.name()+"_g128", p, tokens, v.cw, v.stages)
}

// TestGemmXpMatches: the x-producer GEMM and its variants write every
// output, bit for bit the mma.sync GEMM's.
func TestGemmXpMatches(t *testing.T) {
	d := xpDevice(t)
	rng := rand.New(rand.NewPCG(97, 98))
	checkGemmMatches(t, d, rng, awqXpPlan)
	for _, v := range xpVariants {
		t.Run(v.name(), func(t *testing.T) { checkGemmMatches(t, d, rng, v.plan) })
	}
}

// TestGemmXpEpilogues: its fused SiLU and RoPE epilogues, as
// TestGemmWgmmaEpilogues.
func TestGemmXpEpilogues(t *testing.T) {
	d := xpDevice(t)
	rng := rand.New(rand.NewPCG(99, 100))
	t.Run("silu", func(t *testing.T) { checkGemmSiluEpilogue(t, d, rng, wgKernelTokens, awqXpPlan) })
	t.Run("rope", func(t *testing.T) { checkGemmRopeEpilogue(t, d, rng, wgKernelTokens, awqXpPlan) })
}

func withGemmXp(t *testing.T, m *inference.Model, opts Options, on bool) *Engine {
	t.Helper()
	return withKnob(t, m, opts, "gemmXP", &gemmXP, on, func(e *Engine) bool { return e.gemmXP })
}

// TestGemmXpEngine: an engine with the x-producer GEMM gives the logits of
// one with awq_gemm_wg's, bit for bit, over prefills, decodes and verify
// steps.
func TestGemmXpEngine(t *testing.T) {
	xpDevice(t)
	knobSameSteps(t, 46, "x-producer GEMM", "wgmma GEMM", withGemmXp)
}

// TestLookupMatchesGreedyGemmXp: with the x-producer GEMM, greedy ids
// equal those without it, and prompt lookup's equal greedy's.
func TestLookupMatchesGreedyGemmXp(t *testing.T) {
	xpDevice(t)
	m := synthModel(t, "small", 5)
	knobKeepsGreedy(t, "the x-producer GEMM", m, 200, 18, func(on bool) *Engine {
		return withGemmXp(t, m, Options{}, on)
	})
}

// BenchmarkGemmXp times the reference prompt's prefill with awq_gemm_wg's
// kernels and with the x-producer ones (see BenchmarkGemmWgmma).
func BenchmarkGemmXp(b *testing.B) {
	defer func(v bool) { gemmXP = v }(gemmXP)
	benchKnobPrefill(b, "x-producer", func(on bool) { gemmXP = on }, func(e *Engine) bool { return e.gemmXP }, nil)
}

// TestXpStageWaitsFirst: gemm_xp hands its producer warpgroup to
// xp_stage_x before its own wait (xpRule), so xp_stage_x must wait before
// anything else.
func TestXpStageWaitsFirst(t *testing.T) {
	b, err := os.ReadFile("awq_gemm_xp.sm90a.cu")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	loc := regexp.MustCompile(`__device__[^;{]*\bxp_stage_x\(`).FindStringIndex(src)
	if loc == nil {
		t.Fatal("awq_gemm_xp.sm90a.cu: no device function xp_stage_x")
	}
	body := src[loc[1]:]
	body = body[strings.IndexByte(body, '{')+1:]
	if st := statements(body[:max(matchBrace(body), 0)]); len(st) == 0 || st[0] != "grid_dep_wait();" {
		t.Errorf("xp_stage_x does not start with grid_dep_wait(): %q", st[:min(len(st), 1)])
	}
}
