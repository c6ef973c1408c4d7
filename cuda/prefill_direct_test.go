package cuda

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"testing"

	"github.com/briefapp/brief/inference"
)

// Tests of the direct one-split prefill attention (attnplan.go:
// prefillDirect, attn_prefill_direct.cu). The plan, name and instance
// tests run without a GPU; the kernel and engine tests skip without one.
// BRIEF_PREFILL_DIRECT=0 (main_test.go) turns the knob off for a whole run.

// TestPrefillDirectPlan: with the knob on, exactly the prefill chunks
// planned on an attn_prefill2* kernel with one key split run its direct
// instance, on the same grid and shared memory; every other plan (verify
// steps, several splits, the 64-row and CUDA-core kernels) and every plan
// with the knob off is unchanged. Engines on GPUs of several sizes, every
// step size of a 512-token chunk, with the splits as planned or forced.
func TestPrefillDirectPlan(t *testing.T) {
	defer func(k string, o int) { prefillKernel, prefill2SplitsOverride = k, o }(prefillKernel, prefill2SplitsOverride)
	cfgs := []inference.Config{
		{Heads: 32, KVHeads: 8, HeadDim: 128, SlidingWindow: 4096}, // the 7B
		{Heads: 8, KVHeads: 2, HeadDim: 64, SlidingWindow: 128},
		{Heads: 4, KVHeads: 2, HeadDim: 32, SlidingWindow: 16}, // CUDA cores: never direct
	}
	for _, cfg := range cfgs {
		for _, sms := range []int{108, 132} {
			for _, k := range []string{"", "attn_prefill2", "attn_prefill2q"} {
				for _, override := range []int{0, 1, 2} {
					prefillKernel, prefill2SplitsOverride = k, override
					var es [2]*Engine
					for i, on := range []bool{false, true} {
						e := &Engine{cfg: cfg, chunk: 512, cap: cfg.SlidingWindow + 512 + 1, d: &device{sms: sms}, prefillDirect: on}
						acc, _ := e.attnWorkspace()
						e.wsRows = acc / (4 * int64(cfg.HeadDim))
						es[i] = e
					}
					direct := 0
					for T := 1; T <= 512; T++ {
						off, got := es[0].attnPlan(T), es[1].attnPlan(T)
						what := fmt.Sprintf("head dim %d, %d SMs, %q, splits override %d, %d tokens", cfg.HeadDim, sms, k, override, T)
						if off.direct {
							t.Fatalf("%s: direct with the knob off: %+v", what, off)
						}
						want := off
						if T > inference.MaxVerify && k != "" && cfg.HeadDim >= 64 && off.splits == 1 {
							want.direct = true
							want.kernel = fmt.Sprintf("%s_direct_d%d", k, cfg.HeadDim)
							direct++
						}
						if got != want {
							t.Fatalf("%s: plan %+v, want %+v", what, got, want)
						}
					}
					// Forced to one split, every prefill chunk of a prefill2
					// kernel on the tensor cores goes direct.
					if override == 1 && k != "" && cfg.HeadDim >= 64 && direct != 512-inference.MaxVerify {
						t.Errorf("head dim %d, %d SMs, %q, one split forced: %d step sizes direct, want %d", cfg.HeadDim, sms, k, direct, 512-inference.MaxVerify)
					}
					if (k == "" || cfg.HeadDim < 64 || override == 2) && direct != 0 {
						t.Errorf("head dim %d, %d SMs, %q, splits override %d: %d step sizes direct, want none", cfg.HeadDim, sms, k, override, direct)
					}
				}
			}
		}
	}
	// The chunk the knob is for: the 7B's 512 tokens at the reference
	// context on an H100/H200 (132 SMs) with the default attn_prefill2
	// plan one split; attn_prefill2q plans two and stays.
	prefill2SplitsOverride = 0
	for _, c := range []struct {
		prefill, kernel string
		direct          bool
	}{
		{"attn_prefill2", "attn_prefill2_direct_d128", true},
		{"attn_prefill2q", "attn_prefill2q_d128", false},
	} {
		prefillKernel = c.prefill
		e := &Engine{cfg: cfgs[0], chunk: 512, cap: 4096 + 512 + 1, d: &device{sms: 132}, prefillDirect: true}
		acc, _ := e.attnWorkspace()
		e.wsRows = acc / (4 * 128)
		if p := e.attnPlan(512); p.kernel != c.kernel || p.direct != c.direct {
			t.Errorf("%s, 512 tokens on 132 SMs: %s (direct %v, %d splits), want %s (direct %v)", c.prefill, p.kernel, p.direct, p.splits, c.kernel, c.direct)
		}
	}
}

// TestPrefillDirectKernelsInFatbins: every direct kernel the plans can
// name is an entry of an embedded fatbin and counts as attention in the
// profiles' families; made-up names are not found.
func TestPrefillDirectKernelsInFatbins(t *testing.T) {
	inFatbin := fatbinHas(t)
	ptx, err := ptxImages(90)
	if err != nil {
		t.Fatal(err)
	}
	has := func(name string) bool {
		if inFatbin(name) {
			return true
		}
		for _, img := range ptx {
			if bytes.Contains(img.data, []byte(".entry "+name+"(")) {
				return true
			}
		}
		return false
	}
	for _, k := range slices.Sorted(maps.Keys(prefill2Kernels)) {
		for _, D := range []int{64, 128} {
			if prefill2Kernels[k].wg && D != 128 {
				continue // attn_prefill_wg is built for head dim 128 only
			}
			p := planAttentionWith(k, 512, 32, 8, D, 132, 4096+15)
			p.splits, p.shape.Grid[2] = 1, 1
			dp := directPlan(p, 512)
			if !dp.direct {
				t.Fatalf("%s head dim %d, one split: no direct plan", k, D)
			}
			if !has(dp.kernel) {
				t.Errorf("kernel %q is in no embedded fatbin: run make -C cuda", dp.kernel)
			}
			if f := kernelFamily(dp.kernel); f != "attention" {
				t.Errorf("%s counts as %q in profiles, want attention", dp.kernel, f)
			}
		}
	}
	for _, n := range []string{"attn_prefill2_direct_d32", "attn_prefill_direct_d128", "attn_verify2_direct_d128", "attn_prefill2_direct"} {
		if has(n) {
			t.Errorf("%q found as a kernel entry: the search does not tell names apart", n)
		}
	}
}

// TestPrefillDirectInstances: each attn_prefill2* instance has a direct
// twin with the same head dim, m-tiles, key tile and blocks per
// multiprocessor (the plan launches both on one grid), and those agree
// with prefill2Kernels' threads, keys and residency.
func TestPrefillDirectInstances(t *testing.T) {
	inst := func(file, macro string) map[string][4]int {
		src, err := kernelSources.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][4]int{}
		re := regexp.MustCompile(`(?m)^` + macro + `\((\w+), (\d+), (\d+), (\d+), (\d+)\)`)
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			var v [4]int
			for i := range v {
				fmt.Sscan(m[i+2], &v[i])
			}
			out[m[1]] = v
		}
		return out
	}
	plain := inst("attn_prefill.cu", "ATTN_PREFILL2")
	direct := inst("attn_prefill_direct.cu", "ATTN_PREFILL2_DIRECT")
	if len(plain) != 4 || len(direct) != len(plain) {
		t.Fatalf("instances: %v plain, %v direct", plain, direct)
	}
	for name, v := range plain {
		var fam string
		var D int
		if _, err := fmt.Sscanf(regexp.MustCompile(`_d(\d+)$`).ReplaceAllString(name, " $1"), "%s %d", &fam, &D); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		dn := fmt.Sprintf("%s_direct_d%d", fam, D)
		if dv, ok := direct[dn]; !ok || dv != v {
			t.Errorf("%s%v: direct twin %s%v", name, v, dn, dv)
		}
		k, ok := prefill2Kernels[fam]
		if !ok || v[0] != D || k.threads != prefill2Rows/(16*v[1])*32 || k.keys != v[2] || k.resident != v[3] || k.qShared != (v[1] == 2) {
			t.Errorf("%s (head dim, m-tiles, keys, blocks) %v against prefill2Kernels[%q] %+v", name, v, fam, k)
		}
	}
}

// directGuard is the halves past a direct kernel's output that must stay
// as poisoned.
const directGuard = 4096

// runDirect launches a direct plan into a fresh (poisoned) output of
// T*H*D halves and directGuard more.
func runDirect(t *testing.T, d *device, p attnPlan, qp, kp, vp, pp devPtr, T, H, KV, D, cap, window int) devPtr {
	t.Helper()
	out := d.mustAlloc(t, 2*(T*H*D+directGuard))
	if err := d.launch(p.kernel, p.shape, "test", qp, kp, vp, pp, T, H, KV, cap, window,
		float32(1/math.Sqrt(float64(D))), p.blockKeys, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAttentionPrefill2Direct: the direct kernels write, bit for bit, what
// attn_prefill2* with one split followed by attn_reduce writes (and
// nothing past the output), on chunks of 17 to 512 tokens before, at and
// past the window, across the ring's wrap, at head dims 64 and 128 and
// query groups of 1, 3 and 4; both within rounding of the float64
// reference.
func TestAttentionPrefill2Direct(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(91, 92))
	cases := []attnCase{
		{32, 8, 128, 17, 0, 4609, 4096},     // first chunk, ragged row tile
		{32, 8, 128, 512, 6435, 4609, 4096}, // the 7B's reference chunk
		{8, 2, 128, 100, 4000, 4609, 4096},  // the window's edge inside the chunk
		{8, 2, 128, 512, 4096, 4609, 4096},  // ring wraps inside the chunk
		{32, 8, 128, 512, 700, 769, 256},    // small window, wrapped ring
		{8, 2, 64, 100, 300, 357, 256},      // head dim 64, wrapped
		{8, 2, 64, 512, 0, 1000, 0},         // head dim 64, no window
		{6, 2, 64, 40, 50, 128, 0},          // G = 3, ragged
		{4, 4, 128, 100, 200, 400, 0},       // G = 1 (Llama)
		{8, 2, 128, 33, 1000, 1100, 300},    // window start inside a tile
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			d.bind(t)
			in := attnInputs(t, d, rng, c)
			qp, kp, vp, pp, keyRange := in.q, in.k, in.v, in.p, in.keyRange
			want := in.reference(c)
			rows := c.T * c.H
			poison := math.Float32bits(h2f(0xffff))
			for _, kn := range []string{"attn_prefill2", "attn_prefill2q"} {
				p := planAttentionWith(kn, c.T, c.H, c.KV, c.D, d.sms, keyRange)
				p.splits, p.shape.Grid[2] = 1, 1
				dp := directPlan(p, c.T)
				if !dp.direct || dp.kernel != fmt.Sprintf("%s_direct_d%d", kn, c.D) || dp.shape != p.shape {
					t.Fatalf("direct plan %+v from %+v", dp, p)
				}
				ref := d.downHalf(t, runAttention(t, d, p, qp, kp, vp, pp, c.T, c.H, c.KV, c.D, c.cap, c.window), rows*c.D)
				got := d.downHalf(t, runDirect(t, d, dp, qp, kp, vp, pp, c.T, c.H, c.KV, c.D, c.cap, c.window), rows*c.D+directGuard)
				compare(t, dp.kernel, got[:rows*c.D], want, 2e-3, 2e-3)
				for i := range ref {
					if math.Float32bits(got[i]) != math.Float32bits(ref[i]) {
						t.Fatalf("%s: element %d (row %d, dim %d) is %v, %s + attn_reduce gives %v", dp.kernel, i, i/c.D, i%c.D, got[i], p.kernel, ref[i])
					}
				}
				for i := rows * c.D; i < len(got); i++ {
					if math.Float32bits(got[i]) != poison {
						t.Fatalf("%s wrote half %d, past its output of %d", dp.kernel, i, rows*c.D)
					}
				}
			}
		})
	}
}

// withPrefillDirect opens an engine with the knob set to on, and checks
// that it took it.
func withPrefillDirect(t *testing.T, m *inference.Model, opts Options, on bool) *Engine {
	t.Helper()
	return withKnob(t, m, opts, "prefillDirect", &prefillDirect, on, func(e *Engine) bool { return e.prefillDirect })
}

// TestPrefillDirectEngine: the direct kernels change which kernels run,
// never what they compute: prefills of 17, 300 and 700 tokens in chunks of
// 40, 130 and 512 (ragged last chunks, the ring wrapping past the window),
// then decode steps through the captured graphs and verify steps, give the
// same logits bit for bit with the knob on and off. The small models'
// chunks plan several splits on a big GPU, so most runs force one
// (prefill2SplitsOverride) to put every chunk on the direct path; one
// keeps the planned splits. Profiles show which path ran.
func TestPrefillDirectEngine(t *testing.T) {
	defer func(o int) { prefill2SplitsOverride = o }(prefill2SplitsOverride)
	for _, name := range []string{"small", "hd64"} {
		m := ropeModel(t, name, 93)
		D := m.Config.HeadDim
		rng := rand.New(rand.NewPCG(94, 95))
		prompt := make([]int, 700)
		for i := range prompt {
			prompt[i] = rng.IntN(m.Config.Vocab)
		}
		for _, c := range []struct{ chunk, splits int }{{0, 1}, {40, 1}, {130, 1}, {130, 0}} {
			t.Run(fmt.Sprintf("%s chunk %d splits %d", name, c.chunk, c.splits), func(t *testing.T) {
				prefill2SplitsOverride = c.splits
				var runs [2][][]float32
				for i, on := range []bool{false, true} {
					e := withPrefillDirect(t, m, Options{Chunk: c.chunk}, on)
					runs[i] = stepScript(t, e, prompt, []int{17, 300}, 10, []int{11, 16, 1, 3})
					for _, T := range []int{inference.MaxVerify + 1, e.chunk} {
						checkDirectRan(t, e, T, D, on && c.splits == 1)
					}
					e.Close()
				}
				sameSteps(t, runs[1], runs[0], "direct prefill attention", "attn_reduce")
			})
		}
	}
}

// checkDirectRan profiles a T-token step and checks that the direct
// kernel ran without attn_reduce exactly where the plan says, and where
// want says when the splits are forced.
func checkDirectRan(t *testing.T, e *Engine, T, D int, want bool) {
	t.Helper()
	p := e.attnPlan(T)
	prof, err := e.Profile(T, 1)
	if err != nil {
		t.Fatal(err)
	}
	direct := fmt.Sprintf("%s_direct_d%d", e.prefillFamily(), D)
	_, ranDirect := prof[direct]
	_, ranReduce := prof["attn_reduce"]
	if ranDirect != p.direct || ranReduce == p.direct || (prefill2SplitsOverride == 1 && p.direct != want) {
		t.Fatalf("%d-token step: plan %s (direct %v, %d splits); %s ran %v, attn_reduce ran %v; want direct %v",
			T, p.kernel, p.direct, p.splits, direct, ranDirect, ranReduce, want)
	}
}

// TestLookupMatchesGreedyPrefillDirect: with the direct kernels (one split
// forced so that both chunks of the 700-token prompt take them), greedy
// ids equal those without, and prompt lookup's equal greedy's.
func TestLookupMatchesGreedyPrefillDirect(t *testing.T) {
	defer func(o int) { prefill2SplitsOverride = o }(prefill2SplitsOverride)
	prefill2SplitsOverride = 1
	m := synthModel(t, "small", 4)
	knobKeepsGreedy(t, "the direct kernels", m, 700, 96, func(on bool) *Engine {
		e := withPrefillDirect(t, m, Options{}, on)
		if p := e.attnPlan(512); p.direct != on {
			e.Close()
			t.Fatalf("512-token chunk: plan %s, direct %v with the knob %v", p.kernel, p.direct, on)
		}
		return e
	})
}

// BenchmarkPrefillDirect times the reference prompt's 6,435-token prefill
// on the synthetic 7B ($BRIEF_SYNTH_DIR, see benchModel) with the direct
// one-split prefill attention off and on, one engine at a time, and logs
// which chunk sizes of the prefill go direct and each one's kernel profile
// of a 512-token chunk at that context.
func BenchmarkPrefillDirect(b *testing.B) {
	defer func(v bool) { prefillDirect = v }(prefillDirect)
	benchKnobPrefill(b, "direct", func(on bool) { prefillDirect = on }, func(e *Engine) bool { return e.prefillDirect },
		func(e *Engine, name string) {
			for _, T := range []int{e.chunk, e.Len() % e.chunk} {
				if T > 0 {
					p := e.attnPlan(T)
					b.Logf("direct %s: %d-token chunk: %s, %d splits, direct %v", name, T, p.kernel, p.splits, p.direct)
				}
			}
		})
}
