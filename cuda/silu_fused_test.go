package cuda

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/briefapp/brief/inference"
)

// Tests of the fused-SiLU gate|up mat-vec (awq.go: siluFused). They need a
// GPU; the CPU tests of its column order, packing and plan are in
// silu_order_test.go. BRIEF_SILU_FUSED=0 (main_test.go) turns the knob off
// for a whole run.

// siluKernelShapes are gate|up shapes (input, intermediate) for the kernel
// tests: the 7B's, the "small" synthetic model's, and one whose plain
// packing has a stripe holding both gate and up columns (1000/8 is odd).
var siluKernelShapes = []struct{ in, inter int }{{4096, 14336}, {1024, 3584}, {512, 1000}}

// siluGateUp draws a gate|up projection and packs it both ways.
func siluGateUp(t *testing.T, rng *rand.Rand, in, inter int) (plain, perm awqPacked) {
	t.Helper()
	gate, up := randomAWQ(rng, in, inter, 128), randomAWQ(rng, in, inter, 128)
	plain, err := packAWQ(gate, up)
	if err != nil {
		t.Fatal(err)
	}
	perm, err = packAWQOrder(siluOrder(inter), gate, up)
	if err != nil {
		t.Fatal(err)
	}
	return plain, perm
}

// sameAct fails t unless two paths left the same T x inter activations, bit
// for bit, every one of them written (no poison left).
func sameAct(t *testing.T, d *device, what string, a0, a1 devPtr, T, inter int) {
	t.Helper()
	a, b := d.downRaw(t, a0, 2*T*inter), d.downRaw(t, a1, 2*T*inter)
	if i := firstDiff(a, b); i >= 0 {
		e := i / 2
		t.Fatalf("%s: token %d activation %d: 0x%04x fused, 0x%04x unfused", what, e/inter, e%inter, u16(b, i), u16(a, i))
	}
	if i := poisoned(b); i >= 0 {
		t.Fatalf("%s: token %d activation %d was never written", what, i/inter, i%inter)
	}
}

// siluLaunch launches silu_mul or silu_mul_perm on T rows of gu.
func siluLaunch(t *testing.T, d *device, kernel string, gu, act devPtr, T, inter int) {
	t.Helper()
	if err := d.launch(kernel, launchShape{Grid: [3]uint32{uint32((inter + 255) / 256), uint32(T)}, Block: [3]uint32{256}}, "test",
		gu, act, inter); err != nil {
		t.Fatal(err)
	}
}

// awqLaunchTest launches plan l of y = x W for T tokens.
func awqLaunchTest(t *testing.T, d *device, l awqLaunch, w, x, y devPtr, T, in, out int) {
	t.Helper()
	if l.Kernel == "" {
		t.Fatalf("no kernel for in %d out %d tokens %d", in, out, T)
	}
	ws := devPtr(0)
	if l.Workspace > 0 {
		ws = d.mustAlloc(t, l.Workspace)
	}
	if err := d.launch(l.Kernel, launchShape{Grid: l.Grid, Block: l.Block, Shared: l.Shared}, "test", w, x, y, ws, T, in, out); err != nil {
		t.Fatal(err)
	}
}

// TestSiluFusedMatchesUnfused: for 1..16 tokens the fused-SiLU mat-vec on
// the permuted packing writes, bit for bit, the activations of the plain
// mat-vec on the plain packing followed by silu_mul.
func TestSiluFusedMatchesUnfused(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(51, 52))
	for _, sh := range siluKernelShapes {
		t.Run(fmt.Sprintf("%+v", sh), func(t *testing.T) {
			d.bind(t)
			in, inter := sh.in, sh.inter
			plain, perm := siluGateUp(t, rng, in, inter)
			w0, w1 := d.upRaw(t, plain.Bytes), d.upRaw(t, perm.Bytes)
			out := plain.Out
			x := d.upHalf(t, randHalves(rng, inference.MaxVerify*in, -1, 1))
			gu := d.mustAlloc(t, 2*inference.MaxVerify*out)
			for T := 1; T <= inference.MaxVerify; T++ {
				a0, a1 := d.mustAlloc(t, 2*T*inter), d.mustAlloc(t, 2*T*inter)
				awqLaunchTest(t, d, awqPlan(&plain, T, d.cc), w0, x, gu, T, in, out)
				siluLaunch(t, d, "silu_mul", gu, a0, T, inter)
				awqLaunchTest(t, d, awqSiluPlan(&perm, T, d.cc), w1, x, a1, T, in, out)
				sameAct(t, d, fmt.Sprintf("%d tokens", T), a0, a1, T, inter)
			}
		})
	}
}

// TestSiluMulPermMatches: longer steps (prefill chunks) run the GEMM on the
// permuted packing and silu_mul_perm; the activations must be those of the
// GEMM on the plain packing and silu_mul, bit for bit. 5 tokens runs the
// plain mat-vec on both packings.
func TestSiluMulPermMatches(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(53, 54))
	const maxT = 200
	for _, sh := range siluKernelShapes {
		t.Run(fmt.Sprintf("%+v", sh), func(t *testing.T) {
			d.bind(t)
			in, inter := sh.in, sh.inter
			plain, perm := siluGateUp(t, rng, in, inter)
			w0, w1 := d.upRaw(t, plain.Bytes), d.upRaw(t, perm.Bytes)
			out := plain.Out
			x := d.upHalf(t, randHalves(rng, maxT*in, -1, 1))
			gu0, gu1 := d.mustAlloc(t, 2*maxT*out), d.mustAlloc(t, 2*maxT*out)
			for _, T := range []int{5, 17, 64, 130, maxT} {
				a0, a1 := d.mustAlloc(t, 2*T*inter), d.mustAlloc(t, 2*T*inter)
				awqLaunchTest(t, d, awqPlan(&plain, T, d.cc), w0, x, gu0, T, in, out)
				siluLaunch(t, d, "silu_mul", gu0, a0, T, inter)
				awqLaunchTest(t, d, awqPlan(&perm, T, d.cc), w1, x, gu1, T, in, out)
				siluLaunch(t, d, "silu_mul_perm", gu1, a1, T, inter)
				sameAct(t, d, fmt.Sprintf("%d tokens", T), a0, a1, T, inter)
			}
		})
	}
}

// withSiluFused opens an engine with the knob set to on, and checks that it
// took the path the knob asks for.
func withSiluFused(t *testing.T, m *inference.Model, opts Options, on bool) *Engine {
	t.Helper()
	return withKnob(t, m, opts, "siluFused", &siluFused, on, func(e *Engine) bool { return e.siluFused })
}

// TestSiluFusedEngine: the fused-SiLU path changes which kernels run, never
// what they compute: prefill (GEMM and silu_mul_perm, or the fused mat-vec
// for chunks of up to 16 tokens), decode steps through the captured graphs,
// verify steps of 11 and 16 tokens and one of 1 token run eagerly give the
// same logits bit for bit with the knob on and off.
func TestSiluFusedEngine(t *testing.T) {
	for _, name := range []string{"small", "hd64"} {
		m := ropeModel(t, name, 24) // group 128: both qualify
		rng := rand.New(rand.NewPCG(25, 26))
		prompt := make([]int, 700) // several chunks, past the window
		for i := range prompt {
			prompt[i] = rng.IntN(m.Config.Vocab)
		}
		for _, opts := range []Options{{}, {Chunk: 16}, {Chunk: 40}, {NoGraphs: true}} {
			t.Run(fmt.Sprintf("%s chunk %d graphs %v", name, opts.Chunk, !opts.NoGraphs), func(t *testing.T) {
				var runs [2][][]float32
				for i, on := range []bool{false, true} {
					e := withSiluFused(t, m, opts, on)
					runs[i] = stepScript(t, e, prompt, []int{9}, 20, []int{11, 16, 1, 3})
					e.Close()
				}
				sameSteps(t, runs[1], runs[0], "fused", "unfused")
			})
		}
	}
}

// TestLookupMatchesGreedySiluFused: with the fused-SiLU path, greedy ids
// equal those without it, and prompt lookup's equal greedy's.
func TestLookupMatchesGreedySiluFused(t *testing.T) {
	m := synthModel(t, "small", 4)
	knobKeepsGreedy(t, "the fused-SiLU path", m, 200, 8, func(on bool) *Engine { return withSiluFused(t, m, Options{}, on) })
}

// BenchmarkSiluFused times decode and verify steps of the synthetic 7B
// ($BRIEF_SYNTH_DIR, see benchModel) after the reference prompt's 6,435
// tokens with the fused-SiLU path off and on, one engine at a time, and
// logs each one's kernel profile of a 1-token step.
func BenchmarkSiluFused(b *testing.B) {
	defer func(v bool) { siluFused = v }(siluFused)
	benchKnobSteps(b, "fused SiLU", func(on bool) { siluFused = on }, func(e *Engine) bool { return e.siluFused })
}
