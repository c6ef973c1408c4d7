package inference

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
)

// fakePipelined is fakeEngine with Greedy as a device runs it: steps are
// queued ahead of the token handed out, and those past the last one read
// are dropped. Len shows only what the host has read.
type fakePipelined struct {
	*fakeEngine
	ahead   int
	visible int // Len during Greedy, -1 outside it
	steps   int // tokens handed out by Greedy
}

func newFakePipelined(f *fakeEngine, ahead int) *fakePipelined {
	return &fakePipelined{fakeEngine: f, ahead: ahead, visible: -1}
}

func (f *fakePipelined) Len() int {
	if f.visible >= 0 {
		return f.visible
	}
	return len(f.cache)
}

func (f *fakePipelined) Greedy(first, n int, each func(int) bool) error {
	if n < 1 || len(f.cache)+n > f.maxCtx {
		f.t.Fatalf("greedy of %d steps after %d positions, context %d", n, len(f.cache), f.maxCtx)
	}
	defer func() { f.visible = -1 }()
	base, in := len(f.cache), first
	var outs []int
	for k := 0; k < n; k++ {
		for len(outs) < min(n, k+1+f.ahead) {
			f.cache = append(f.cache, in)
			f.track()
			in = f.next(len(f.cache))
			outs = append(outs, in)
		}
		f.steps++
		f.visible = base + k + 1
		if !each(outs[k]) {
			f.cache = f.cache[:base+k+1]
			return nil
		}
	}
	f.cache = f.cache[:base+n]
	return nil
}

// TestPipelinedEqualsVerifyLoop: greedy runs through Greedy give the same
// report, text, step events and cache as one Verify step a token.
func TestPipelinedEqualsVerifyLoop(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	for trial := 0; trial < 60; trial++ {
		vocab, order := 6+rng.Intn(30), 1+rng.Intn(3)
		prompt := repeatPrompt(rng, vocab, 3+rng.Intn(100))
		maxNew := 1 + rng.Intn(120)
		maxCtx := 4096
		if trial%3 == 0 {
			maxCtx = len(prompt) + rng.Intn(60)
		}
		var eos []int
		if trial%2 == 0 {
			eos = []int{rng.Intn(vocab)}
		}
		seed := rng.Int63()
		req := Request{Prompt: prompt, MaxNewTokens: maxNew, EOS: eos}
		ref := newFake(t, vocab, order, seed, maxCtx)
		want, wtext, wsteps, err := collect(t, context.Background(), ref, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, ahead := range []int{0, 1, 2, 5} {
			eng := newFakePipelined(newFake(t, vocab, order, seed, maxCtx), ahead)
			got, text, steps, err := collect(t, context.Background(), eng, req)
			if err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("trial %d ahead %d", trial, ahead)
			checkReport(t, name, got, steps, text)
			if !slices.Equal(got.TokenIDs, want.TokenIDs) || got.StopReason != want.StopReason || got.Steps != want.Steps || text != wtext {
				t.Fatalf("%s: %v (%s, %d steps), want %v (%s, %d steps)", name, got.TokenIDs, got.StopReason, got.Steps, want.TokenIDs, want.StopReason, want.Steps)
			}
			if eng.calls.verify != 0 || eng.steps != want.Steps {
				t.Errorf("%s: %d verify calls, %d greedy steps, want 0 and %d", name, eng.calls.verify, eng.steps, want.Steps)
			}
			if len(steps) != len(wsteps) {
				t.Fatalf("%s: %d step events, want %d", name, len(steps), len(wsteps))
			}
			for i := range steps {
				if steps[i].NewTokens != wsteps[i].NewTokens || steps[i].Context != wsteps[i].Context || steps[i].Step != wsteps[i].Step {
					t.Fatalf("%s: step event %d %+v, want %+v", name, i, steps[i], wsteps[i])
				}
			}
			if !slices.Equal(eng.cache, ref.cache) {
				t.Fatalf("%s: cache %v, want %v", name, eng.cache, ref.cache)
			}
		}
	}
}

// TestPipelinedCancel: cancelling during a pipelined run stops it after
// the token in hand, as between Verify steps.
func TestPipelinedCancel(t *testing.T) {
	prompt := []int{1, 2, 3, 4, 5, 6, 7, 8}
	ctx, cancel := context.WithCancel(context.Background())
	eng := newFakePipelined(newFake(t, 50, 3, 2, 4096), 2)
	seen := 0
	rep, err := Generate(ctx, eng, nil, Request{Prompt: prompt, MaxNewTokens: 500}, func(e Event) {
		if e.Step != nil {
			if seen++; seen == 4 {
				cancel()
			}
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if rep == nil || rep.StopReason != StopCancelled || rep.Steps != 3 || eng.steps != 3 || eng.Len() != len(prompt)+3 {
		t.Fatalf("report %+v after %d greedy steps, cache %d: want cancelled after 3 steps", rep, eng.steps, eng.Len())
	}
}

// stalled is an engine whose Greedy returns without a step.
type stalled struct{ *fakeEngine }

func (stalled) Greedy(first, n int, each func(int) bool) error { return nil }

// failing is an engine whose Greedy fails after two tokens.
type failing struct{ *fakePipelined }

func (f failing) Greedy(first, n int, each func(int) bool) error {
	k := 0
	err := f.fakePipelined.Greedy(first, n, func(next int) bool { k++; return each(next) && k < 2 })
	if err != nil {
		return err
	}
	return errors.New("device lost")
}

func TestPipelinedErrors(t *testing.T) {
	req := Request{Prompt: []int{1, 2, 3}, MaxNewTokens: 10}
	if _, err := Generate(context.Background(), stalled{newFake(t, 9, 1, 1, 64)}, nil, req, nil); err == nil || !contains(err, "no greedy step") {
		t.Errorf("stalled engine: %v", err)
	}
	if _, err := Generate(context.Background(), failing{newFakePipelined(newFake(t, 9, 1, 1, 64), 1)}, nil, req, nil); err == nil || !contains(err, "device lost") || !contains(err, "position 3") {
		t.Errorf("failing engine: %v", err)
	}
}

func contains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }
