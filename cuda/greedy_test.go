package cuda

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/briefapp/brief/inference"
)

// verifyOnly hides an engine's Greedy, so that Generate takes one Verify
// step a token.
type verifyOnly struct{ inference.Engine }

func generateIDs(t *testing.T, ctx context.Context, e inference.Engine, req inference.Request, emit func(inference.Event)) (*inference.Report, error) {
	t.Helper()
	rep, err := inference.Generate(ctx, e, nil, req, emit)
	if err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
	return rep, err
}

// TestGreedyPipelined: greedy runs through Engine.Greedy give the ids of
// one Verify step a token, graph-replayed and kernel by kernel, on a model
// whose KV ring wraps (window 16, chunks of 16) and on a group-128 one.
// Stopped early (an EOS id), the cache is the Verify loop's: Verify steps
// go on with the same ids. A cancelled run leaves an engine that gives the
// same ids again.
func TestGreedyPipelined(t *testing.T) {
	for _, tc := range []struct {
		shape string
		seed  uint64
		opts  Options
	}{
		{"tiny", 7, Options{Chunk: 16}},
		{"tiny", 7, Options{Chunk: 16, NoGraphs: true}},
		{"small", 4, Options{}},
	} {
		t.Run(fmt.Sprintf("%s %+v", tc.shape, tc.opts), func(t *testing.T) {
			m := synthModel(t, tc.shape, tc.seed)
			e := testEngine(t, m, tc.opts)
			rng := rand.New(rand.NewPCG(tc.seed, 3))
			prompt := make([]int, 40)
			for i := range prompt {
				prompt[i] = rng.IntN(m.Config.Vocab)
			}
			req := inference.Request{Prompt: prompt, MaxNewTokens: 120}
			ctx := context.Background()
			want, _ := generateIDs(t, ctx, verifyOnly{e}, req, nil)
			got, _ := generateIDs(t, ctx, e, req, nil)
			if !slices.Equal(got.TokenIDs, want.TokenIDs) || got.Steps != want.Steps {
				t.Fatalf("pipelined %v (%d steps)\nverify    %v (%d steps)", got.TokenIDs, got.Steps, want.TokenIDs, want.Steps)
			}
			ids := want.TokenIDs

			// Stop at an EOS id; the queued steps past it must not show.
			eos := ids[30]
			cut := slices.Index(ids, eos) + 1
			stop := req
			stop.EOS = []int{eos}
			rep, _ := generateIDs(t, ctx, e, stop, nil)
			if rep.StopReason != inference.StopEOS || !slices.Equal(rep.TokenIDs, ids[:cut]) {
				t.Fatalf("EOS %d: %s with %v, want eos with %v", eos, rep.StopReason, rep.TokenIDs, ids[:cut])
			}
			if e.Len() != len(prompt)+cut-1 {
				t.Fatalf("after %d tokens the cache holds %d positions, want %d", cut, e.Len(), len(prompt)+cut-1)
			}
			last := ids[cut-1]
			for k := cut; k < cut+8; k++ {
				next, err := e.Verify([]int{last})
				if err != nil {
					t.Fatal(err)
				}
				if next[0] != ids[k] {
					t.Fatalf("Verify after the pipelined run, token %d: %d, want %d", k, next[0], ids[k])
				}
				last = next[0]
			}

			// Cancel after a few tokens, then run again.
			cctx, cancel := context.WithCancel(ctx)
			seen := 0
			rep, err := generateIDs(t, cctx, e, req, func(ev inference.Event) {
				if ev.Step != nil {
					if seen++; seen == 5 {
						cancel()
					}
				}
			})
			if !errors.Is(err, context.Canceled) || rep.StopReason != inference.StopCancelled || !slices.Equal(rep.TokenIDs, ids[:5]) {
				t.Fatalf("cancelled run: %v, %+v", err, rep)
			}
			again, _ := generateIDs(t, ctx, e, req, nil)
			if !slices.Equal(again.TokenIDs, ids) {
				t.Fatalf("after a cancelled run: %v, want %v", again.TokenIDs, ids)
			}
		})
	}
}

// TestGreedyErrors: Greedy refuses steps past the context and ids outside
// the vocabulary, and leaves the cache as it was.
func TestGreedyErrors(t *testing.T) {
	m := synthModel(t, "tiny", 7)
	e := testEngine(t, m, Options{Chunk: 16})
	prompt := []int{1, 2, 3, 4, 5}
	if _, err := e.Prefill(context.Background(), prompt); err != nil {
		t.Fatal(err)
	}
	none := func(int) bool { t.Fatal("each called"); return false }
	for _, tc := range []struct {
		first, n int
		want     string
	}{
		{1, e.MaxContext() - len(prompt) + 1, "maximum context"},
		{m.Config.Vocab, 3, "outside the vocabulary"},
		{-1, 3, "outside the vocabulary"},
		{1, 0, "0 steps"},
	} {
		err := e.Greedy(tc.first, tc.n, none)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Greedy(%d, %d): %v, want %q", tc.first, tc.n, err, tc.want)
		}
		if e.Len() != len(prompt) {
			t.Fatalf("after a refused Greedy the cache holds %d, want %d", e.Len(), len(prompt))
		}
	}
}
