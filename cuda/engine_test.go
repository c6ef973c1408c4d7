package cuda

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/briefapp/brief/inference"
	"github.com/briefapp/brief/inference/cpu"
	"github.com/briefapp/brief/inference/synth"
	"github.com/briefapp/brief/internal/testdata"
)

// testEngine opens the CUDA engine on m, or skips without a GPU.
func testEngine(t *testing.T, m *inference.Model, opts Options) *Engine {
	t.Helper()
	e, err := New(m, opts)
	if errors.Is(err, ErrNoGPU) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func loadStories(t *testing.T) (*inference.Model, []testdata.StoriesCase) {
	t.Helper()
	dir, cases := testdata.Stories(t)
	m, err := inference.OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, cases
}

// goldenLogitTol bounds |ours - transformers| on the golden top-5 logits
// (magnitudes 9-18). transformers ran in float32; we keep activations in
// fp16 between kernels (accumulating in fp32), which costs about 1e-2 here.
const goldenLogitTol = 0.05

// greedyRun prefills prompt and takes single steps until n ids.
func greedyRun(t *testing.T, e inference.Engine, prompt []int, n int) []int {
	t.Helper()
	e.Reset()
	next, err := e.Prefill(context.Background(), prompt)
	if err != nil {
		t.Fatal(err)
	}
	got := []int{next}
	for len(got) < n {
		ids, err := e.Verify([]int{got[len(got)-1]})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids[0])
	}
	return got
}

// TestStoriesGolden: transformers' greedy ids and top-5 logits of
// stories260K, with steps replayed as graphs and run kernel by kernel.
func TestStoriesGolden(t *testing.T) {
	m, cases := loadStories(t)
	for _, opts := range []Options{{Chunk: 3}, {NoGraphs: true, SyncEach: true}} {
		t.Run(fmt.Sprintf("graphs=%v", !opts.NoGraphs), func(t *testing.T) {
			e := testEngine(t, m, opts)
			for _, c := range cases {
				e.Reset()
				if _, err := e.Prefill(context.Background(), c.PromptIDs); err != nil {
					t.Fatal(err)
				}
				logits, err := e.LastLogits()
				if err != nil {
					t.Fatal(err)
				}
				if top := argmax(logits); top != c.Top5IDs[0] {
					t.Errorf("%q: top-1 %d, transformers %d", c.Prompt, top, c.Top5IDs[0])
				}
				for i, id := range c.Top5IDs {
					if d := math.Abs(float64(logits[id]) - c.Top5[i]); d > goldenLogitTol {
						t.Errorf("%q: logit of %d is %.4f, transformers %.4f", c.Prompt, id, logits[id], c.Top5[i])
					}
				}
				if got := greedyRun(t, e, c.PromptIDs, len(c.Greedy)); !slices.Equal(got, c.Greedy) {
					t.Errorf("%q: greedy\n got %v\nwant %v", c.Prompt, got, c.Greedy)
				}
			}
		})
	}
}

// TestVerifyEqualsSteps: one Verify over k tokens returns what k single
// steps return, and Rollback restores the cache so that it does.
func TestVerifyEqualsSteps(t *testing.T) {
	m, cases := loadStories(t)
	e := testEngine(t, m, Options{})
	c := cases[1]
	const k = 16
	want := greedyRun(t, e, c.PromptIDs, k+1)
	for _, n := range []int{2, 5, 11, 16} {
		e.Reset()
		first, err := e.Prefill(context.Background(), c.PromptIDs)
		if err != nil {
			t.Fatal(err)
		}
		// A wrong draft first, rolled back, must leave no trace.
		bad := slices.Repeat([]int{7}, n)
		bad[0] = first
		if _, err := e.Verify(bad); err != nil {
			t.Fatal(err)
		}
		if err := e.Rollback(len(c.PromptIDs)); err != nil {
			t.Fatal(err)
		}
		got, err := e.Verify(want[:n])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want[1:n+1]) {
			t.Errorf("verify of %d: %v, single steps %v", n, got, want[1:n+1])
		}
		if e.Len() != len(c.PromptIDs)+n {
			t.Errorf("Len after verify of %d = %d, want %d", n, e.Len(), len(c.PromptIDs)+n)
		}
	}
}

// TestVerifyBatchInvariant: on a model with 7B-like head shapes (synth
// "small": head_dim 128, group 128, a 256-token window under a 300-token
// prompt), the logits after verifying k tokens equal, bit for bit, those
// after the k-th of k single steps. Prompt lookup's output equals greedy
// decoding's only because of this.
// synthModel writes and opens a synthetic checkpoint of shape, closed when
// the test ends (after its engine).
func synthModel(t *testing.T, shape string, seed uint64) *inference.Model {
	t.Helper()
	dir := t.TempDir()
	if _, err := synth.Write(dir, synth.Shapes[shape], synth.Options{Seed: seed}); err != nil {
		t.Fatal(err)
	}
	m, err := inference.OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestVerifyBatchInvariant(t *testing.T) {
	m := synthModel(t, "small", 3)
	e := testEngine(t, m, Options{})
	rng := rand.New(rand.NewPCG(5, 6))
	prompt := make([]int, 300)
	for i := range prompt {
		prompt[i] = rng.IntN(m.Config.Vocab)
	}
	if _, err := e.Prefill(context.Background(), prompt); err != nil {
		t.Fatal(err)
	}
	toks := make([]int, inference.MaxVerify)
	for i := range toks {
		toks[i] = rng.IntN(m.Config.Vocab)
	}
	single := make([][]float32, len(toks))
	for i, tok := range toks {
		if _, err := e.Verify([]int{tok}); err != nil {
			t.Fatal(err)
		}
		logits, err := e.LastLogits()
		if err != nil {
			t.Fatal(err)
		}
		single[i] = logits
	}
	for _, k := range []int{2, 5, 8, 9, 11, 16} {
		if err := e.Rollback(len(prompt)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Verify(toks[:k]); err != nil {
			t.Fatal(err)
		}
		got, err := e.LastLogits()
		if err != nil {
			t.Fatal(err)
		}
		for j := range got {
			if math.Float32bits(got[j]) != math.Float32bits(single[k-1][j]) {
				t.Fatalf("verify of %d: logit %d is %v, %v after single steps", k, j, got[j], single[k-1][j])
			}
		}
	}
}

// TestLookupMatchesGreedy: prompt lookup through the generation loop gives
// greedy decoding's ids on the GPU, with drafts accepted.
// TestAttentionVariantsAgree: verify steps give the same logits, bit for
// bit, with and without the next key tile prefetched, and through
// attn_verify2 (verifyEarly).
func TestAttentionVariantsAgree(t *testing.T) {
	m := synthModel(t, "small", 5)
	defer func(v string) { verifyVariant = v }(verifyVariant)
	e := testEngine(t, m, Options{NoGraphs: true})
	rng := rand.New(rand.NewPCG(10, 11))
	prompt := make([]int, 700) // past the window of 256: several key blocks
	for i := range prompt {
		prompt[i] = rng.IntN(m.Config.Vocab)
	}
	if _, err := e.Prefill(context.Background(), prompt); err != nil {
		t.Fatal(err)
	}
	defer func(v bool) { verifyEarly = v }(verifyEarly)
	for _, k := range []int{1, 2, 5, 8, 11, 16} { // one and two row tiles, three and four
		var logits [3][]float32
		for i, v := range []string{"", "_sync", "early"} {
			verifyVariant, verifyEarly = v, false
			if v == "early" {
				verifyVariant, verifyEarly = "", true
			}
			if _, err := e.Verify(prompt[:k]); err != nil {
				t.Fatal(err)
			}
			l, err := e.LastLogits()
			if err != nil {
				t.Fatal(err)
			}
			logits[i] = l
			if err := e.Rollback(len(prompt)); err != nil {
				t.Fatal(err)
			}
		}
		for j := range logits[0] {
			for i := 1; i < len(logits); i++ {
				if math.Float32bits(logits[0][j]) != math.Float32bits(logits[i][j]) {
					t.Fatalf("verify of %d: logit %d is %v with prefetch, %v with variant %d", k, j, logits[0][j], logits[i][j], i)
				}
			}
		}
	}
}

// TestLookupMatchesGreedyGroup128: on group-128 weights verify steps of 1..8
// and 9..16 tokens run different mat-vec kernels; prompt lookup must still
// give greedy decoding's ids.
func TestLookupMatchesGreedyGroup128(t *testing.T) {
	m := synthModel(t, "small", 4)
	e := testEngine(t, m, Options{})
	// Random weights repeat themselves often but not always: several prompts
	// make accepted drafts (and so verify steps of many sizes) near certain.
	accepted := 0
	for seed := uint64(8); seed < 11; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed+1))
		prompt := make([]int, 200)
		for i := range prompt {
			prompt[i] = rng.IntN(m.Config.Vocab)
		}
		var ids [2][]int
		for i, s := range []inference.Strategy{inference.Greedy, inference.Lookup} {
			rep, err := inference.Generate(context.Background(), e, nil, inference.Request{
				Prompt: prompt, MaxNewTokens: 300, Strategy: s, LookupTokens: 10}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = rep.TokenIDs
			accepted += rep.Accepted
		}
		if !slices.Equal(ids[0], ids[1]) {
			t.Errorf("prompt %d: lookup ids differ from greedy:\n greedy %v\n lookup %v", seed, ids[0], ids[1])
		}
	}
	if accepted == 0 {
		t.Error("no drafted token accepted: the test does not exercise verify steps")
	}
	t.Logf("%d drafts accepted over 3 prompts", accepted)
}

func TestLookupMatchesGreedy(t *testing.T) {
	m, cases := loadStories(t)
	e := testEngine(t, m, Options{})
	accepted := 0
	for _, c := range cases {
		var ids [2][]int
		for i, s := range []inference.Strategy{inference.Greedy, inference.Lookup} {
			rep, err := inference.Generate(context.Background(), e, nil, inference.Request{
				Prompt: c.PromptIDs, MaxNewTokens: 200, Strategy: s, LookupTokens: 10}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = rep.TokenIDs
			accepted += rep.Accepted
		}
		if !slices.Equal(ids[0], ids[1]) {
			t.Errorf("%q: lookup\n%v\ngreedy\n%v", c.Prompt, ids[1], ids[0])
		}
		if n := min(len(c.Greedy), len(ids[0])); !slices.Equal(ids[0][:n], c.Greedy[:n]) {
			t.Errorf("%q: greedy %v, golden %v", c.Prompt, ids[0][:n], c.Greedy[:n])
		}
	}
	if accepted == 0 {
		t.Error("no draft was accepted")
	}
}

// TestAgainstCPU runs synthetic models on both engines, teacher-forced by
// the CPU engine's choices: the Mistral shape with a window (16) much
// shorter than the prompt and prefill chunks (16) that wrap the KV ring, and
// the Llama shape. Logits must agree within tolerance, and the top-1 id
// wherever the CPU's top-2 margin exceeds that tolerance.
func TestAgainstCPU(t *testing.T) {
	for _, shape := range []string{"tiny", "llama-tiny"} {
		t.Run(shape, func(t *testing.T) {
			m := synthModel(t, shape, 7)
			g := testEngine(t, m, Options{Chunk: 16})
			c, err := cpu.NewFromWeights(&m.Config, m.Weights, cpu.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			prompt := make([]int, 100)
			for i := range prompt {
				prompt[i] = rng.IntN(m.Config.Vocab)
			}
			compareStep := func(what string, gotNext, wantNext int) {
				t.Helper()
				gl, err := g.LastLogits()
				if err != nil {
					t.Fatal(err)
				}
				cl, err := c.LastLogits()
				if err != nil {
					t.Fatal(err)
				}
				scale, worst := 0.0, 0.0
				for i := range cl {
					scale = max(scale, math.Abs(float64(cl[i])))
					worst = max(worst, math.Abs(float64(gl[i]-cl[i])))
				}
				tol := 0.02 * (1 + scale)
				if worst > tol {
					t.Errorf("%s: logits differ by %.4g (tolerance %.3g, max |logit| %.3g)", what, worst, tol, scale)
				}
				if gotNext != wantNext && margin(cl) > tol {
					t.Errorf("%s: GPU picks %d, CPU %d with margin %.4g", what, gotNext, wantNext, margin(cl))
				}
				t.Logf("%s: max |logit error| %.3g of max |logit| %.3g", what, worst, scale)
			}
			gn, err := g.Prefill(context.Background(), prompt)
			if err != nil {
				t.Fatal(err)
			}
			cn, err := c.Prefill(context.Background(), prompt)
			if err != nil {
				t.Fatal(err)
			}
			compareStep("prefill", gn, cn)
			next := cn
			for step := range 20 {
				gi, err := g.Verify([]int{next})
				if err != nil {
					t.Fatal(err)
				}
				ci, err := c.Verify([]int{next})
				if err != nil {
					t.Fatal(err)
				}
				compareStep(fmt.Sprintf("step %d", step), gi[0], ci[0])
				next = ci[0]
			}
			// A multi-token step over the window's edge.
			draft := prompt[:12]
			gi, err := g.Verify(draft)
			if err != nil {
				t.Fatal(err)
			}
			ci, err := c.Verify(draft)
			if err != nil {
				t.Fatal(err)
			}
			compareStep("verify of 12", gi[11], ci[11])
			if g.Len() != c.Len() {
				t.Errorf("Len: GPU %d, CPU %d", g.Len(), c.Len())
			}
		})
	}
}

// TestEngineErrors: bad requests get errors, not crashes, and leave the
// engine usable.
func TestEngineErrors(t *testing.T) {
	m, cases := loadStories(t)
	e := testEngine(t, m, Options{})
	if _, err := e.Prefill(context.Background(), nil); err == nil {
		t.Error("empty prefill: no error")
	}
	if _, err := e.Prefill(context.Background(), []int{1, m.Config.Vocab}); err == nil {
		t.Error("token outside the vocabulary: no error")
	}
	if _, err := e.Prefill(context.Background(), make([]int, e.MaxContext()+1)); err == nil {
		t.Error("prompt over the context: no error")
	}
	if _, err := e.Verify(make([]int, inference.MaxVerify+1)); err == nil {
		t.Error("verify of 17: no error")
	}
	if err := e.Rollback(e.Len() + 1); err == nil {
		t.Error("rollback past the end: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Prefill(ctx, cases[0].PromptIDs); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled prefill: %v", err)
	}
	c := cases[2]
	if got := greedyRun(t, e, c.PromptIDs, 8); !slices.Equal(got, c.Greedy[:8]) {
		t.Errorf("after errors: %v, want %v", got, c.Greedy[:8])
	}
	mem := e.Memory()
	if mem.Current <= 0 || mem.Peak < mem.Current {
		t.Errorf("memory %+v", mem)
	}
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// margin is the gap between the two largest values.
func margin(v []float32) float64 {
	a, b := math.Inf(-1), math.Inf(-1)
	for _, x := range v {
		f := float64(x)
		if f > a {
			a, b = f, a
		} else if f > b {
			b = f
		}
	}
	return a - b
}

// TestProfileStepSize: Profile refuses steps its buffers cannot hold.
func TestProfileStepSize(t *testing.T) {
	e := testEngine(t, synthModel(t, "small", 8), Options{})
	for _, T := range []int{0, -1, e.chunk + 1} {
		if _, err := e.Profile(T, 1); err == nil {
			t.Errorf("Profile(%d) with chunks of %d: no error", T, e.chunk)
		}
	}
	if _, err := e.Profile(e.chunk, 1); err != nil {
		t.Errorf("Profile(%d): %v", e.chunk, err)
	}
}

// TestPrefillGEMMName: the names bench prints say which prefill kernels
// run (linears, attention), how its chunks run, and why not wgmma where the driver could not
// compile them.
func TestPrefillGEMMName(t *testing.T) {
	for _, tc := range []struct {
		e    Engine
		want string
	}{
		{Engine{gemmWgmma: true}, "wgmma (sm_90a PTX compiled by the driver)"},
		{Engine{gemmWgmma: true, gemmXP: true}, "wgmma with an x-producer warpgroup (sm_90a PTX compiled by the driver)"},
		{Engine{gemmWgmma: true, gemmXP: true, xpPerm: true}, "wgmma with an x-producer warpgroup, x stored in its stages' order (sm_90a PTX compiled by the driver)"},
		{Engine{}, "mma.sync"},
		{Engine{jitErr: errors.New("CUDA_ERROR_INVALID_PTX")}, "mma.sync (the driver could not compile the wgmma kernels: CUDA_ERROR_INVALID_PTX)"},
	} {
		if got := tc.e.PrefillGEMM(); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
	for _, tc := range []struct {
		e    Engine
		want string
	}{
		{Engine{attnWg: true}, "wgmma (sm_90a PTX compiled by the driver)"},
		{Engine{gemmWgmma: true}, "mma.sync"},
		{Engine{jitErr: errors.New("CUDA_ERROR_INVALID_PTX")}, "mma.sync (the driver could not compile the wgmma kernels: CUDA_ERROR_INVALID_PTX)"},
	} {
		if got := tc.e.PrefillAttention(); got != tc.want {
			t.Errorf("attention %q, want %q", got, tc.want)
		}
	}
	for _, tc := range []struct {
		e    Engine
		want string
	}{
		{Engine{chunk: 512}, "512 tokens, one at a time"},
		{Engine{chunk: 512, pipe: &pipeline{}}, "512 tokens, two in flight on two streams"},
	} {
		if got := tc.e.PrefillChunks(); got != tc.want {
			t.Errorf("chunks %q, want %q", got, tc.want)
		}
	}
}
