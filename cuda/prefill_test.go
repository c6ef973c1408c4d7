package cuda

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/briefapp/brief/inference"
)

// Tests of the pipelined prefill (prefill.go).

func withPipeline(t *testing.T, m *inference.Model, opts Options, on bool) *Engine {
	t.Helper()
	return withKnob(t, m, opts, "prefillPipeline", &prefillPipeline, on, func(e *Engine) bool { return e.pipe != nil })
}

// TestPipelinedPrefill: prefills in chunks of 512 and 130 (the KV ring
// wrapping under hd64's window), decodes and verify steps give the same
// logits bit for bit with two chunks in flight and with one.
func TestPipelinedPrefill(t *testing.T) {
	testDevice(t)
	knobSameSteps(t, 27, "the pipelined prefill", "one chunk at a time", withPipeline)
}

// cancelAfter is a context whose Err turns to context.Canceled after n
// calls: Prefill asks once before each chunk.
type cancelAfter struct {
	context.Context
	n int
}

func (c *cancelAfter) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

// TestPipelinedPrefillCancel: a prefill cancelled with chunks in flight
// returns context.Canceled and leaves the engine as after the chunks it
// queued, both lanes idle: the rest of the prompt then gives the logits
// of an uncancelled prefill, bit for bit, and the engine stays usable.
func TestPipelinedPrefillCancel(t *testing.T) {
	testDevice(t)
	m := ropeModel(t, "hd64", 28)
	rng := rand.New(rand.NewPCG(29, 30))
	prompt := make([]int, 700)
	for i := range prompt {
		prompt[i] = rng.IntN(m.Config.Vocab)
	}
	opts := Options{Chunk: 64}
	ref := withPipeline(t, m, opts, true)
	defer ref.Close()
	want, err := ref.Prefill(context.Background(), prompt)
	if err != nil {
		t.Fatal(err)
	}
	wantLogits, err := ref.LastLogits()
	if err != nil {
		t.Fatal(err)
	}
	for _, after := range []int{1, 2, 5} {
		e := withPipeline(t, m, opts, true)
		_, err := e.Prefill(&cancelAfter{context.Background(), after}, prompt)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled after %d chunks: %v", after, err)
		}
		if e.Len() != after*opts.Chunk {
			t.Fatalf("cancelled after %d chunks: %d positions held, want %d", after, e.Len(), after*opts.Chunk)
		}
		got, err := e.Prefill(context.Background(), prompt[e.Len():])
		if err != nil {
			t.Fatal(err)
		}
		gotLogits, err := e.LastLogits()
		if err != nil {
			t.Fatal(err)
		}
		if got != want || !slices.Equal(gotLogits, wantLogits) {
			t.Errorf("cancelled after %d chunks, then the rest: next %d, want %d (logits equal: %v)", after, got, want, slices.Equal(gotLogits, wantLogits))
		}
		if _, err := e.Verify([]int{got}); err != nil {
			t.Fatal(err)
		}
		e.Close()
	}
}

// TestPipelineOnlyWhereItFits: an engine takes the second lane only where
// free memory holds it as well; with room for the engine alone it opens
// without it and prefills one chunk at a time, the same bits; with less it
// says there is not enough memory.
func TestPipelineOnlyWhereItFits(t *testing.T) {
	testDevice(t)
	m := ropeModel(t, "hd64", 31)
	prompt := make([]int, 700)
	for i := range prompt {
		prompt[i] = (5 * i) % m.Config.Vocab
	}
	opts := Options{Chunk: 130}
	prefill := func(e *Engine) []float32 {
		if _, err := e.Prefill(context.Background(), prompt); err != nil {
			t.Fatal(err)
		}
		l, err := e.LastLogits()
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	e := withPipeline(t, m, opts, true)
	need, pipe := e.memoryNeed()
	want := prefill(e)
	e.Close()
	if need <= 0 || pipe <= 0 {
		t.Fatalf("memory need %d, second lane %d", need, pipe)
	}
	defer func(v bool) { freeMemoryLimit, prefillPipeline = 0, v }(prefillPipeline)
	prefillPipeline = true
	freeMemoryLimit = need + pipe/2
	e = testEngine(t, m, opts)
	if e.pipe != nil {
		t.Fatalf("%d bytes free, %d needed and %d for the second lane: the engine took it", freeMemoryLimit, need, pipe)
	}
	if got := prefill(e); !slices.Equal(got, want) {
		t.Error("one chunk at a time: other logits than pipelined")
	}
	e.Close()
	freeMemoryLimit = need - 1
	if e, err := New(m, opts); err == nil || !strings.Contains(err.Error(), "not enough GPU memory") {
		if e != nil {
			e.Close()
		}
		t.Fatalf("%d bytes free, %d needed: %v", freeMemoryLimit, need, err)
	}
}

// BenchmarkPrefillPipeline times the reference prompt's prefill on the
// synthetic 7B with one chunk at a time and with two in flight.
func BenchmarkPrefillPipeline(b *testing.B) {
	defer func(v bool) { prefillPipeline = v }(prefillPipeline)
	benchKnobPrefill(b, "pipeline", func(on bool) { prefillPipeline = on }, func(e *Engine) bool { return e.pipe != nil }, nil)
}
