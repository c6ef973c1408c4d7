package cuda

import (
	"errors"
	"fmt"
	"math/rand/v2"
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
	return sm90Device(t, awqXpTiles[0].kernel(""))
}

func TestAWQXpPlan(t *testing.T) {
	p := &awqPacked{In: 4096, Out: 6144 + 8, Group: 128} // 385 stripes: 33 blocks of 12, 49 of 8
	// Shared memory: four x stages of NT rows of 128 bytes, each consumer
	// warp's NT x 32 bytes for gemm_store_staged, 1024 to align.
	for _, epi := range []string{"", epiSilu, epiRope} {
		for _, tc := range []struct {
			tokens, sms int
			want        awqLaunch
		}{
			// 300 tokens on 132 SMs: 99 blocks of 12x128 in one round
			// (1,536), 147 of 8x128 in two (2 x 1.2 x 1,024), 132 of 12x96
			// in one (1.2 x 1,152).
			{300, 132, awqLaunch{"awq_gemm_xp_c3n96_g128" + epi, [3]uint32{4, 33, 1}, [3]uint32{512, 1, 1}, 4*96*128 + 12*96*32 + 1024, 0}},
			// On 100 SMs the 99 blocks of 12x128 are still one round.
			{300, 100, awqLaunch{"awq_gemm_xp_c3n128_g128" + epi, [3]uint32{3, 33, 1}, [3]uint32{512, 1, 1}, 4*128*128 + 12*128*32 + 1024, 0}},
			// On 160 SMs, 147 blocks of 8x128 are one round too.
			{300, 160, awqLaunch{"awq_gemm_xp_c2n128_g128" + epi, [3]uint32{3, 49, 1}, [3]uint32{384, 1, 1}, 4*128*128 + 8*128*32 + 1024, 0}},
		} {
			for _, base := range []string{"awq_gemm_g128", "awq_gemm_small_g128"} {
				if got := awqXpPlan(awqLaunch{Kernel: base + epi}, p, tc.tokens, tc.sms); got != tc.want {
					t.Errorf("%s%s, %d tokens, %d SMs: %+v, want %+v", base, epi, tc.tokens, tc.sms, got, tc.want)
				}
			}
		}
	}
	// The 7B's linears at a 512-token chunk on an H100's 132 SMs.
	for _, tc := range []struct {
		in, out int
		want    string
	}{{4096, 6144, "c3n128"}, {4096, 4096, "c2n128"}, {4096, 28672, "c3n128"}, {14336, 4096, "c2n128"}} {
		l := awqXpPlan(awqLaunch{Kernel: "awq_gemm_g128"}, &awqPacked{In: tc.in, Out: tc.out, Group: 128}, 512, 132)
		if want := "awq_gemm_xp_" + tc.want + "_g128"; l.Kernel != want {
			t.Errorf("%dx%d at 512 tokens: %s, want %s", tc.in, tc.out, l.Kernel, want)
		}
	}
	checkPlanKeeps(t, p, func(base awqLaunch, p *awqPacked, tokens int) awqLaunch { return awqXpPlan(base, p, tokens, 132) })
	if got := awqXpPlan(awqLaunch{Kernel: "awq_gemm_g128"}, p, 300, 0); got.Kernel != "awq_gemm_g128" {
		t.Errorf("with no SM count: %+v", got)
	}
}

// xpMove moves a GEMM to tile t of the x-producer kernel, whatever tile
// awqXpPlan would pick.
func xpMove(t awqXpTile) planMove {
	return func(base awqLaunch, p *awqPacked, tokens int) awqLaunch {
		l := awqWgmmaPlan(base, p, tokens)
		if l == base {
			return l
		}
		return t.launch(t.kernel(strings.TrimPrefix(l.Kernel, "awq_gemm_wg_g128")), p, tokens)
	}
}

// xpName names tile t in subtests and benchmarks.
func xpName(t awqXpTile) string { return fmt.Sprintf("xp_c%dn%d", t.cw, t.nt) }

// TestGemmXpMatches: every tile of the x-producer GEMM writes every
// output, bit for bit the mma.sync GEMM's.
func TestGemmXpMatches(t *testing.T) {
	d := xpDevice(t)
	rng := rand.New(rand.NewPCG(97, 98))
	for _, tile := range awqXpTiles {
		t.Run(xpName(tile), func(t *testing.T) { checkGemmMatches(t, d, rng, xpMove(tile)) })
	}
}

// TestGemmXpEpilogues: its fused SiLU and RoPE epilogues, as
// TestGemmWgmmaEpilogues.
func TestGemmXpEpilogues(t *testing.T) {
	d := xpDevice(t)
	rng := rand.New(rand.NewPCG(99, 100))
	for _, tile := range awqXpTiles {
		t.Run("silu "+xpName(tile), func(t *testing.T) { checkGemmSiluEpilogue(t, d, rng, wgKernelTokens, xpMove(tile)) })
		t.Run("rope "+xpName(tile), func(t *testing.T) { checkGemmRopeEpilogue(t, d, rng, wgKernelTokens, xpMove(tile)) })
	}
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

// noGemmXP turns gemmXP off until the function it returns restores it, for
// the tests of awq_gemm_wg in an engine.
func noGemmXP() func() {
	v := gemmXP
	gemmXP = false
	return func() { gemmXP = v }
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
	b, err := kernelSources.ReadFile("awq_gemm_xp.sm90a.cu")
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

// BenchmarkXpTail times gate|up's fused-SiLU GEMM at 512 tokens on the 7B
// (28,672 outputs: 600 blocks of 12x128, five rounds on 132 SMs, the last
// 55% full) against its parts: the first 25,344 outputs in 12x128 blocks
// (four whole rounds) and the other 3,328 in 8x128 (104 blocks, one round)
// or 12x128 (72). If the parts take less than the whole, a launch of the
// full rounds plus one of the rest in smaller blocks would too.
func BenchmarkXpTail(b *testing.B) {
	d, done := sm90Bench(b, awqXpTiles[0].kernel(""))
	defer done()
	const T, in = 512, 4096
	rng := rand.New(rand.NewPCG(107, 108))
	x := d.upHalf(b, randHalves(rng, T*in, -1, 1))
	for _, c := range []struct {
		out  int
		tile awqXpTile
	}{{28672, awqXpTiles[0]}, {25344, awqXpTiles[0]}, {3328, awqXpTiles[1]}, {3328, awqXpTiles[0]}} {
		p, err := packAWQ(randomAWQ(rng, in, c.out, 128))
		if err != nil {
			b.Fatal(err)
		}
		w, err1 := d.alloc(int64(len(p.Bytes)), "bench weights")
		y, err2 := d.alloc(int64(T*c.out), "bench act")
		if err := errors.Join(err1, err2, d.upload(w, p.Bytes)); err != nil {
			b.Fatal(err)
		}
		l := c.tile.launch(c.tile.kernel(epiSilu), &p, T)
		benchLaunches(b, d, fmt.Sprintf("out%d/%s", c.out, xpName(c.tile)), l, 2*float64(T)*float64(in)*float64(c.out), w, x, y, devPtr(0), T, in, c.out)
		if err := errors.Join(d.free(w), d.free(y)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkXpDepth times the 12x128 x-producer kernel alone on 128 blocks
// (6,144 outputs, 512 tokens: one round) at inputs of 1,024 to 8,192: a
// launch takes about F + M in/4096, which splits a block's time into its
// loop and its fixed part (its launch, its pipeline's fill and drain, its
// stores), paid again every round (NOTES-gemm-wgmma.md, "Session 26").
func BenchmarkXpDepth(b *testing.B) {
	d, done := sm90Bench(b, awqXpTiles[0].kernel(""))
	defer done()
	const T, out = 512, 6144
	rng := rand.New(rand.NewPCG(105, 106))
	for _, in := range []int{1024, 2048, 4096, 8192} {
		p, err := packAWQ(randomAWQ(rng, in, out, 128))
		if err != nil {
			b.Fatal(err)
		}
		w, err1 := d.alloc(int64(len(p.Bytes)), "bench weights")
		y, err2 := d.alloc(int64(2*T*out), "bench y")
		x := d.upHalf(b, randHalves(rng, T*in, -1, 1))
		if err := errors.Join(err1, err2, d.upload(w, p.Bytes)); err != nil {
			b.Fatal(err)
		}
		l := xpMove(awqXpTiles[0])(awqPlan(&p, T, d.cc), &p, T)
		benchLaunches(b, d, fmt.Sprintf("in%d", in), l, 2*float64(T)*float64(in)*float64(out), w, x, y, devPtr(0), T, in, out)
		if err := errors.Join(d.free(w), d.free(x), d.free(y)); err != nil {
			b.Fatal(err)
		}
	}
}
