package cuda

import (
	"context"
	"testing"

	"github.com/briefapp/brief/inference"
)

// Tests of skipDeadTail (forward.go): prefill chunks before the last stop
// after the last layer's q|k|v.

// TestSkipDeadTailEngine: prefills in chunks of 512 and 130, decodes and
// verify steps give the same logits bit for bit with the last layer's
// dead tail skipped and without; and the skip drops launches only from
// the chunks before the last.
func TestSkipDeadTailEngine(t *testing.T) {
	testDevice(t)
	open := func(t *testing.T, m *inference.Model, opts Options, on bool) *Engine {
		return withKnob(t, m, opts, "skipDeadTail", &skipDeadTail, on, func(e *Engine) bool { return e.skipDeadTail })
	}
	knobSameSteps(t, 151, "the dead tail skipped", "the whole last layer", open)

	m := ropeModel(t, "small", 151)
	prompt := make([]int, 300)
	for i := range prompt {
		prompt[i] = (7 * i) % m.Config.Vocab
	}
	defer func() { skipLaunch = nil }()
	var launches [2]int
	for i, on := range []bool{false, true} {
		e := open(t, m, Options{Chunk: 100}, on)
		skipLaunch = func(string, string) bool { launches[i]++; return false }
		if _, err := e.Prefill(context.Background(), prompt); err != nil {
			t.Fatal(err)
		}
		skipLaunch = nil
		e.Close()
	}
	// Two chunks of three skip the tail: at least attention, o_proj, a
	// norm, gate|up and down each.
	if d := launches[0] - launches[1]; d < 2*5 || d%2 != 0 {
		t.Errorf("launches for three chunks: %d with the whole last layer, %d with the tail skipped", launches[0], launches[1])
	}
}

// BenchmarkSkipDeadTail times the reference prompt's prefill on the
// synthetic 7B with the last layer's dead tail run and skipped.
func BenchmarkSkipDeadTail(b *testing.B) {
	defer func(v bool) { skipDeadTail = v }(skipDeadTail)
	benchKnobPrefill(b, "skipDeadTail", func(on bool) { skipDeadTail = on }, func(e *Engine) bool { return e.skipDeadTail }, nil)
}
