package cuda

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkStepStream asks what a decode step of this engine's kernels
// could take at best (ceiling.go). At the reference context
// ($BRIEF_SYNTH_DIR, see benchModel) it times, in one process:
//   - engine/verify1: the engine's own one-token step, replayed and
//     host-timed;
//   - steps/wait and steps/early: a graph of the step's kernels
//     (stepStreamOps) replaced by stream_read kernels that only read each
//     one's bytes, from distinct parts of one buffer so that nothing is
//     served by L2, launched overlapped as the engine's are; "wait" lets
//     each kernel's successor start once its loads are done (as the
//     mat-vecs do), "early" at once;
//   - steps/bigN: the same with only the N kernels of a megabyte or more,
//     as if every small kernel were fused into a big one;
//   - without_<stage>: steps/wait less one stage's kernels, for the
//     stage's share of the step (compare BenchmarkStepWithout's);
//   - persist/after and persist/ahead: the same reads by one persistent
//     kernel (stream_persist), a grid barrier between kernels' reads, the
//     next kernel's first reads requested after the barrier or before it;
//     persist_bigN the same for the big kernels;
//   - graphs/xK: steps/wait with K steps a graph, and x1tail with a greedy
//     step's old copy and event behind each graph: what a graph boundary
//     and that copy cost a step;
//   - one: a single stream_read of all those bytes, the device's rate.
//
// steps against one is what the count of dependent kernels costs a step
// even if each one streamed at the device's rate; engine against steps is
// what the engine's kernels lose besides.
func BenchmarkStepStream(b *testing.B) {
	m := benchModel(b)
	prompt := benchPrompt(m)
	e := benchEngine(b, m, prompt)
	defer e.Close()
	b.Run("engine/verify1", func(b *testing.B) {
		// The first step captures the graph; time replays only.
		const warm, reps = 10, 200
		var ms float64
		for i := 0; b.Loop(); i++ {
			start := time.Now()
			for j := range warm + reps {
				if j == warm {
					start = time.Now()
				}
				if _, err := e.Verify(prompt[:1]); err != nil {
					b.Fatal(err)
				}
				if err := e.Rollback(e.Len() - 1); err != nil {
					b.Fatal(err)
				}
			}
			ms = float64(time.Since(start).Microseconds()) / 1e3 / reps
		}
		b.ReportMetric(ms, "ms/step")
		b.ReportMetric(float64(e.StepBytes(e.Len()))/ms/1e6, "GB/s")
	})

	ops := stepStreamOps(e)
	total := streamSize(ops)
	b.Logf("%d kernels reading %.3f GB (StepBytes %.3f GB) on %s, %d multiprocessors", len(ops), float64(total)/1e9,
		float64(e.StepBytes(e.Len()))/1e9, e.Name(), e.d.sms)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := e.d.makeCurrent(); err != nil {
		b.Fatal(err)
	}
	s, err := newStreamBench(e.d, total)
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	report := func(b *testing.B, ms float64) {
		b.ReportMetric(ms, "ms/step")
		b.ReportMetric(float64(total)/ms/1e6, "GB/s") // the bytes of every op, even where small ones are left out
	}
	type chain struct {
		name  string
		ops   []streamOp
		early int
	}
	big := bigOps(ops)
	chains := []chain{{"steps/wait", ops, 0}, {"steps/early", ops, 1}, {fmt.Sprintf("steps/big%d", len(big)), big, 0}}
	// without_<stage>: the step less one stage's kernels, as
	// BenchmarkStepWithout leaves them out of the engine's step.
	for _, stage := range []string{"add_rmsnorm", "attention", "attn_reduce", "lm_head", "q|k|v", "o_proj", "gate|up", "silu_mul", "down_proj"} {
		var rest []streamOp
		for _, op := range ops {
			if op.what != stage {
				rest = append(rest, op)
			}
		}
		if len(rest) < len(ops) {
			chains = append(chains, chain{"without_" + stage, rest, 0})
		}
	}
	run := func(name string, measure func() (float64, error)) { measureSub(b, e.d, name, measure, report) }
	for _, tc := range chains {
		run(tc.name, func() (float64, error) { return s.timeChain(tc.ops, tc.early) })
	}
	// Graph boundaries: the step as its own graph with a greedy step's copy
	// and event behind it, and two or four steps a graph.
	run("graphs/x1tail", func() (float64, error) { return s.timeChainSteps(ops, 0, 1, true) })
	for _, k := range []int{1, 2, 4} {
		run(fmt.Sprintf("graphs/x%d", k), func() (float64, error) { return s.timeChainSteps(ops, 0, k, false) })
	}
	for _, tc := range []struct {
		name string
		ops  []streamOp
	}{{"persist", ops}, {fmt.Sprintf("persist_big%d", len(big)), big}} {
		run(tc.name+"/after", func() (float64, error) { return s.timePersist(tc.ops, 0) })
		run(tc.name+"/ahead", func() (float64, error) { return s.timePersist(tc.ops, 1) })
	}
	run("one", s.timeOne)
}

// TestStreamCeiling: the engine measures its ceiling on a small model (it
// has big kernels: lm_head and the gate|up and down linears), and the
// figures are ordered as they must be: one read of everything is no slower
// than the chain of big kernels, which is no slower than every kernel, and
// the same for the persistent kernel. (A barrier that never opened would
// hang here; that the barrier orders data is TestMLPRingSameBits' check.)
func TestStreamCeiling(t *testing.T) {
	testDevice(t)
	m := synthModel(t, "small", 5)
	e := testEngine(t, m, Options{})
	defer e.Close()
	if _, err := e.Prefill(t.Context(), []int{1, 2, 3, 4, 5, 6, 7, 8}); err != nil {
		t.Fatal(err)
	}
	c, err := e.StreamCeiling()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", c)
	ops := stepStreamOps(e)
	if c.Kernels != len(ops) || c.Bytes != streamSize(ops) || c.Position != 8 {
		t.Errorf("ceiling of %d kernels, %d bytes at %d; the step has %d kernels, %d bytes at 8", c.Kernels, c.Bytes, c.Position, len(ops), streamSize(ops))
	}
	// 5% for timing noise: each figure is a median of seven samples.
	if !(c.OneMS > 0 && c.BigMS > 0) || c.OneMS > c.BigMS*1.05 || c.BigMS > c.StepsMS*1.05 {
		t.Errorf("steps %.4f ms, big %.4f, one %.4f: want one <= big <= steps", c.StepsMS, c.BigMS, c.OneMS)
	}
	// The persistent kernel reads the same bytes with barriers between: it
	// cannot beat one read, and fewer barriers cannot cost more.
	if !(c.PersistMS > 0 && c.PersistBigMS > 0) || c.OneMS > c.PersistBigMS*1.05 || c.PersistBigMS > c.PersistMS*1.05 {
		t.Errorf("persistent %.4f ms, big %.4f, one read %.4f: want one <= big <= all", c.PersistMS, c.PersistBigMS, c.OneMS)
	}
}

// measureSub runs measure (device time in ms) as sub-benchmark name, on a
// thread where d is current (sub-benchmarks run on goroutines of their
// own), and reports its last figure.
func measureSub(b *testing.B, d *device, name string, measure func() (float64, error), report func(*testing.B, float64)) {
	b.Run(name, func(b *testing.B) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := d.makeCurrent(); err != nil {
			b.Fatal(err)
		}
		var ms float64
		for b.Loop() {
			var err error
			if ms, err = measure(); err != nil {
				b.Fatal(err)
			}
		}
		report(b, ms)
	})
}
