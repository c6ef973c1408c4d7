package cuda

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/briefapp/brief/inference"
	"github.com/briefapp/brief/inference/synth"
)

// Tests of the fused-RoPE q|k|v mat-vec (awq.go: ropeFused). They need a
// GPU; the CPU tests of its column order and plan are in awq_test.go.

// BRIEF_ROPE_FUSED=0 turns the knob off for a whole test or benchmark run,
// so the unfused path keeps its GPU coverage (BenchmarkRopeFused compares
// the two in one process).
func init() {
	if os.Getenv("BRIEF_ROPE_FUSED") == "0" {
		ropeFused = false
		fmt.Fprintln(os.Stderr, "fused-RoPE q|k|v mat-vec off")
	}
}

// ropeKernelShapes are q|k|v shapes for the kernel tests: the 7B's and a
// head_dim-64 one.
var ropeKernelShapes = []struct{ in, heads, kvHeads, headDim int }{
	{4096, 32, 8, 128},
	{512, 4, 2, 64},
}

// ropePositions are first positions and cache sizes: from zero, across the
// ring's end, and large angles.
var ropePositions = []struct{ pos, cap int }{{0, 64}, {35, 40}, {4093, 4113}}

// downRaw copies n bytes of device memory back.
func (d *device) downRaw(t *testing.T, p devPtr, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if err := d.download(b, p); err != nil {
		t.Fatal(err)
	}
	return b
}

// upRaw uploads b to a new buffer.
func (d *device) upRaw(t *testing.T, b []byte) devPtr {
	t.Helper()
	p := d.mustAlloc(t, len(b))
	if err := d.upload(p, b); err != nil {
		t.Fatal(err)
	}
	return p
}

// ropeQKV draws a q|k|v projection and packs it both ways.
func ropeQKV(t *testing.T, rng *rand.Rand, in, H, KV, D int) (plain, perm awqPacked) {
	t.Helper()
	q, k, v := randomAWQ(rng, in, H*D, 128), randomAWQ(rng, in, KV*D, 128), randomAWQ(rng, in, KV*D, 128)
	plain, err := packAWQ(q, k, v)
	if err != nil {
		t.Fatal(err)
	}
	perm, err = packAWQOrder(ropeOrder(H, KV, D), q, k, v)
	if err != nil {
		t.Fatal(err)
	}
	return plain, perm
}

// sameRope fails t unless two paths left the same q (the first H*D columns
// of each of T rows of qkv) and the same caches, bit for bit, and checks
// that the step's q and cache slots were written (no poison left).
func sameRope(t *testing.T, d *device, what string, y0, y1, kc0, kc1, vc0, vc1 devPtr, T, out, qCols, KV, D, pos, cap int) {
	t.Helper()
	ya, yb := d.downRaw(t, y0, 2*T*out), d.downRaw(t, y1, 2*T*out)
	for tok := range T {
		a, b := ya[2*tok*out:2*(tok*out+qCols)], yb[2*tok*out:2*(tok*out+qCols)]
		if i := firstDiff(a, b); i >= 0 {
			t.Fatalf("%s: token %d q column %d: 0x%04x fused, 0x%04x unfused", what, tok, i/2, u16(b, i), u16(a, i))
		}
		if i := poisoned(a); i >= 0 {
			t.Fatalf("%s: token %d q column %d was never written", what, tok, i)
		}
	}
	for _, c := range []struct {
		name string
		a, b devPtr
	}{{"k", kc0, kc1}, {"v", vc0, vc1}} {
		a, b := d.downRaw(t, c.a, 2*KV*cap*D), d.downRaw(t, c.b, 2*KV*cap*D)
		if i := firstDiff(a, b); i >= 0 {
			e := i / 2
			t.Fatalf("%s: %s cache head %d slot %d column %d: 0x%04x fused, 0x%04x unfused", what, c.name, e/(cap*D), e/D%cap, e%D, u16(b, i&^1), u16(a, i&^1))
		}
		for tok := range T {
			for kv := range KV {
				off := 2 * (kv*cap + (pos+tok)%cap) * D
				if i := poisoned(a[off : off+2*D]); i >= 0 {
					t.Fatalf("%s: %s cache head %d position %d column %d was never written", what, c.name, kv, pos+tok, i)
				}
			}
		}
	}
}

// poisoned is the first fp16 element of b still all ones (mustAlloc's
// poison, a NaN no kernel writes), or -1.
func poisoned(b []byte) int {
	for i := 0; i+1 < len(b); i += 2 {
		if b[i] == 0xff && b[i+1] == 0xff {
			return i / 2
		}
	}
	return -1
}

// firstDiff is the byte offset of the first fp16 element where a and b
// differ, or -1.
func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i &^ 1
		}
	}
	return -1
}

// u16 is the fp16 element at byte offset i of b.
func u16(b []byte, i int) uint16 { return uint16(b[i]) | uint16(b[i+1])<<8 }

// TestRopeFusedMatchesUnfused: for 1..16 tokens at several positions, the
// fused-RoPE mat-vec on the permuted packing leaves q (in q|k|v) and the
// k and v caches bit for bit as the plain mat-vec on the plain packing
// followed by rope_append.
func TestRopeFusedMatchesUnfused(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(31, 32))
	const theta = 10000
	for _, sh := range ropeKernelShapes {
		t.Run(fmt.Sprintf("%+v", sh), func(t *testing.T) {
			d.bind(t)
			H, KV, D, in := sh.heads, sh.kvHeads, sh.headDim, sh.in
			plain, perm := ropeQKV(t, rng, in, H, KV, D)
			w0, w1 := d.upRaw(t, plain.Bytes), d.upRaw(t, perm.Bytes)
			out := plain.Out
			x := d.upHalf(t, randHalves(rng, inference.MaxVerify*in, -1, 1))
			for _, pc := range ropePositions {
				kvBytes := 2 * KV * pc.cap * D
				kc0, vc0, kc1, vc1 := d.mustAlloc(t, kvBytes), d.mustAlloc(t, kvBytes), d.mustAlloc(t, kvBytes), d.mustAlloc(t, kvBytes)
				y0, y1 := d.mustAlloc(t, 2*inference.MaxVerify*out), d.mustAlloc(t, 2*inference.MaxVerify*out)
				for T := 1; T <= inference.MaxVerify; T++ {
					pp := d.upI32(t, params(pc.pos, make([]int, T)))
					l := awqPlan(&plain, T, d.cc)
					if err := d.launch(l.Kernel, launchShape{Grid: l.Grid, Block: l.Block, Shared: l.Shared}, "test",
						w0, x, y0, devPtr(0), T, in, out); err != nil {
						t.Fatal(err)
					}
					if err := d.launch("rope_append", launchShape{Grid: [3]uint32{uint32(T), uint32(H + KV)}, Block: [3]uint32{uint32(D / 2)}}, "test",
						y0, kc0, vc0, pp, H, KV, D, pc.cap, float32(theta)); err != nil {
						t.Fatal(err)
					}
					r := awqRopePlan(&perm, T, d.cc)
					if err := d.launch(r.Kernel, launchShape{Grid: r.Grid, Block: r.Block, Shared: r.Shared}, "test",
						w1, x, y1, kc1, vc1, pp, T, in, out, H, KV, D, pc.cap, float32(theta)); err != nil {
						t.Fatal(err)
					}
					sameRope(t, d, fmt.Sprintf("%d tokens at %d, cache %d", T, pc.pos, pc.cap), y0, y1, kc0, kc1, vc0, vc1, T, out, H*D, KV, D, pc.pos, pc.cap)
				}
			}
		})
	}
}

// TestRopeAppendPermMatches: prefill-sized steps run the GEMM on the
// permuted packing and rope_append_perm; q and the caches must be those of
// the GEMM on the plain packing and rope_append, bit for bit.
func TestRopeAppendPermMatches(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(33, 34))
	const theta = 10000
	const maxT = 200
	for _, sh := range ropeKernelShapes {
		t.Run(fmt.Sprintf("%+v", sh), func(t *testing.T) {
			d.bind(t)
			H, KV, D, in := sh.heads, sh.kvHeads, sh.headDim, sh.in
			plain, perm := ropeQKV(t, rng, in, H, KV, D)
			w0, w1 := d.upRaw(t, plain.Bytes), d.upRaw(t, perm.Bytes)
			out := plain.Out
			x := d.upHalf(t, randHalves(rng, maxT*in, -1, 1))
			pc := struct{ pos, cap int }{100, 250} // 200 tokens from 100 wrap the ring
			kvBytes := 2 * KV * pc.cap * D
			kc0, vc0, kc1, vc1 := d.mustAlloc(t, kvBytes), d.mustAlloc(t, kvBytes), d.mustAlloc(t, kvBytes), d.mustAlloc(t, kvBytes)
			y0, y1 := d.mustAlloc(t, 2*maxT*out), d.mustAlloc(t, 2*maxT*out)
			for _, T := range []int{5, 17, 64, 130, maxT} {
				pp := d.upI32(t, params(pc.pos, make([]int, T)))
				rope := launchShape{Grid: [3]uint32{uint32(T), uint32(H + KV)}, Block: [3]uint32{uint32(D / 2)}}
				for _, r := range []struct {
					w, y, kc, vc devPtr
					p            *awqPacked
					kernel       string
				}{{w0, y0, kc0, vc0, &plain, "rope_append"}, {w1, y1, kc1, vc1, &perm, "rope_append_perm"}} {
					l := awqPlan(r.p, T, d.cc)
					ws := devPtr(0)
					if l.Workspace > 0 {
						ws = d.mustAlloc(t, l.Workspace)
					}
					if err := d.launch(l.Kernel, launchShape{Grid: l.Grid, Block: l.Block, Shared: l.Shared}, "test",
						r.w, x, r.y, ws, T, in, out); err != nil {
						t.Fatal(err)
					}
					if err := d.launch(r.kernel, rope, "test", r.y, r.kc, r.vc, pp, H, KV, D, pc.cap, float32(theta)); err != nil {
						t.Fatal(err)
					}
				}
				sameRope(t, d, fmt.Sprintf("%d tokens at %d", T, pc.pos), y0, y1, kc0, kc1, vc0, vc1, T, out, H*D, KV, D, pc.pos, pc.cap)
			}
		})
	}
}

// ropeEngineShapes are the models of the engine tests: the "small"
// synthetic model (head_dim 128) and a head_dim-64 one, both group 128.
var ropeEngineShapes = map[string]synth.Shape{
	"small": synth.Shapes["small"],
	"hd64": {Architecture: "MistralForCausalLM", Hidden: 512, Layers: 2, Heads: 8, KVHeads: 2, HeadDim: 64,
		Intermediate: 1024, Vocab: 32002, SlidingWindow: 128, MaxPositions: 8192, GroupSize: 128, RopeTheta: 10000, RMSNormEps: 1e-5},
}

// ropeModel writes and opens a synthetic checkpoint of one of ropeEngineShapes.
func ropeModel(t *testing.T, name string, seed uint64) *inference.Model {
	t.Helper()
	dir := t.TempDir()
	if _, err := synth.Write(dir, ropeEngineShapes[name], synth.Options{Seed: seed}); err != nil {
		t.Fatal(err)
	}
	m, err := inference.OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// withRopeFused opens an engine with the knob set to on, and checks that it
// took the path the knob asks for.
func withRopeFused(t *testing.T, m *inference.Model, opts Options, on bool) *Engine {
	t.Helper()
	return withKnob(t, m, opts, "ropeFused", &ropeFused, on, func(e *Engine) bool { return e.ropeFused })
}

// TestRopeFusedEngine: the fused-RoPE path changes which kernels run, never
// what they compute: prefill (GEMM and rope_append_perm, or the fused
// mat-vec for chunks of up to 16 tokens), decode steps through the captured
// graphs and verify steps of 11 and 16 tokens give the same logits bit for
// bit with the knob on and off, also where the KV ring wraps.
func TestRopeFusedEngine(t *testing.T) {
	for _, name := range []string{"small", "hd64"} {
		m := ropeModel(t, name, 14)
		rng := rand.New(rand.NewPCG(15, 16))
		prompt := make([]int, 700) // past the window: the ring wraps with small chunks
		for i := range prompt {
			prompt[i] = rng.IntN(m.Config.Vocab)
		}
		for _, opts := range []Options{{}, {Chunk: 16}, {Chunk: 40}} {
			t.Run(fmt.Sprintf("%s chunk %d", name, opts.Chunk), func(t *testing.T) {
				var runs [2][][]float32
				for i, on := range []bool{false, true} {
					e := withRopeFused(t, m, opts, on)
					runs[i] = stepScript(t, e, prompt, []int{9}, 20, []int{11, 16, 3})
					e.Close()
				}
				sameSteps(t, runs[1], runs[0], "fused", "unfused")
			})
		}
	}
}

// TestLookupMatchesGreedyRopeFused: with the fused-RoPE path, greedy ids
// equal those without it, and prompt lookup's equal greedy's.
func TestLookupMatchesGreedyRopeFused(t *testing.T) {
	m := synthModel(t, "small", 4)
	knobKeepsGreedy(t, "the fused-RoPE path", m, 200, 8, func(on bool) *Engine { return withRopeFused(t, m, Options{}, on) })
}

// BenchmarkRopeFused times decode and verify steps of the synthetic 7B
// ($BRIEF_SYNTH_DIR, see benchModel) after the reference prompt's 6,435
// tokens with the fused-RoPE path off and on, one engine at a time, and
// logs each one's kernel profile of a 1-token step.
func BenchmarkRopeFused(b *testing.B) {
	defer func(v bool) { ropeFused = v }(ropeFused)
	benchKnobSteps(b, "fused RoPE", func(on bool) { ropeFused = on }, func(e *Engine) bool { return e.ropeFused })
}
