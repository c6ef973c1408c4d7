package cuda

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/briefapp/brief/inference"
)

// Tests of the fused GEMM epilogues (awq.go: gemmEpilogue). They need a
// GPU; the CPU tests of the plans, names and index math are in
// gemm_epilogue_order_test.go. BRIEF_GEMM_EPILOGUE=0 (main_test.go) turns
// the knob off for a whole run.

// gemmEpiKernelTokens are prefill chunk sizes for the kernel tests: the
// smallest GEMM step, one block row, ragged block rows (small tile on the
// smaller shapes), and the default chunk (large tile).
var gemmEpiKernelTokens = []int{17, 64, 130, 512}

// planMove turns a GEMM launch into the one a kernel test runs: sameMove
// (the mma.sync GEMM) or awqWgmmaPlan (the wgmma GEMM on sm_90).
type planMove func(base awqLaunch, p *awqPacked, tokens int) awqLaunch

func sameMove(base awqLaunch, _ *awqPacked, _ int) awqLaunch { return base }

// TestGemmSiluEpilogueMatches: the fused-SiLU GEMM on gate|up packed in
// siluOrder writes, bit for bit, the activations of the plain GEMM on the
// same packing followed by silu_mul_perm (today's prefill path with
// siluFused) and of the plain GEMM on the plain packing followed by
// silu_mul, every one of them written.
func TestGemmSiluEpilogueMatches(t *testing.T) {
	checkGemmSiluEpilogue(t, testDevice(t), rand.New(rand.NewPCG(71, 72)), gemmEpiKernelTokens, sameMove)
}

// checkGemmSiluEpilogue is TestGemmSiluEpilogueMatches for the GEMM
// kernels move picks, at each step size of tokens.
func checkGemmSiluEpilogue(t *testing.T, d *device, rng *rand.Rand, tokens []int, move planMove) {
	maxT := slices.Max(tokens)
	for _, sh := range siluKernelShapes {
		t.Run(fmt.Sprintf("%+v", sh), func(t *testing.T) {
			d.bind(t)
			in, inter := sh.in, sh.inter
			plain, perm := siluGateUp(t, rng, in, inter)
			w0, w1 := d.upRaw(t, plain.Bytes), d.upRaw(t, perm.Bytes)
			out := plain.Out
			x := d.upHalf(t, randHalves(rng, maxT*in, -1, 1))
			gu := d.mustAlloc(t, 2*maxT*out)
			for _, T := range tokens {
				a0, a1, a2 := d.mustAlloc(t, 2*T*inter), d.mustAlloc(t, 2*T*inter), d.mustAlloc(t, 2*T*inter)
				awqLaunchTest(t, d, move(awqPlan(&perm, T, d.cc), &perm, T), w1, x, gu, T, in, out)
				siluLaunch(t, d, "silu_mul_perm", gu, a0, T, inter)
				awqLaunchTest(t, d, move(awqPlan(&plain, T, d.cc), &plain, T), w0, x, gu, T, in, out)
				siluLaunch(t, d, "silu_mul", gu, a2, T, inter)
				f := move(awqGemmEpiPlan(&perm, T, d.cc, epiSilu), &perm, T)
				awqLaunchTest(t, d, f, w1, x, a1, T, in, out)
				what := fmt.Sprintf("%d tokens, %s", T, f.Kernel)
				sameAct(t, d, what+" against silu_mul_perm", a0, a1, T, inter)
				sameAct(t, d, what+" against silu_mul", a2, a1, T, inter)
			}
		})
	}
}

// TestGemmRopeEpilogueMatches: the fused-RoPE GEMM on q|k|v packed in
// ropeOrder leaves q (in q|k|v) and the k and v caches bit for bit as the
// plain GEMM on the same packing followed by rope_append_perm (today's
// prefill path with ropeFused), at several first positions, also where the
// step's slots wrap around the ring.
func TestGemmRopeEpilogueMatches(t *testing.T) {
	checkGemmRopeEpilogue(t, testDevice(t), rand.New(rand.NewPCG(73, 74)), gemmEpiKernelTokens, sameMove)
}

// checkGemmRopeEpilogue is TestGemmRopeEpilogueMatches for the GEMM
// kernels move picks, at each step size of tokens.
func checkGemmRopeEpilogue(t *testing.T, d *device, rng *rand.Rand, tokens []int, move planMove) {
	const theta = 10000
	maxT := slices.Max(tokens)
	for _, sh := range ropeKernelShapes {
		t.Run(fmt.Sprintf("%+v", sh), func(t *testing.T) {
			d.bind(t)
			H, KV, D, in := sh.heads, sh.kvHeads, sh.headDim, sh.in
			_, perm := ropeQKV(t, rng, in, H, KV, D)
			w := d.upRaw(t, perm.Bytes)
			out := perm.Out
			x := d.upHalf(t, randHalves(rng, maxT*in, -1, 1))
			// A step's slots are distinct (the engine's ring holds the window
			// plus a whole chunk): cap >= maxT.
			for _, pc := range []struct{ pos, cap int }{{0, 600}, {100, 530}, {4093, 4700}} {
				kvBytes := 2 * KV * pc.cap * D
				for _, T := range tokens {
					kc0, vc0, kc1, vc1 := d.mustAlloc(t, kvBytes), d.mustAlloc(t, kvBytes), d.mustAlloc(t, kvBytes), d.mustAlloc(t, kvBytes)
					y0, y1 := d.mustAlloc(t, 2*T*out), d.mustAlloc(t, 2*T*out)
					pp := d.upI32(t, params(pc.pos, make([]int, T)))
					awqLaunchTest(t, d, move(awqPlan(&perm, T, d.cc), &perm, T), w, x, y0, T, in, out)
					if err := d.launch("rope_append_perm", launchShape{Grid: [3]uint32{uint32(T), uint32(H + KV)}, Block: [3]uint32{uint32(D / 2)}}, "test",
						y0, kc0, vc0, pp, H, KV, D, pc.cap, float32(theta)); err != nil {
						t.Fatal(err)
					}
					f := move(awqGemmEpiPlan(&perm, T, d.cc, epiRope), &perm, T)
					if f.Kernel == "" {
						t.Fatalf("no fused-RoPE GEMM for %d tokens", T)
					}
					if err := d.launch(f.Kernel, launchShape{Grid: f.Grid, Block: f.Block, Shared: f.Shared}, "test",
						w, x, y1, kc1, vc1, pp, T, in, out, H, KV, D, pc.cap, float32(theta)); err != nil {
						t.Fatal(err)
					}
					sameRope(t, d, fmt.Sprintf("%d tokens at %d, cache %d, %s", T, pc.pos, pc.cap, f.Kernel), y0, y1, kc0, kc1, vc0, vc1, T, out, H*D, KV, D, pc.pos, pc.cap)
				}
			}
		})
	}
}

// gemmEpiKnobs are the fused paths the engine tests combine with the
// GEMM epilogue knob: both (the default), SiLU only, RoPE only.
var gemmEpiKnobs = []struct{ rope, silu bool }{{true, true}, {false, true}, {true, false}}

// withGemmEpilogue opens an engine with the three knobs set, and checks
// that it took the paths they ask for (and left out the gate|up buffer
// where nothing writes it).
func withGemmEpilogue(t *testing.T, m *inference.Model, opts Options, rope, silu, on bool) *Engine {
	t.Helper()
	defer func(r, s, g bool) { ropeFused, siluFused, gemmEpilogue = r, s, g }(ropeFused, siluFused, gemmEpilogue)
	ropeFused, siluFused, gemmEpilogue = rope, silu, on
	e := testEngine(t, m, opts)
	if e.ropeFused != rope || e.siluFused != silu || e.gemmEpilogue != on {
		t.Fatalf("engine ropeFused %v siluFused %v gemmEpilogue %v with the knobs %v %v %v", e.ropeFused, e.siluFused, e.gemmEpilogue, rope, silu, on)
	}
	if (e.gu == 0) != (silu && on) {
		t.Fatalf("gate|up buffer %#x with siluFused %v gemmEpilogue %v: it is needed exactly when SiLU is not always fused", e.gu, silu, on)
	}
	return e
}

// TestGemmEpilogueEngine: the fused GEMM epilogues change which kernels
// run, never what they compute: prefills of 17, 300 and 700 tokens in
// chunks of 40, 130 and 512 (ragged last chunks, the ring wrapping past the
// window), then decode steps through the captured graphs and verify steps,
// give the same logits bit for bit with the knob on and off, for each
// combination of the fused RoPE and SiLU orders.
func TestGemmEpilogueEngine(t *testing.T) {
	for _, name := range []string{"small", "hd64"} {
		m := ropeModel(t, name, 34) // group 128: both fused orders qualify
		rng := rand.New(rand.NewPCG(35, 36))
		prompt := make([]int, 700)
		for i := range prompt {
			prompt[i] = rng.IntN(m.Config.Vocab)
		}
		for _, k := range gemmEpiKnobs {
			for _, opts := range []Options{{}, {Chunk: 40}, {Chunk: 130}} {
				t.Run(fmt.Sprintf("%s rope %v silu %v chunk %d", name, k.rope, k.silu, opts.Chunk), func(t *testing.T) {
					var runs [2][][]float32
					for i, on := range []bool{false, true} {
						e := withGemmEpilogue(t, m, opts, k.rope, k.silu, on)
						runs[i] = stepScript(t, e, prompt, []int{17, 300}, 10, []int{11, 16, 1, 3})
						e.Close()
					}
					sameSteps(t, runs[1], runs[0], "fused epilogue", "unfused")
				})
			}
		}
	}
}

// TestLookupMatchesGreedyGemmEpilogue: with the fused GEMM epilogues,
// greedy ids equal those without them, and prompt lookup's equal greedy's.
func TestLookupMatchesGreedyGemmEpilogue(t *testing.T) {
	m := synthModel(t, "small", 4)
	knobKeepsGreedy(t, "the fused GEMM epilogues", m, 200, 8, func(on bool) *Engine { // one 200-token GEMM chunk
		return withGemmEpilogue(t, m, Options{}, true, true, on)
	})
}

// BenchmarkGemmEpilogue times the reference prompt's 6,435-token prefill
// on the synthetic 7B ($BRIEF_SYNTH_DIR, see benchModel) with the fused
// GEMM epilogues off and on, one engine at a time, and logs each one's
// kernel profile of a 512-token chunk at that context.
func BenchmarkGemmEpilogue(b *testing.B) {
	defer func(v bool) { gemmEpilogue = v }(gemmEpilogue)
	benchKnobPrefill(b, "GEMM epilogues", func(on bool) { gemmEpilogue = on }, func(e *Engine) bool { return e.gemmEpilogue }, nil)
}
