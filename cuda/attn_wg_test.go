package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/briefapp/brief/inference"
)

// Tests of the wgmma prefill attention (attn_prefill_wg.sm90a.cu;
// attnplan.go: attnWgmma, prefillFamily). The plan test runs without a
// GPU; the others need an sm_90 GPU whose driver compiles the kernels.
// BRIEF_ATTN_WG=0 (main_test.go) turns the knob off for a whole run.

// attnWgDevice is the test GPU, where it runs attn_prefill_wg.
func attnWgDevice(t *testing.T) *device {
	t.Helper()
	return sm90Device(t, "attn_prefill_wg_d128")
}

// TestAttnPrefillWgPlan: an engine that took the wgmma attention plans its
// prefill chunks as attn_prefill2 would (grid, threads, splits, direct),
// only on the wgmma kernels with their shared memory; verify steps and
// other prefill kernels are untouched, and an engine without it plans
// attn_prefill2.
func TestAttnPrefillWgPlan(t *testing.T) {
	defer func(k string) { prefillKernel = k }(prefillKernel)
	for _, D := range []int{128} {
		cfg := inference.Config{Heads: 32, KVHeads: 8, HeadDim: D, SlidingWindow: 4096}
		for _, k := range []string{"attn_prefill2", "attn_prefill2q", ""} {
			prefillKernel = k
			var es [2]*Engine
			for i, wg := range []bool{false, true} {
				e := &Engine{cfg: cfg, chunk: 512, cap: cfg.SlidingWindow + 512 + 1, d: &device{sms: 132}, prefillDirect: true, attnWg: wg}
				acc, _ := e.attnWorkspace()
				e.wsRows = acc / (4 * int64(D))
				es[i] = e
			}
			for T := 1; T <= 512; T++ {
				off, on := es[0].attnPlan(T), es[1].attnPlan(T)
				want := off
				if k == "attn_prefill2" && T > inference.MaxVerify {
					want.prefill2 = "attn_prefill_wg"
					want.kernel = fmt.Sprintf("attn_prefill_wg_d%d", D)
					if off.direct {
						want.kernel = fmt.Sprintf("attn_prefill_wg_direct_d%d", D)
					}
					want.shape.Shared = uint32(5*2*64*D*2 + 1024)
				}
				if on != want {
					t.Fatalf("head dim %d, %q, %d tokens: plan %+v, want %+v", D, k, T, on, want)
				}
			}
		}
	}
}

// TestAttnPrefillWgSameBits: attn_prefill_wg_d* writes, bit for bit, the
// partials attn_prefill2_d* writes (with 1, 7 and the planned splits), and
// its direct instances attn_prefill2_direct_d*'s outputs, on chunks of 17
// to 512 tokens before, at and past the window, across the ring's wrap
// (rings down to one key tile), with query groups of 1, 3 and 4, and ragged
// row tiles (a warpgroup with some rows past the chunk).
func TestAttnPrefillWgSameBits(t *testing.T) {
	d := attnWgDevice(t)
	rng := rand.New(rand.NewPCG(131, 132))
	cases := []attnCase{
		{32, 8, 128, 17, 0, 4609, 4096},     // first chunk, ragged row tile
		{32, 8, 128, 512, 6435, 4609, 4096}, // the 7B's reference chunk
		{8, 2, 128, 100, 4000, 4609, 4096},  // the window's edge inside the chunk
		{8, 2, 128, 512, 4096, 4609, 4096},  // ring wraps inside the chunk
		{32, 8, 128, 512, 700, 769, 256},    // small window, wrapped ring
		{32, 8, 128, 40, 1000, 1100, 300},   // window start inside a tile, 160 rows
		{8, 2, 128, 100, 300, 357, 256},     // small window, wrapped
		{8, 2, 128, 512, 0, 1000, 0},        // no window, first chunk
		{6, 2, 128, 40, 50, 128, 0},         // G = 3, ragged
		{4, 4, 128, 100, 200, 400, 0},       // G = 1 (Llama)
		{8, 2, 128, 33, 1000, 1100, 300},    // window start inside a tile
		{8, 2, 128, 40, 300, 70, 24},        // a ring of little more than a tile: slots wrap inside tiles
		{8, 2, 128, 40, 1000, 64, 20},       // the smallest ring the engine gives it (attnWgKeys)
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			d.bind(t)
			in := attnInputs(t, d, rng, c)
			qp, kp, vp, pp, keyRange := in.q, in.k, in.v, in.p, in.keyRange
			rows := c.T * c.H
			scale := float32(1 / math.Sqrt(float64(c.D)))
			ref := planAttentionWith("attn_prefill2", c.T, c.H, c.KV, c.D, d.sms, keyRange)
			wg := planAttentionWith("attn_prefill_wg", c.T, c.H, c.KV, c.D, d.sms, keyRange)
			if wg.kernel != fmt.Sprintf("attn_prefill_wg_d%d", c.D) || wg.shape.Grid != ref.shape.Grid || wg.shape.Block != ref.shape.Block {
				t.Fatalf("plan %+v against attn_prefill2's %+v", wg, ref)
			}
			partials := func(p attnPlan, splits int) ([]float32, []float32) {
				p.splits, p.shape.Grid[2] = splits, uint32(splits)
				acc := d.mustAlloc(t, 4*splits*rows*c.D)
				ml := d.mustAlloc(t, 4*splits*rows*2)
				if err := d.launch(p.kernel, p.shape, "test", qp, kp, vp, pp, c.T, c.H, c.KV, c.cap, c.window, scale, p.blockKeys, acc, ml); err != nil {
					t.Fatal(err)
				}
				return d.downF32(t, acc, splits*rows*c.D), d.downF32(t, ml, splits*rows*2)
			}
			for _, splits := range []int{ref.splits, 1, 7} {
				ra, rm := partials(ref, splits)
				ga, gm := partials(wg, splits)
				sameBits(t, fmt.Sprintf("%s, %d splits, acc", wg.kernel, splits), ga, ra)
				sameBits(t, fmt.Sprintf("%s, %d splits, m and l", wg.kernel, splits), gm, rm)
			}
			ref.splits, ref.shape.Grid[2] = 1, 1
			wg.splits, wg.shape.Grid[2] = 1, 1
			rd, gd := directPlan(ref, c.T), directPlan(wg, c.T)
			if !gd.direct || gd.kernel != fmt.Sprintf("attn_prefill_wg_direct_d%d", c.D) {
				t.Fatalf("direct plan %+v", gd)
			}
			want := d.downHalf(t, runDirect(t, d, rd, qp, kp, vp, pp, c.T, c.H, c.KV, c.D, c.cap, c.window), rows*c.D+directGuard)
			got := d.downHalf(t, runDirect(t, d, gd, qp, kp, vp, pp, c.T, c.H, c.KV, c.D, c.cap, c.window), rows*c.D+directGuard)
			sameBits(t, gd.kernel, got, want)
		})
	}
}

// sameBits fails where got and want differ in any bit.
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	first, n := -1, 0
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	if n > 0 {
		t.Fatalf("%s: %d of %d values differ; the first, %d, is %v (%08x), want %v (%08x)", what, n, len(got), first,
			got[first], math.Float32bits(got[first]), want[first], math.Float32bits(want[first]))
	}
}

// withAttnWg opens an engine with the knob set, and checks that it took
// the path the knob asks for: with the knob on, at head dim 128 only.
func withAttnWg(t *testing.T, m *inference.Model, opts Options, on bool) *Engine {
	t.Helper()
	defer func(v bool) { attnWgmma = v }(attnWgmma)
	attnWgmma = on
	e := testEngine(t, m, opts)
	if want := on && m.Config.HeadDim == 128; e.attnWg != want {
		e.Close()
		t.Fatalf("head dim %d, knob %v: engine attnWg %v, want %v", m.Config.HeadDim, on, e.attnWg, want)
	}
	return e
}

// TestAttnPrefillWgEngine: on sm_90 a script of prefills (chunks of 512 and
// 130, ragged last chunks, the ring wrapping past the window), decodes and
// verify steps gives the same logits bit for bit with the wgmma attention
// and without.
func TestAttnPrefillWgEngine(t *testing.T) {
	attnWgDevice(t)
	knobSameSteps(t, 133, "wgmma prefill attention", "mma.sync prefill attention", withAttnWg)
}

// TestLookupMatchesGreedyAttnWg: with the wgmma attention, greedy ids equal
// those without it, and prompt lookup's equal greedy's.
func TestLookupMatchesGreedyAttnWg(t *testing.T) {
	attnWgDevice(t)
	m := synthModel(t, "small", 6)
	knobKeepsGreedy(t, "the wgmma prefill attention", m, 700, 134, func(on bool) *Engine {
		return withAttnWg(t, m, Options{}, on)
	})
}
