package cuda

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// The decode step's streaming ceiling: the engine's one-token step with
// every kernel replaced by stream_read (stream.cu), a plain read of that
// kernel's bytes, launched as the engine launches its kernels. What such a
// step takes is the least any design of the same dependent kernels could
// take; one read of all the bytes is the device's own rate. Measured on an
// H100 (BENCHMARKS.md, session 8): 1.77 ms for the 260 kernels against 1.52
// for one read, where the engine's step takes 2.41. A persistent kernel
// that passes a grid barrier where each kernel would end, and requests each
// one's first reads before it, takes 1.74 ms for the 260 and 1.50 for the
// 161 big ones (session 9): as fast as one read.

// StreamCeiling is one measurement of the ceiling.
type StreamCeiling struct {
	Position   int     // positions in the cache during the step
	Kernels    int     // kernels of the engine's one-token step
	BigKernels int     // those that read a megabyte or more
	Bytes      int64   // what the kernels read together
	StepsMS    float64 // every kernel as a plain read
	BigMS      float64 // the big kernels alone, as if every small one were fused away (0: none)
	OneMS      float64 // one read of all the bytes
	// One persistent kernel (stream_persist) reading every kernel's bytes,
	// a grid barrier where a kernel would end, each kernel's first reads
	// requested before the barrier: for every kernel, and for the big ones.
	PersistMS, PersistBigMS float64
}

// streamOp is one kernel of a decode step: its stage and the bytes it must
// read.
type streamOp struct {
	what  string
	bytes int64
}

// streamBigBytes: kernels that read at least this much count as big.
const streamBigBytes = 1 << 20

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
	ops := []streamOp{{"add_rmsnorm", 4 * hid}} // embed_rmsnorm: a table row and the weights
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

// slot is the part of the buffer an op reads: its bytes, 16-byte aligned.
func (op streamOp) slot() int64 { return (op.bytes + 15) &^ 15 }

// streamSize is what ops read together, each from its slot of one buffer.
func streamSize(ops []streamOp) int64 {
	var n int64
	for _, op := range ops {
		n += op.slot()
	}
	return n
}

// streamBench is a buffer to read and the launches that read it. Its
// methods run inside e.w.do.
type streamBench struct {
	d         *device
	buf, sink devPtr
	maxBlocks int
	bytes     int64
}

// newStreamBench allocates a buffer of bytes, after checking that the
// device has them free.
func newStreamBench(d *device, bytes int64) (*streamBench, error) {
	if bytes/16 > 1<<31-1 {
		return nil, fmt.Errorf("stream ceiling: %d bytes is more than stream_read counts", bytes)
	}
	free, _, err := d.freeMemory()
	if err != nil {
		return nil, err
	}
	if need := bytes + 256<<20; free < need {
		return nil, fmt.Errorf("stream ceiling: it reads %.2f GB from a buffer of its own, and %s has %.2f GB free", float64(bytes)/1e9, d.name, float64(free)/1e9)
	}
	s := &streamBench{d: d, maxBlocks: 4 * d.sms, bytes: bytes}
	if s.buf, err = d.alloc(bytes, "stream ceiling buffer"); err != nil {
		return nil, err
	}
	if s.sink, err = d.alloc(int64(4*s.maxBlocks), "stream ceiling sink"); err != nil {
		return nil, errors.Join(err, d.free(s.buf))
	}
	return s, nil
}

func (s *streamBench) close() error { return errors.Join(s.d.free(s.buf), s.d.free(s.sink)) }

// read queues one stream_read of bytes at off; early lets the next kernel
// launch at once instead of after the reads.
func (s *streamBench) read(off, bytes int64, early int) error {
	n16 := bytes / 16
	blocks := int(min(max((n16+1023)/1024, 1), int64(s.maxBlocks)))
	return s.d.launch("stream_read", launchShape{Grid: [3]uint32{uint32(blocks)}, Block: [3]uint32{256}}, "stream ceiling",
		s.buf.at(int(off)), int(n16), s.sink, early)
}

// chain captures k copies of ops as one graph of reads, each op of a copy
// from its own part of the buffer.
func (s *streamBench) chain(ops []streamOp, early, k int) (*graph, error) {
	return s.d.captureGraph("stream ceiling", func() error {
		for range k {
			var off int64
			for _, op := range ops {
				if err := s.read(off, op.bytes, early); err != nil {
					return fmt.Errorf("%s: %w", op.what, err)
				}
				off += op.slot()
			}
		}
		return nil
	})
}

// time is the median over 7 samples of queue's device time, in ms a run,
// each sample 20 runs between two events.
func (s *streamBench) time(queue func() error) (float64, error) {
	tm, err := s.d.newTimer()
	if err != nil {
		return 0, err
	}
	defer tm.destroy()
	const reps = 20
	var samples []float64
	for range 7 {
		if err := s.d.start(tm); err != nil {
			return 0, err
		}
		for range reps {
			if err := queue(); err != nil {
				return 0, err
			}
		}
		ms, err := s.d.stop(tm)
		if err != nil {
			return 0, err
		}
		samples = append(samples, ms/reps)
	}
	slices.Sort(samples)
	return samples[len(samples)/2], nil
}

// timeChain times ops as a replayed graph.
func (s *streamBench) timeChain(ops []streamOp, early int) (float64, error) {
	return s.timeChainSteps(ops, early, 1, false)
}

// timeChainSteps times k copies of ops captured as one graph, in ms a
// copy; with tail, each replay is followed by what a greedy step queues
// behind its graph (hostTail). Against timeChain this is what the graph
// boundary and the id's copy cost a step.
func (s *streamBench) timeChainSteps(ops []streamOp, early, k int, tail bool) (float64, error) {
	g, err := s.chain(ops, early, k)
	if err != nil {
		return 0, err
	}
	defer g.destroy()
	var t *hostTail
	if tail {
		if t, err = s.d.newHostTail(); err != nil {
			return 0, err
		}
		defer t.destroy()
	}
	ms, err := s.time(func() error {
		if err := s.d.launchGraph(g, "stream ceiling"); err != nil || t == nil {
			return err
		}
		return s.d.queueTail(t, s.sink)
	})
	return ms / float64(k), err
}

// timePersist times ops as one stream_persist launch: one block a
// multiprocessor reads each op's bytes in turn, with a grid barrier between
// ops instead of a kernel boundary; ahead lets each thread request its
// first words of the next op before the barrier.
func (s *streamBench) timePersist(ops []streamOp, ahead int) (ms float64, err error) {
	if len(ops) == 0 {
		return 0, errors.New("stream ceiling: no reads")
	}
	starts := make([]byte, 8*(len(ops)+1))
	var off int64
	for i, op := range ops {
		binary.LittleEndian.PutUint64(starts[8*i:], uint64(off/16))
		off += op.slot()
	}
	binary.LittleEndian.PutUint64(starts[8*len(ops):], uint64(off/16))
	st, err := s.d.alloc(int64(len(starts)), "stream ceiling phases")
	if err != nil {
		return 0, err
	}
	bar, err := s.d.alloc(8, "stream ceiling barrier")
	if err != nil {
		return 0, errors.Join(err, s.d.free(st))
	}
	defer func() { err = errors.Join(err, s.d.free(st), s.d.free(bar)) }()
	if err = s.d.upload(st, starts); err != nil {
		return 0, err
	}
	if err = s.d.memset(bar, 0, 8); err != nil {
		return 0, err
	}
	ms, err = s.time(func() error {
		return s.d.launch("stream_persist", launchShape{Grid: [3]uint32{uint32(s.d.sms)}, Block: [3]uint32{1024}, Cooperative: true},
			"stream ceiling", s.buf, st, len(ops), bar, s.sink, ahead)
	})
	return ms, err
}

// timeOne times one read of all the buffer's bytes.
func (s *streamBench) timeOne() (float64, error) {
	return s.time(func() error { return s.read(0, s.bytes, 0) })
}

// bigOps is ops less the kernels that read under streamBigBytes.
func bigOps(ops []streamOp) []streamOp {
	var big []streamOp
	for _, op := range ops {
		if op.bytes >= streamBigBytes {
			big = append(big, op)
		}
	}
	return big
}

// StreamCeiling measures the ceiling of a one-token decode step at the
// engine's current position (BenchmarkStepStream has more). It needs the
// step's bytes free on the device besides the engine, for a buffer it
// frees again.
func (e *Engine) StreamCeiling() (StreamCeiling, error) {
	ops := stepStreamOps(e)
	big := bigOps(ops)
	c := StreamCeiling{Position: e.Len(), Kernels: len(ops), BigKernels: len(big), Bytes: streamSize(ops)}
	err := e.w.do(func() error {
		s, err := newStreamBench(e.d, c.Bytes)
		if err != nil {
			return err
		}
		if c.StepsMS, err = s.timeChain(ops, 0); err == nil && len(big) > 0 {
			c.BigMS, err = s.timeChain(big, 0)
		}
		if err == nil {
			c.OneMS, err = s.timeOne()
		}
		if err == nil {
			c.PersistMS, err = s.timePersist(ops, 1)
		}
		if err == nil && len(big) > 0 {
			c.PersistBigMS, err = s.timePersist(big, 1)
		}
		return errors.Join(err, s.close())
	})
	return c, err
}
