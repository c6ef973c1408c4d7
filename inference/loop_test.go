package inference

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/briefapp/brief/inference/lookup"
)

// fakeEngine is a deterministic "model": the next token is a fixed random
// function of the last order tokens. Its cache is the token slice itself,
// so rollback is real bookkeeping, checked on every call.
type fakeEngine struct {
	t       *testing.T
	vocab   int
	order   int
	table   map[[4]int]int
	seed    int64
	maxCtx  int
	cache   []int
	lastLen int // Len before the last Verify: Rollback may not go below it
	calls   struct{ prefill, verify, rollback int }
	peak    int64
}

func newFake(t *testing.T, vocab, order int, seed int64, maxCtx int) *fakeEngine {
	return &fakeEngine{t: t, vocab: vocab, order: order, seed: seed, maxCtx: maxCtx, table: map[[4]int]int{}}
}

func (f *fakeEngine) next(upto int) int {
	var key [4]int
	for i := 0; i < f.order; i++ {
		if p := upto - 1 - i; p >= 0 {
			key[i] = f.cache[p] + 1
		}
	}
	v, ok := f.table[key]
	if !ok {
		h := f.seed
		for _, k := range key {
			h = h*1000003 + int64(k)
		}
		v = int(rand.New(rand.NewSource(h)).Intn(f.vocab))
		f.table[key] = v
	}
	return v
}

func (f *fakeEngine) Name() string { return "fake" }
func (f *fakeEngine) Prefill(ctx context.Context, toks []int) (int, error) {
	f.calls.prefill++
	if len(f.cache)+len(toks) > f.maxCtx {
		f.t.Fatalf("prefill past the context: %d + %d > %d", len(f.cache), len(toks), f.maxCtx)
	}
	f.cache = append(f.cache, toks...)
	f.lastLen = len(f.cache)
	f.track()
	return f.next(len(f.cache)), ctx.Err()
}
func (f *fakeEngine) Verify(toks []int) ([]int, error) {
	f.calls.verify++
	if len(toks) < 1 || len(toks) > MaxVerify {
		f.t.Fatalf("verify of %d tokens", len(toks))
	}
	if len(f.cache)+len(toks) > f.maxCtx {
		f.t.Fatalf("verify past the context: %d + %d > %d", len(f.cache), len(toks), f.maxCtx)
	}
	f.lastLen = len(f.cache)
	f.cache = append(f.cache, toks...)
	f.track()
	out := make([]int, len(toks))
	for i := range toks {
		out[i] = f.next(f.lastLen + i + 1)
	}
	return out, nil
}
func (f *fakeEngine) Rollback(n int) error {
	f.calls.rollback++
	if n > len(f.cache) || n <= f.lastLen {
		f.t.Fatalf("rollback to %d: cache %d, last verify started at %d", n, len(f.cache), f.lastLen)
	}
	f.cache = f.cache[:n]
	return nil
}
func (f *fakeEngine) Len() int        { return len(f.cache) }
func (f *fakeEngine) MaxContext() int { return f.maxCtx }
func (f *fakeEngine) Reset()          { f.cache = f.cache[:0]; f.lastLen = 0 }
func (f *fakeEngine) Memory() Memory  { return Memory{Current: int64(len(f.cache)) * 8, Peak: f.peak} }
func (f *fakeEngine) Close() error    { return nil }
func (f *fakeEngine) track()          { f.peak = max(f.peak, int64(len(f.cache))*8) }

// fakeDecoder spells each id as "<id>".
type fakeDecoder struct{}

func (fakeDecoder) Next(id int) string { return fmt.Sprintf("<%d>", id) }
func (fakeDecoder) Flush() string      { return "" }

// collect runs Generate and gathers its events.
func collect(t *testing.T, ctx context.Context, eng Engine, req Request) (*Report, string, []StepStats, error) {
	t.Helper()
	var text strings.Builder
	var steps []StepStats
	var reports int
	rep, err := Generate(ctx, eng, fakeDecoder{}, req, func(e Event) {
		switch {
		case e.Text != "":
			text.WriteString(e.Text)
		case e.Step != nil:
			steps = append(steps, *e.Step)
		case e.Report != nil:
			reports++
		}
	})
	if rep != nil && reports != 1 {
		t.Errorf("%d report events, want 1", reports)
	}
	return rep, text.String(), steps, err
}

// repeatPrompt makes a prompt with repeated stretches, as articles have.
func repeatPrompt(rng *rand.Rand, vocab, n int) []int {
	p := make([]int, 0, n)
	for len(p) < n {
		if len(p) > 8 && rng.Intn(3) == 0 {
			s := rng.Intn(len(p) - 4)
			p = append(p, p[s:s+2+rng.Intn(6)]...)
		} else {
			p = append(p, rng.Intn(vocab))
		}
	}
	return p[:n]
}

func checkReport(t *testing.T, name string, rep *Report, steps []StepStats, text string) {
	t.Helper()
	if rep.NewTokens != len(rep.TokenIDs) {
		t.Errorf("%s: NewTokens %d, %d ids", name, rep.NewTokens, len(rep.TokenIDs))
	}
	if len(steps) != rep.Steps+1 {
		t.Errorf("%s: %d step events for %d steps + prefill", name, len(steps), rep.Steps)
	}
	hs, acc, newTok := 0, 0, 0
	for k, c := range rep.Histogram {
		hs += c
		acc += k * c
	}
	for _, s := range steps {
		newTok += s.NewTokens
	}
	if hs != rep.Steps || acc != rep.Accepted || newTok != rep.NewTokens || rep.Accepted > rep.Drafted {
		t.Errorf("%s: histogram %v, steps %d, accepted %d/%d, step new tokens %d/%d", name, rep.Histogram, rep.Steps, rep.Accepted, rep.Drafted, newTok, rep.NewTokens)
	}
	var want strings.Builder
	for _, id := range rep.TokenIDs {
		if rep.StopReason != StopEOS || id != rep.TokenIDs[len(rep.TokenIDs)-1] {
			want.WriteString(fakeDecoder{}.Next(id))
		}
	}
	if text != want.String() {
		t.Errorf("%s: text %q, want %q", name, text, want.String())
	}
	if rep.Throughput <= 0 || rep.PeakMemory <= 0 {
		t.Errorf("%s: throughput %v, peak memory %d", name, rep.Throughput, rep.PeakMemory)
	}
}

func TestLookupEqualsGreedy(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	drafters := []func() Drafter{
		func() Drafter { return nil }, // the default
		func() Drafter { return lookup.Transformers{Ngram: 2} },
		func() Drafter { return lookup.Original{Ngram: 3} },
		func() Drafter { return lookup.NewIndex(5) },
	}
	totalAccepted := 0
	for trial := 0; trial < 40; trial++ {
		vocab, order := 8+rng.Intn(40), 1+rng.Intn(3)
		prompt := repeatPrompt(rng, vocab, 5+rng.Intn(200))
		maxNew := 1 + rng.Intn(150)
		seed := rng.Int63()
		greedyEng := newFake(t, vocab, order, seed, 4096)
		want, wtext, wsteps, err := collect(t, context.Background(), greedyEng, Request{Prompt: prompt, MaxNewTokens: maxNew})
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, "greedy", want, wsteps, wtext)
		if want.Drafted != 0 || want.Steps != want.NewTokens-1 {
			t.Errorf("greedy drafted %d, %d steps for %d tokens", want.Drafted, want.Steps, want.NewTokens)
		}
		for di, mk := range drafters {
			for _, lt := range []int{1, 3, 10, 15} {
				eng := newFake(t, vocab, order, seed, 4096)
				req := Request{Prompt: prompt, MaxNewTokens: maxNew, Strategy: Lookup, LookupTokens: lt, LookupNgram: 3, Drafter: mk()}
				got, text, steps, err := collect(t, context.Background(), eng, req)
				if err != nil {
					t.Fatal(err)
				}
				name := fmt.Sprintf("trial %d drafter %d tokens %d", trial, di, lt)
				checkReport(t, name, got, steps, text)
				if !slices.Equal(got.TokenIDs, want.TokenIDs) {
					t.Fatalf("%s: lookup %v\ngreedy %v", name, got.TokenIDs, want.TokenIDs)
				}
				if got.Steps+got.Accepted != want.Steps {
					t.Errorf("%s: %d steps + %d accepted != greedy's %d steps", name, got.Steps, got.Accepted, want.Steps)
				}
				// The cache holds everything but the newest token.
				if wantCache := append(slices.Clone(prompt), got.TokenIDs[:len(got.TokenIDs)-1]...); !slices.Equal(eng.cache, wantCache) {
					t.Fatalf("%s: cache %v, want %v", name, eng.cache, wantCache)
				}
				totalAccepted += got.Accepted
			}
		}
	}
	if totalAccepted == 0 {
		t.Fatal("no draft was ever accepted: the test exercises nothing")
	}
	t.Logf("accepted drafts: %d", totalAccepted)
}

// pipelinedGreedy stands for a greedy run on fakePipelined in TestStops.
const pipelinedGreedy Strategy = -1

func TestStops(t *testing.T) {
	prompt := []int{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6}
	ref, _, _, err := collect(t, context.Background(), newFake(t, 12, 2, 1, 4096), Request{Prompt: prompt, MaxNewTokens: 60})
	if err != nil {
		t.Fatal(err)
	}
	eos := ref.TokenIDs[17]
	firstEOS := slices.Index(ref.TokenIDs, eos)
	for _, strat := range []Strategy{Greedy, Lookup, pipelinedGreedy} {
		tests := []struct {
			name    string
			maxNew  int
			maxCtx  int
			eos     []int
			reason  string
			wantLen int
		}{
			{"eos", 60, 4096, []int{999, eos}, StopEOS, firstEOS + 1},
			{"max tokens", 13, 4096, nil, StopMaxTokens, 13},
			{"one token", 1, 4096, nil, StopMaxTokens, 1},
			{"context full", 60, len(prompt) + 9, nil, StopContextFull, 10},
			{"prompt fills the context", 60, len(prompt), nil, StopContextFull, 1},
		}
		for _, tc := range tests {
			var eng Engine = newFake(t, 12, 2, 1, tc.maxCtx)
			req := Request{Prompt: prompt, MaxNewTokens: tc.maxNew, EOS: tc.eos, Strategy: strat, LookupTokens: 10}
			if strat == pipelinedGreedy {
				eng, req.Strategy = newFakePipelined(newFake(t, 12, 2, 1, tc.maxCtx), 3), Greedy
			}
			rep, text, steps, err := collect(t, context.Background(), eng, req)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			checkReport(t, tc.name, rep, steps, text)
			if rep.StopReason != tc.reason || !slices.Equal(rep.TokenIDs, ref.TokenIDs[:tc.wantLen]) {
				t.Errorf("strategy %d %s: stop %q with %v, want %q with %v", strat, tc.name, rep.StopReason, rep.TokenIDs, tc.reason, ref.TokenIDs[:tc.wantLen])
			}
		}
	}
}

func TestCancel(t *testing.T) {
	prompt := []int{1, 2, 3, 4, 5, 6, 7, 8}
	for _, strat := range []Strategy{Greedy, Lookup} {
		ctx, cancel := context.WithCancel(context.Background())
		eng := newFake(t, 50, 3, 2, 4096)
		seen := 0
		rep, err := Generate(ctx, eng, nil, Request{Prompt: prompt, MaxNewTokens: 500, Strategy: strat}, func(e Event) {
			if e.Step != nil {
				if seen++; seen == 4 {
					cancel()
				}
			}
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if rep == nil || rep.StopReason != StopCancelled || rep.Steps != 3 || eng.calls.verify != 3 {
			t.Fatalf("report %+v after %d verify calls, want cancelled after 3 steps", rep, eng.calls.verify)
		}
	}
	// Cancelled before it starts: no engine work.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	eng := newFake(t, 50, 3, 2, 4096)
	rep, err := Generate(ctx, eng, nil, Request{Prompt: prompt, MaxNewTokens: 5}, nil)
	if !errors.Is(err, context.Canceled) || rep.StopReason != StopCancelled || eng.calls.prefill != 0 {
		t.Fatalf("pre-cancelled: %v %+v, %d prefills", err, rep, eng.calls.prefill)
	}
}

func TestBadRequests(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"too long", Request{Prompt: make([]int, 33), MaxNewTokens: 5}, "prompt is 33 tokens, more than the 32"},
		{"empty", Request{MaxNewTokens: 5}, "empty prompt"},
		{"no new tokens", Request{Prompt: []int{1}}, "max new tokens is 0"},
		{"strategy", Request{Prompt: []int{1}, MaxNewTokens: 1, Strategy: 7}, "unknown strategy"},
	}
	for _, tc := range tests {
		eng := newFake(t, 10, 1, 1, 32)
		rep, err := Generate(context.Background(), eng, nil, tc.req, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || rep != nil {
			t.Errorf("%s: %v, %v; want error containing %q", tc.name, rep, err, tc.want)
		}
		if eng.calls.prefill+eng.calls.verify != 0 {
			t.Errorf("%s: the engine ran before the request was checked", tc.name)
		}
	}
}
