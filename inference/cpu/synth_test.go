package cpu

import (
	"context"
	"math/rand"
	"slices"
	"testing"

	"github.com/briefapp/brief/inference"
	"github.com/briefapp/brief/inference/synth"
)

// TestSynthWindow loads synthetic Mistral- and Llama-shaped checkpoints
// through the real loader and checks the engine against the naive forward
// pass over a sequence three times the tiny shape's window of 16, then
// checks that prompt lookup generates greedy's tokens on it.
func TestSynthWindow(t *testing.T) {
	for _, shape := range []string{"tiny", "llama-tiny"} {
		dir := t.TempDir()
		if _, err := synth.Write(dir, synth.Shapes[shape], synth.Options{Seed: 3}); err != nil {
			t.Fatal(err)
		}
		m, err := inference.OpenModel(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if shape == "tiny" && m.Config.SlidingWindow != 16 {
			t.Fatalf("tiny: window %d, want 16", m.Config.SlidingWindow)
		}
		e, err := New(m, Options{PrefillChunk: 7})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewSource(1))
		tokens := randTokens(rng, 50, m.Config.Vocab)
		want := naiveLogits(m.Config, e.w, tokens)
		next, err := e.Prefill(context.Background(), tokens[:20])
		if err != nil {
			t.Fatal(err)
		}
		if next != argmax(want[19]) {
			t.Errorf("%s: prefill next %d, naive %d", shape, next, argmax(want[19]))
		}
		for pos := 20; pos < len(tokens); pos += 6 {
			k := min(6, len(tokens)-pos)
			got, err := e.Verify(tokens[pos : pos+k])
			if err != nil {
				t.Fatal(err)
			}
			for i, id := range got {
				if id != argmax(want[pos+i]) {
					t.Errorf("%s pos %d: %d, naive %d", shape, pos+i, id, argmax(want[pos+i]))
				}
			}
			l, _ := e.LastLogits()
			if d := maxDiff(l, want[pos+k-1]); d > 1e-3 {
				t.Errorf("%s pos %d: logits differ by %g", shape, pos+k-1, d)
			}
		}

		prompt := append(slices.Repeat(tokens[:12], 3), tokens[12:30]...)
		greedy, err := inference.Generate(context.Background(), e, nil, inference.Request{Prompt: prompt, MaxNewTokens: 40}, nil)
		if err != nil {
			t.Fatal(err)
		}
		look, err := inference.Generate(context.Background(), e, nil, inference.Request{Prompt: prompt, MaxNewTokens: 40, Strategy: inference.Lookup}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(look.TokenIDs, greedy.TokenIDs) {
			t.Errorf("%s: lookup %v\ngreedy %v", shape, look.TokenIDs, greedy.TokenIDs)
		}
	}
}
