package cuda

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/briefapp/brief/inference"
)

// Tests of the wgmma prefill GEMM (awq_gemm_wg.sm90a.cu; awq.go:
// gemmWgmma). The kernel tests need an sm_90 GPU and skip elsewhere;
// TestAWQWgmmaPlan runs anywhere.

// wgTiles are the variants the kernels are built for (awqWgVariants).
var wgTiles = []string{"64", "128", "64w4", "64w4c"}

// wgDevice is testDevice on an sm_90 GPU whose driver compiled the wgmma
// kernels; it skips on other chips and fails where the compile failed.
func wgDevice(t *testing.T) *device {
	t.Helper()
	d := testDevice(t)
	if d.cc != 90 {
		t.Skipf("the wgmma GEMM is sm_90 only; this GPU is sm_%d", d.cc)
	}
	if !d.hasKernel("awq_gemm_wg128_g128") {
		t.Fatalf("the driver did not compile the wgmma kernels: %v", d.jitErr)
	}
	return d
}

// withWgTile runs f with the wgmma variant pinned to v.
func withWgTile(v string, f func()) {
	defer func(old string) { gemmWgTiled = old }(gemmWgTiled)
	gemmWgTiled = v
	f()
}

func TestAWQWgmmaPlan(t *testing.T) {
	p := &awqPacked{In: 4096, Out: 6144 + 8, Group: 128}
	for _, tc := range []struct {
		v                 string
		ntok, cols, block uint32
		stages            uint32
	}{{"64", 64, 49, 256, 4}, {"128", 128, 49, 256, 4}, {"64w4", 64, 25, 512, 4}, {"64w4c", 64, 25, 512, 6}} { // 385 stripes
		withWgTile(tc.v, func() {
			for _, epi := range []string{"", epiSilu, epiRope} {
				base := awqLaunch{Kernel: "awq_gemm_g128" + epi}
				got := awqWgmmaPlan(base, p, 300)
				want := awqLaunch{
					Kernel: fmt.Sprintf("awq_gemm_wg%s_g128%s", tc.v, epi),
					Grid:   [3]uint32{tc.cols, (300 + tc.ntok - 1) / tc.ntok, 1},
					Block:  [3]uint32{tc.block, 1, 1},
					Shared: tc.stages*tc.ntok*128 + 1024,
				}
				if got != want {
					t.Errorf("variant %s %q: %+v, want %+v", tc.v, epi, got, want)
				}
				small := awqWgmmaPlan(awqLaunch{Kernel: "awq_gemm_small_g128" + epi}, p, 40)
				if !strings.HasPrefix(small.Kernel, "awq_gemm_wg") || !strings.HasSuffix(small.Kernel, "_g128"+epi) {
					t.Errorf("small tile %q moved to %q", epi, small.Kernel)
				}
			}
		})
	}
	// What stays: the mat-vec, other groups, steps the mat-vec takes.
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
		if got := awqWgmmaPlan(tc.base, tc.p, tc.tokens); got != tc.base {
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

// TestGemmWgmmaMatches: the wgmma GEMM writes every output, each equal to
// the mma.sync GEMM's (awqPlan) or, where the tensor cores sum a k-step in
// another order, within one fp16 rounding of it; the test logs how many
// differ.
func TestGemmWgmmaMatches(t *testing.T) {
	d := wgDevice(t)
	rng := rand.New(rand.NewPCG(91, 92))
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
				y0 := d.mustAlloc(t, 2*T*sh.out)
				awqLaunchTest(t, d, awqPlan(&p, T, d.cc), w, x, y0, T, sh.in, sh.out)
				ref := d.downRaw(t, y0, 2*T*sh.out)
				for _, v := range wgTiles {
					withWgTile(v, func() {
						l := awqWgmmaPlan(awqPlan(&p, T, d.cc), &p, T)
						y1 := d.mustAlloc(t, 2*T*sh.out)
						awqLaunchTest(t, d, l, w, x, y1, T, sh.in, sh.out)
						got := d.downRaw(t, y1, 2*T*sh.out)
						what := fmt.Sprintf("%d tokens, %s", T, l.Kernel)
						if i := poisoned(got); i >= 0 {
							t.Fatalf("%s: token %d output %d was never written", what, i/sh.out, i%sh.out)
						}
						differ := 0
						for i := 0; i < len(ref); i += 2 {
							a, b := u16(ref, i), u16(got, i)
							if a == b {
								continue
							}
							differ++
							fa, fb := float64(h2f(a)), float64(h2f(b))
							if math.Abs(fa-fb) > math.Max(math.Abs(fa), math.Abs(fb))/1024 {
								t.Fatalf("%s: token %d output %d: %v, mma.sync GEMM %v", what, i/2/sh.out, i/2%sh.out, fb, fa)
							}
						}
						if differ > 0 {
							t.Logf("%s: %d of %d outputs one rounding from the mma.sync GEMM's", what, differ, len(ref)/2)
						}
					})
				}
			}
		})
	}
}

// TestGemmWgmmaEpilogues: the wgmma kernels' fused epilogues write, bit for
// bit, what the plain wgmma kernel followed by silu_mul_perm or
// rope_append_perm writes.
func TestGemmWgmmaEpilogues(t *testing.T) {
	d := wgDevice(t)
	rng := rand.New(rand.NewPCG(93, 94))
	maxT := slices.Max(wgKernelTokens)
	for _, v := range wgTiles {
		withWgTile(v, func() {
			for _, sh := range siluKernelShapes {
				t.Run(fmt.Sprintf("silu %s %+v", v, sh), func(t *testing.T) {
					d.bind(t)
					in, inter := sh.in, sh.inter
					_, perm := siluGateUp(t, rng, in, inter)
					w := d.upRaw(t, perm.Bytes)
					x := d.upHalf(t, randHalves(rng, maxT*in, -1, 1))
					gu := d.mustAlloc(t, 2*maxT*perm.Out)
					for _, T := range wgKernelTokens {
						a0, a1 := d.mustAlloc(t, 2*T*inter), d.mustAlloc(t, 2*T*inter)
						awqLaunchTest(t, d, awqWgmmaPlan(awqPlan(&perm, T, d.cc), &perm, T), w, x, gu, T, in, perm.Out)
						siluLaunch(t, d, "silu_mul_perm", gu, a0, T, inter)
						f := awqWgmmaPlan(awqGemmEpiPlan(&perm, T, d.cc, epiSilu), &perm, T)
						awqLaunchTest(t, d, f, w, x, a1, T, in, perm.Out)
						sameAct(t, d, fmt.Sprintf("%d tokens, %s", T, f.Kernel), a0, a1, T, inter)
					}
				})
			}
			for _, sh := range ropeKernelShapes {
				t.Run(fmt.Sprintf("rope %s %+v", v, sh), func(t *testing.T) {
					d.bind(t)
					const theta = 10000
					H, KV, D, in := sh.heads, sh.kvHeads, sh.headDim, sh.in
					_, perm := ropeQKV(t, rng, in, H, KV, D)
					w := d.upRaw(t, perm.Bytes)
					out := perm.Out
					x := d.upHalf(t, randHalves(rng, maxT*in, -1, 1))
					for _, pc := range []struct{ pos, cap int }{{0, 600}, {4093, 4700}} {
						kvBytes := 2 * KV * pc.cap * D
						for _, T := range wgKernelTokens {
							kc0, vc0, kc1, vc1 := d.mustAlloc(t, kvBytes), d.mustAlloc(t, kvBytes), d.mustAlloc(t, kvBytes), d.mustAlloc(t, kvBytes)
							y0, y1 := d.mustAlloc(t, 2*T*out), d.mustAlloc(t, 2*T*out)
							pp := d.upI32(t, params(pc.pos, make([]int, T)))
							awqLaunchTest(t, d, awqWgmmaPlan(awqPlan(&perm, T, d.cc), &perm, T), w, x, y0, T, in, out)
							if err := d.launch("rope_append_perm", launchShape{Grid: [3]uint32{uint32(T), uint32(H + KV)}, Block: [3]uint32{uint32(D / 2)}}, "test",
								y0, kc0, vc0, pp, H, KV, D, pc.cap, float32(theta)); err != nil {
								t.Fatal(err)
							}
							f := awqWgmmaPlan(awqGemmEpiPlan(&perm, T, d.cc, epiRope), &perm, T)
							if !strings.HasPrefix(f.Kernel, "awq_gemm_wg") {
								t.Fatalf("no wgmma fused-RoPE GEMM for %d tokens: %q", T, f.Kernel)
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
		})
	}
}

// withGemmWgmma opens an engine with the knob set, and checks that it took
// the path the knob asks for.
func withGemmWgmma(t *testing.T, m *inference.Model, opts Options, on bool) *Engine {
	t.Helper()
	return withKnob(t, m, opts, "gemmWgmma", &gemmWgmma, on, func(e *Engine) bool { return e.gemmWgmma })
}

// TestGemmWgmmaEngine: on sm_90 the engine takes the wgmma GEMM for its
// prefill chunks, and the logits of a script of prefills, decodes and
// verify steps stay those of the mma.sync GEMM (bit for bit where the
// tensor cores sum alike; the test says which).
func TestGemmWgmmaEngine(t *testing.T) {
	wgDevice(t)
	for _, name := range []string{"small", "hd64"} {
		m := ropeModel(t, name, 44) // group 128
		rng := rand.New(rand.NewPCG(45, 46))
		prompt := make([]int, 700)
		for i := range prompt {
			prompt[i] = rng.IntN(m.Config.Vocab)
		}
		for _, opts := range []Options{{}, {Chunk: 130}} {
			t.Run(fmt.Sprintf("%s chunk %d", name, opts.Chunk), func(t *testing.T) {
				var runs [2][][]float32
				for i, on := range []bool{false, true} {
					e := withGemmWgmma(t, m, opts, on)
					runs[i] = stepScript(t, e, prompt, []int{17, 300}, 10, []int{11, 16, 1, 3})
					e.Close()
				}
				closeSteps(t, runs[1], runs[0], "wgmma GEMM", "mma.sync GEMM")
			})
		}
	}
}

// closeSteps fails t unless two runs' logits agree step by step within
// 0.02 + 1% (one fp16 rounding of a prefill output, carried through the
// layers), and logs whether they are equal bit for bit.
func closeSteps(t *testing.T, got, want [][]float32, gotName, wantName string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d steps %s, %d %s", len(got), gotName, len(want), wantName)
	}
	same, worst := true, 0.0
	for s := range want {
		for j := range want[s] {
			a, b := float64(got[s][j]), float64(want[s][j])
			same = same && math.Float32bits(got[s][j]) == math.Float32bits(want[s][j])
			diff := math.Abs(a - b)
			worst = max(worst, diff)
			if !(diff <= 0.02+0.01*math.Abs(b)) {
				t.Fatalf("step %d: logit %d is %v %s, %v %s", s, j, a, gotName, b, wantName)
			}
		}
	}
	t.Logf("%s against %s: bit for bit %v, largest difference %.3g", gotName, wantName, same, worst)
}

// BenchmarkGemmWgmma times the reference prompt's 6,435-token prefill on
// the synthetic 7B ($BRIEF_SYNTH_DIR, see benchModel) with the mma.sync
// GEMM and the wgmma GEMM of each variant (only the one BRIEF_GEMM_WGMMA
// pins, if it does), one engine at a time, and logs each one's kernel
// profile of a 512-token chunk at that context.
func BenchmarkGemmWgmma(b *testing.B) {
	defer func(v bool) { gemmWgmma = v }(gemmWgmma)
	variants := wgTiles
	if gemmWgTiled != "" {
		variants = []string{gemmWgTiled}
	}
	for _, v := range variants {
		withWgTile(v, func() {
			benchKnobPrefill(b, "wgmma"+v, func(on bool) { gemmWgmma = on }, func(e *Engine) bool { return e.gemmWgmma }, nil)
		})
	}
}

// BenchmarkGemmWgmmaKernels times each prefill GEMM kernel alone on
// OpenHermes' four linears (random group-128 weights) at 512 tokens: the
// mma.sync GEMM (awqPlan) and each wgmma variant, 20 launches between two
// events per sample, reported as µs per launch and TFLOP/s.
func BenchmarkGemmWgmmaKernels(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	d, err := openDevice(0)
	if errors.Is(err, ErrNoGPU) {
		b.Skip(err.Error())
	}
	if err != nil {
		b.Fatal(err)
	}
	defer d.close()
	if d.cc != 90 || !d.hasKernel("awq_gemm_wg128_g128") {
		b.Skipf("no wgmma kernels on sm_%d: %v", d.cc, d.jitErr)
	}
	const T, launches = 512, 20
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
		plans := map[string]awqLaunch{"mma.sync": awqPlan(&p, T, d.cc)}
		for _, v := range wgTiles {
			withWgTile(v, func() { plans["wg"+v] = awqWgmmaPlan(awqPlan(&p, T, d.cc), &p, T) })
		}
		for _, name := range append([]string{"mma.sync"}, func() (s []string) {
			for _, v := range wgTiles {
				s = append(s, "wg"+v)
			}
			return
		}()...) {
			l := plans[name]
			b.Run(sh.name+"/"+name, func(b *testing.B) {
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
						if err := d.launch(l.Kernel, launchShape{Grid: l.Grid, Block: l.Block, Shared: l.Shared}, "bench", w, x, y, devPtr(0), T, sh.in, sh.out); err != nil {
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
				b.ReportMetric(2*float64(T)*float64(sh.in)*float64(sh.out)/us/1e6, "TFLOP/s")
			})
		}
		if err := errors.Join(d.free(w), d.free(x), d.free(y)); err != nil {
			b.Fatal(err)
		}
	}
}
