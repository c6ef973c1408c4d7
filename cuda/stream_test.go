package cuda

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"
)

// streamOp is one kernel of a decode step as BenchmarkStepStream models
// it: its name and the bytes it must read.
type streamOp struct {
	what  string
	bytes int64
}

// stepStreamOps lists the kernels of e's one-token decode step at its
// current position, in launch order (forward.go), each with the bytes it
// reads at least: the packed weights of a linear, the keys and values its
// token sees, a norm's row and weights, lm_head's matrix.
func stepStreamOps(e *Engine) []streamOp {
	c := &e.cfg
	hid, I := int64(c.Hidden), int64(c.Intermediate)
	norm := streamOp{"add_rmsnorm", 8 * hid} // h, y and w of one row
	kv := int64(e.visibleKeys(e.Len())) * 2 * int64(c.KVHeads) * int64(c.HeadDim) * 2
	ap := e.attnPlan(1)
	ops := []streamOp{{"embed_gather", 2 * hid}, norm}
	for li := range e.layers {
		l := &e.layers[li]
		ops = append(ops, streamOp{"q|k|v", packedBytes(&l.qkv.p)})
		if !e.ropeFused {
			ops = append(ops, streamOp{"rope_append", 2 * int64((c.Heads+2*c.KVHeads)*c.HeadDim)})
		}
		ops = append(ops, streamOp{"attention", kv})
		if !ap.direct {
			ops = append(ops, streamOp{"attn_reduce", int64(c.Heads) * int64(ap.splits) * int64(c.HeadDim+2) * 4})
		}
		ops = append(ops, streamOp{"o_proj", packedBytes(&l.o.p)}, norm, streamOp{"gate|up", packedBytes(&l.gu.p)})
		if !e.siluFused {
			ops = append(ops, streamOp{"silu_mul", 4 * I})
		}
		ops = append(ops, streamOp{"down_proj", packedBytes(&l.down.p)})
		if li+1 < len(e.layers) {
			ops = append(ops, norm)
		}
	}
	return append(ops, norm, streamOp{"lm_head", 2 * int64(c.Vocab) * hid}, streamOp{"argmax_rows", 4 * int64(c.Vocab)})
}

// BenchmarkStepStream asks what a decode step of this engine's kernels
// could take at best. At the reference context ($BRIEF_SYNTH_DIR, see
// benchModel) it times, in one process:
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
	var total int64
	for _, op := range ops {
		total += (op.bytes + 15) &^ 15
	}
	b.Logf("%d kernels reading %.3f GB (StepBytes %.3f GB) on %s, %d multiprocessors", len(ops), float64(total)/1e9,
		float64(e.StepBytes(e.Len()))/1e9, e.Name(), e.d.sms)
	if total/16 > 1<<31-1 {
		b.Fatalf("%d bytes is more than stream_read counts", total)
	}
	d := e.d
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := d.makeCurrent(); err != nil {
		b.Fatal(err)
	}
	maxBlocks := 4 * d.sms
	buf, err := d.alloc(total, "stream buffer")
	if err != nil {
		b.Fatal(err)
	}
	defer d.free(buf)
	sink, err := d.alloc(int64(4*maxBlocks), "stream sink")
	if err != nil {
		b.Fatal(err)
	}
	defer d.free(sink)
	read := func(off, bytes int64, early int) error {
		n16 := bytes / 16
		blocks := int(min(max((n16+1023)/1024, 1), int64(maxBlocks)))
		return d.launch("stream_read", launchShape{Grid: [3]uint32{uint32(blocks)}, Block: [3]uint32{256}}, "stream",
			buf.at(int(off)), int(n16), sink, early)
	}
	// timeReplays times reps runs of queue between two events, in ms each.
	timeReplays := func(b *testing.B, queue func() error) float64 {
		tm, err := d.newTimer()
		if err != nil {
			b.Fatal(err)
		}
		defer tm.destroy()
		const reps = 20
		var samples []float64
		for range 7 {
			if err := d.start(tm); err != nil {
				b.Fatal(err)
			}
			for range reps {
				if err := queue(); err != nil {
					b.Fatal(err)
				}
			}
			ms, err := d.stop(tm)
			if err != nil {
				b.Fatal(err)
			}
			samples = append(samples, ms/reps)
		}
		slices.Sort(samples)
		return samples[len(samples)/2]
	}
	report := func(b *testing.B, ms float64) {
		b.ReportMetric(ms, "ms/step")
		b.ReportMetric(float64(total)/ms/1e6, "GB/s") // the bytes of every op, even where small ones are left out
	}
	// big: the kernels of a megabyte or more only, as if every small one
	// were fused away.
	var big []streamOp
	for _, op := range ops {
		if op.bytes >= 1<<20 {
			big = append(big, op)
		}
	}
	type chain struct {
		name  string
		ops   []streamOp
		early int
	}
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
	for _, tc := range chains {
		ops, early := tc.ops, tc.early
		b.Run(tc.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if err := d.makeCurrent(); err != nil {
				b.Fatal(err)
			}
			g, err := d.captureGraph("stream step", func() error {
				var off int64
				for _, op := range ops {
					if err := read(off, op.bytes, early); err != nil {
						return fmt.Errorf("%s: %w", op.what, err)
					}
					off += (op.bytes + 15) &^ 15
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			defer g.destroy()
			var ms float64
			for b.Loop() {
				ms = timeReplays(b, func() error { return d.launchGraph(g, "stream step") })
			}
			report(b, ms)
		})
	}
	b.Run("one", func(b *testing.B) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := d.makeCurrent(); err != nil {
			b.Fatal(err)
		}
		var ms float64
		for b.Loop() {
			ms = timeReplays(b, func() error { return read(0, total, 0) })
		}
		report(b, ms)
	})
}
