package cuda

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/briefapp/brief/inference"
)

// Tests of the wgmma prefill GEMM (awq_gemm_wg.sm90a.cu; awq.go:
// gemmWgmma). The kernel tests need an sm_90 GPU and skip elsewhere;
// TestAWQWgmmaPlan runs anywhere.

// wgDevice is testDevice on an sm_90 GPU whose driver compiled the wgmma
// kernels; it skips on other chips and fails where the compile failed.
func wgDevice(t *testing.T) *device {
	t.Helper()
	return sm90Device(t, "awq_gemm_wg_g128")
}

// sm90Device is the test GPU where it is sm_90 and the driver compiled
// kernel (one of the PTX modules'); other GPUs skip.
func sm90Device(t *testing.T, kernel string) *device {
	t.Helper()
	d := testDevice(t)
	if d.cc != 90 {
		t.Skipf("%s is sm_90 only; this GPU is sm_%d", kernel, d.cc)
	}
	if !d.hasKernel(kernel) {
		t.Fatalf("the driver did not compile %s: %v", kernel, d.jitErr)
	}
	return d
}

// sm90Bench opens device 0 for a benchmark of sm_90 kernels, on this
// goroutine's thread (locked until done), and skips where kernel is not
// there; done closes the device.
func sm90Bench(b *testing.B, kernel string) (d *device, done func()) {
	b.Helper()
	runtime.LockOSThread()
	d, err := openDevice(0)
	if err != nil {
		runtime.UnlockOSThread()
		if errors.Is(err, ErrNoGPU) {
			b.Skip(err.Error())
		}
		b.Fatal(err)
	}
	done = func() {
		d.close()
		runtime.UnlockOSThread()
	}
	if d.cc != 90 || !d.hasKernel(kernel) {
		done()
		b.Skipf("no %s on sm_%d: %v", kernel, d.cc, d.jitErr)
	}
	return d, done
}

func TestAWQWgmmaPlan(t *testing.T) {
	p := &awqPacked{In: 4096, Out: 6144 + 8, Group: 128} // 385 stripes
	for _, epi := range []string{"", epiSilu, epiRope} {
		want := awqLaunch{
			Kernel: "awq_gemm_wg_g128" + epi,
			Grid:   [3]uint32{25, 5, 1}, // 300 tokens
			Block:  [3]uint32{512, 1, 1},
			Shared: 5*64*128 + 1024, // five x stages
		}
		for _, base := range []string{"awq_gemm_g128", "awq_gemm_small_g128"} {
			if got := awqWgmmaPlan(awqLaunch{Kernel: base + epi}, p, 300); got != want {
				t.Errorf("%s%s: %+v, want %+v", base, epi, got, want)
			}
		}
	}
	checkPlanKeeps(t, p, awqWgmmaPlan)
}

// checkPlanKeeps: move leaves alone what no wgmma kernel takes (the
// mat-vec, other groups, steps the mat-vec takes, no launch) for p.
func checkPlanKeeps(t *testing.T, p *awqPacked, move planMove) {
	t.Helper()
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
		if got := move(tc.base, tc.p, tc.tokens); got != tc.base {
			t.Errorf("%q (group %d, %d tokens) became %+v", tc.base.Kernel, tc.p.Group, tc.tokens, got)
		}
	}
}

// wgKernelShapes: OpenHermes' four linears at their sizes, and small ones
// whose stripes do not fill the last block (200 and 136 outputs).
var wgKernelShapes = []struct{ in, out int }{{4096, 6144}, {4096, 4096}, {14336, 4096}, {1024, 200}, {256, 136}}

// wgKernelTokens: the smallest GEMM step, ragged and whole tiles of both
// sizes, and the default prefill chunk.
var wgKernelTokens = []int{17, 64, 100, 128, 130, 512}

// TestGemmWgmmaMatches: the wgmma GEMM writes every output, bit for bit
// the mma.sync GEMM's (awqPlan): the same fp16 operands, fp32 sums over the
// same k-steps in the same order.
func TestGemmWgmmaMatches(t *testing.T) {
	checkGemmMatches(t, wgDevice(t), rand.New(rand.NewPCG(91, 92)), awqWgmmaPlan)
}

// checkGemmMatches runs the launches move makes of awqPlan's GEMMs on
// wgKernelShapes and wgKernelTokens, and compares every output with the
// mma.sync GEMM's, bit for bit.
func checkGemmMatches(t *testing.T, d *device, rng *rand.Rand, move planMove) {
	maxT := slices.Max(wgKernelTokens)
	for _, sh := range wgKernelShapes {
		t.Run(fmt.Sprintf("%+v", sh), func(t *testing.T) {
			d.bind(t)
			p, err := packAWQ(randomAWQ(rng, sh.in, sh.out, 128))
			if err != nil {
				t.Fatal(err)
			}
			w := d.upRaw(t, p.Bytes)
			x := d.upHalf(t, randHalves(rng, maxT*sh.in, -1, 1))
			for _, T := range wgKernelTokens {
				y0, y1 := d.mustAlloc(t, 2*T*sh.out), d.mustAlloc(t, 2*T*sh.out)
				awqLaunchTest(t, d, awqPlan(&p, T, d.cc), w, x, y0, T, sh.in, sh.out)
				l := move(awqPlan(&p, T, d.cc), &p, T)
				awqLaunchTest(t, d, l, w, x, y1, T, sh.in, sh.out)
				ref, got := d.downRaw(t, y0, 2*T*sh.out), d.downRaw(t, y1, 2*T*sh.out)
				what := fmt.Sprintf("%d tokens, %s", T, l.Kernel)
				if i := poisoned(got); i >= 0 {
					t.Fatalf("%s: token %d output %d was never written", what, i/sh.out, i%sh.out)
				}
				if i := firstDiff(ref, got); i >= 0 {
					e := i / 2
					t.Fatalf("%s: token %d output %d: 0x%04x, mma.sync GEMM 0x%04x", what, e/sh.out, e%sh.out, u16(got, i), u16(ref, i))
				}
			}
		})
	}
}

// TestGemmWgmmaEpilogues: the wgmma kernels' fused epilogues write, bit for
// bit, what the wgmma GEMM followed by silu_mul_perm or rope_append_perm
// writes (and, for SiLU, the plain packing's GEMM and silu_mul): the
// mma.sync GEMM's epilogue tests run on the wgmma kernels.
func TestGemmWgmmaEpilogues(t *testing.T) {
	d := wgDevice(t)
	rng := rand.New(rand.NewPCG(93, 94))
	t.Run("silu", func(t *testing.T) { checkGemmSiluEpilogue(t, d, rng, wgKernelTokens, awqWgmmaPlan) })
	t.Run("rope", func(t *testing.T) { checkGemmRopeEpilogue(t, d, rng, wgKernelTokens, awqWgmmaPlan) })
}

// withGemmWgmma opens an engine with the knob set, and checks that it took
// the path the knob asks for; with the knob on, its prefill GEMMs are
// awq_gemm_wg's (not awq_gemm_xp's, which TestGemmXpEngine compares with
// these).
func withGemmWgmma(t *testing.T, m *inference.Model, opts Options, on bool) *Engine {
	t.Helper()
	defer noGemmXP()()
	return withKnob(t, m, opts, "gemmWgmma", &gemmWgmma, on, func(e *Engine) bool { return e.gemmWgmma })
}

// TestGemmWgmmaEngine: on sm_90 the engine takes the wgmma GEMM for its
// prefill chunks, and a script of prefills, decodes and verify steps gives
// the logits of the mma.sync GEMM bit for bit.
func TestGemmWgmmaEngine(t *testing.T) {
	wgDevice(t)
	knobSameSteps(t, 44, "wgmma GEMM", "mma.sync GEMM", withGemmWgmma)
}

// knobSameSteps runs stepScript on the "small" and "hd64" models (group 128,
// model seed seed, prompt from seed+1) with prefill chunks of 512 and 130,
// on engines open gives with a knob off and on, and checks every logit bit
// for bit (on names the knob's path in messages, off the other).
func knobSameSteps(t *testing.T, seed uint64, on, off string, open func(*testing.T, *inference.Model, Options, bool) *Engine) {
	t.Helper()
	for _, name := range []string{"small", "hd64"} {
		m := ropeModel(t, name, seed)
		rng := rand.New(rand.NewPCG(seed+1, seed+2))
		prompt := make([]int, 700)
		for i := range prompt {
			prompt[i] = rng.IntN(m.Config.Vocab)
		}
		for _, opts := range []Options{{}, {Chunk: 130}} {
			t.Run(fmt.Sprintf("%s chunk %d", name, opts.Chunk), func(t *testing.T) {
				var runs [2][][]float32
				for i, knob := range []bool{false, true} {
					e := open(t, m, opts, knob)
					runs[i] = stepScript(t, e, prompt, []int{17, 300}, 10, []int{11, 16, 1, 3})
					e.Close()
				}
				sameSteps(t, runs[1], runs[0], on, off)
			})
		}
	}
}

// TestLookupMatchesGreedyGemmWgmma: with the wgmma GEMM, greedy ids equal
// those without it, and prompt lookup's equal greedy's.
func TestLookupMatchesGreedyGemmWgmma(t *testing.T) {
	wgDevice(t)
	m := synthModel(t, "small", 5)
	knobKeepsGreedy(t, "the wgmma GEMM", m, 200, 18, func(on bool) *Engine { // one 200-token GEMM chunk
		return withGemmWgmma(t, m, Options{}, on)
	})
}

// BenchmarkGemmWgmma times the reference prompt's 6,435-token prefill on
// the synthetic 7B ($BRIEF_SYNTH_DIR, see benchModel) with the mma.sync
// GEMM and the wgmma GEMM, one engine at a time, and logs each one's
// kernel profile of a 512-token chunk at that context.
func BenchmarkGemmWgmma(b *testing.B) {
	defer func(v bool) { gemmWgmma = v }(gemmWgmma)
	defer noGemmXP()()
	benchKnobPrefill(b, "wgmma", func(on bool) { gemmWgmma = on }, func(e *Engine) bool { return e.gemmWgmma }, nil)
}

// BenchmarkGemmWgmmaKernels times each prefill GEMM kernel alone on
// OpenHermes' four linears (random group-128 weights) at 512 tokens: the
// mma.sync GEMM (awqPlan) and the wgmma GEMM, 20 launches between two
// events per sample, reported as µs per launch and TFLOP/s; where the
// driver compiled them, the x-producer kernel and its variants too.
func BenchmarkGemmWgmmaKernels(b *testing.B) {
	d, done := sm90Bench(b, "awq_gemm_wg_g128")
	defer done()
	const T = 512
	rng := rand.New(rand.NewPCG(95, 96))
	for _, sh := range []struct {
		name    string
		in, out int
	}{{"qkv", 4096, 6144}, {"o", 4096, 4096}, {"gateup", 4096, 28672}, {"down", 14336, 4096}} {
		p, err := packAWQ(randomAWQ(rng, sh.in, sh.out, 128))
		if err != nil {
			b.Fatal(err)
		}
		w, err1 := d.alloc(int64(len(p.Bytes)), "bench weights")
		x, err2 := d.alloc(int64(2*T*sh.in), "bench x")
		y, err3 := d.alloc(int64(2*T*sh.out), "bench y")
		if err := errors.Join(err1, err2, err3); err != nil {
			b.Fatal(err)
		}
		xs := make([]byte, 2*T*sh.in)
		for i := 0; i < len(xs); i += 2 {
			binary.LittleEndian.PutUint16(xs[i:], f2h(rng.Float32()*2-1))
		}
		if err := errors.Join(d.upload(w, p.Bytes), d.upload(x, xs)); err != nil {
			b.Fatal(err)
		}
		plans := map[string]awqLaunch{"mma.sync": awqPlan(&p, T, d.cc), "wgmma": awqWgmmaPlan(awqPlan(&p, T, d.cc), &p, T)}
		names := []string{"mma.sync", "wgmma"}
		if d.hasKernel(awqXpTiles[0].kernel("")) {
			for _, tile := range awqXpTiles {
				plans[xpName(tile)] = xpMove(tile)(awqPlan(&p, T, d.cc), &p, T)
				names = append(names, xpName(tile))
			}
		}
		for _, name := range names {
			benchLaunches(b, d, sh.name+"/"+name, plans[name], 2*float64(T)*float64(sh.in)*float64(sh.out), w, x, y, devPtr(0), T, sh.in, sh.out)
		}
		if err := errors.Join(d.free(w), d.free(x), d.free(y)); err != nil {
			b.Fatal(err)
		}
	}
	benchRopeKernels(b, d, rng)
}

// benchRopeKernels times the 7B's q|k|v GEMM at a 512-token chunk at
// position 6,435 packed in ropeOrder, with the plain store and with the
// fused RoPE epilogue (rotation, q to y, k and v to the caches), on each
// wgmma kernel: what the epilogue costs each.
func benchRopeKernels(b *testing.B, d *device, rng *rand.Rand) {
	const T, in, H, KV, D, pos, capacity, theta = 512, 4096, 32, 8, 128, 6435, 7000, 10000
	q, k, v := randomAWQ(rng, in, H*D, 128), randomAWQ(rng, in, KV*D, 128), randomAWQ(rng, in, KV*D, 128)
	p, err := packAWQOrder(ropeOrder(H, KV, D), q, k, v)
	if err != nil {
		b.Fatal(err)
	}
	ps := params(pos, make([]int, T))
	pb := make([]byte, 4*len(ps))
	for i, x := range ps {
		binary.LittleEndian.PutUint32(pb[4*i:], uint32(int32(x)))
	}
	kvBytes := int64(2 * KV * capacity * D)
	w, err1 := d.alloc(int64(len(p.Bytes)), "bench weights")
	x, err2 := d.alloc(int64(2*T*in), "bench x")
	y, err3 := d.alloc(int64(2*T*p.Out), "bench y")
	kc, err4 := d.alloc(kvBytes, "bench k cache")
	vc, err5 := d.alloc(kvBytes, "bench v cache")
	pp, err6 := d.alloc(int64(len(pb)), "bench params")
	if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := errors.Join(d.free(w), d.free(x), d.free(y), d.free(kc), d.free(vc), d.free(pp)); err != nil {
			b.Fatal(err)
		}
	}()
	xs := make([]byte, 2*T*in)
	for i := 0; i < len(xs); i += 2 {
		binary.LittleEndian.PutUint16(xs[i:], f2h(rng.Float32()*2-1))
	}
	if err := errors.Join(d.upload(w, p.Bytes), d.upload(x, xs), d.upload(pp, pb)); err != nil {
		b.Fatal(err)
	}
	flops := 2 * float64(T) * float64(in) * float64(p.Out)
	moves := []struct {
		name string
		move planMove
	}{
		{"wgmma", awqWgmmaPlan},
		{"wgmma12", func(base awqLaunch, p *awqPacked, tokens int) awqLaunch {
			return awqWg12Plan(awqWgmmaPlan(base, p, tokens), p, tokens, d.sms)
		}},
	}
	if d.hasKernel(awqXpTiles[0].kernel("")) {
		for _, tile := range awqXpTiles {
			moves = append(moves, struct {
				name string
				move planMove
			}{xpName(tile), xpMove(tile)})
		}
	}
	for _, m := range moves {
		l := m.move(awqPlan(&p, T, d.cc), &p, T)
		benchLaunches(b, d, "qkv_store/"+m.name, l, flops, w, x, y, devPtr(0), T, in, p.Out)
		r := m.move(awqGemmEpiPlan(&p, T, d.cc, epiRope), &p, T)
		benchLaunches(b, d, "qkv_rope/"+m.name, r, flops, w, x, y, kc, vc, pp, T, in, p.Out, H, KV, D, capacity, float32(theta))
	}
}

// benchLaunches times launch l with args, 20 launches between two events a
// sample, as sub-benchmark name of b: µs per launch, and TFLOP/s for flops
// a launch.
func benchLaunches(b *testing.B, d *device, name string, l awqLaunch, flops float64, args ...any) {
	const launches = 20
	b.Run(name, func(b *testing.B) {
		// Sub-benchmarks run on their own goroutines.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := d.makeCurrent(); err != nil {
			b.Fatal(err)
		}
		tm, err := d.newTimer()
		if err != nil {
			b.Fatal(err)
		}
		defer tm.destroy()
		var ms float64
		for b.Loop() {
			if err := d.start(tm); err != nil {
				b.Fatal(err)
			}
			for range launches {
				if err := d.launch(l.Kernel, launchShape{Grid: l.Grid, Block: l.Block, Shared: l.Shared}, "bench", args...); err != nil {
					b.Fatal(err)
				}
			}
			t, err := d.stop(tm)
			if err != nil {
				b.Fatal(err)
			}
			ms += t
		}
		us := ms * 1e3 / float64(b.N*launches)
		b.ReportMetric(us, "us/launch")
		b.ReportMetric(flops/us/1e6, "TFLOP/s")
	})
}
