package cuda

import (
	"context"
	"fmt"
	"unsafe"
)

// The prefill, chunk by chunk, and its pipelined form: chunk i+1 runs on
// a second stream, with its own buffers, while chunk i is still running,
// so that one chunk's kernels fill the multiprocessors the other's leave
// idle (a GEMM's last, half-empty round of blocks, the small kernels, each
// launch's drain).
//
// The two chunks meet only in the KV cache. Chunk i+1's layer l reads the
// keys and values chunk i's layer l appends, and under a sliding window its
// own append may overwrite ring slots chunk i's layer l attention still
// reads. So chunk i+1's q|k|v of layer l, which appends, waits for chunk
// i's attention of layer l (or, in a chunk that skips the last layer's
// attention, its q|k|v), which comes after chunk i's append. Each kernel
// computes what it would alone: the same bits (TestPipelinedPrefill).
//
// On an H200 the reference prompt's prefill took 223.3 -> 214.3 ms and
// 155.4 -> 148.8 J (BenchmarkPrefillPipeline, 20 prefills each, run 228);
// the second lane's buffers cost 42 MB (engine 4.915 -> 4.957 GB). The
// card stays at its 700 W limit either way (BENCHMARKS.md, run 229).

// Prefill runs the prompt in chunks and returns the greedy token after it.
// With e.pipe, chunks alternate between two lanes: each chunk is queued
// once the one two before it is done, so one runs while the next waits
// behind it.
func (e *Engine) Prefill(ctx context.Context, tokens []int) (int, error) {
	if err := e.checkTokens(tokens); err != nil {
		return 0, fmt.Errorf("prefill: %w", err)
	}
	piped := e.pipe != nil && len(tokens) > e.chunk
	if piped {
		e.pipe.on, e.pipe.chunks = true, 0
		if chunks := (len(tokens) + e.chunk - 1) / e.chunk; chunks%2 == 0 {
			// The last chunk, the only one that may be short, runs on
			// lane 0: lane 1's attention workspace holds whole chunks only.
			e.w.do(func() error { e.swapLane(); return nil })
		}
	}
	next := 0
	for start := 0; start < len(tokens); start += e.chunk {
		if err := ctx.Err(); err != nil {
			if piped {
				// Nothing may run on after the call returns.
				e.w.do(func() error { return e.syncLanes("cancelled prefill") })
			}
			return 0, err
		}
		part := tokens[start:min(start+e.chunk, len(tokens))]
		last := start+len(part) == len(tokens)
		mode := logitsNone
		if last {
			mode = logitsLast
		}
		err := e.w.do(func() error {
			err := e.prefillChunk(part, mode, piped)
			if err == nil && last {
				var ids []int
				if ids, err = e.readNext(1); err == nil {
					next = ids[0]
				} else {
					err = fmt.Errorf("prefill of %d tokens at position %d: %w%s", len(part), e.n, err, e.syncHint())
				}
			}
			if piped && (err != nil || last) {
				if err2 := e.syncLanes("prefill"); err == nil {
					err = err2
				}
			}
			return err
		})
		if err != nil {
			return 0, err
		}
		e.n += len(part)
		e.lastRows = 1
	}
	return next, nil
}

// prefillChunk queues one chunk; a chunk before the last then waits for
// the chunk before it (piped: the other lane's, which becomes current).
func (e *Engine) prefillChunk(part []int, mode logitsMode, piped bool) error {
	if piped && e.pipe.lane == 1 && len(part) != e.chunk {
		return fmt.Errorf("prefill of %d tokens at position %d: lane 1 runs whole chunks of %d only", len(part), e.n, e.chunk)
	}
	if piped && !pipeOverlap {
		defer func(o bool) { e.d.overlap = o }(e.d.overlap)
		e.d.overlap = false
	}
	if err := e.stageParams(part); err != nil {
		return err
	}
	if err := e.forward(len(part), mode); err != nil {
		return fmt.Errorf("prefill of %d tokens at position %d: %w", len(part), e.n, err)
	}
	if mode == logitsLast {
		return nil
	}
	what := fmt.Sprintf("prefill of %d tokens at position %d", len(part), e.n)
	if piped {
		e.pipe.chunks++
		e.swapLane()
		what = fmt.Sprintf("prefill chunk before the one at position %d", e.n)
	}
	if err := e.d.sync(what); err != nil {
		return fmt.Errorf("%w%s", err, e.syncHint())
	}
	return nil
}

// prefillPipeline turns the pipelined prefill on for engines whose context
// holds more than one chunk. BRIEF_PREFILL_PIPELINE=0 turns it off in test
// runs (main_test.go).
var prefillPipeline = true

// pipeOverlap keeps overlapped launches (device.overlap) in the pipelined
// prefill. Every kernel lets the next one launch as it starts, so with
// them a GEMM's last round leaves its idle multiprocessors to the next
// kernel's blocks, which hold them while they wait; without them the other
// lane's kernels take them. On an H200 (run 227, BenchmarkPrefillPipeline,
// two rounds): 221.6 ms one chunk at a time, 217.5 pipelined with
// overlapped launches, 213.0 without. BRIEF_PIPE_OVERLAP=1 turns them on
// in test runs.
var pipeOverlap = false

// pipeline is the second chunk's buffers and the events between chunks.
type pipeline struct {
	alt acts // the other chunk's buffers (swapped with Engine.acts)
	// done[s][l]: lane s's chunk has finished reading and writing layer l's
	// cache. Lane 0 is the one current outside a prefill.
	done [2][]unsafe.Pointer
	lane int  // the current lane while a pipelined prefill runs
	on   bool // a pipelined prefill is queueing: forward waits and records
	// chunks counts the chunks queued since the prefill began; the first
	// waits for nothing.
	chunks int
}

// pipelines is whether the engine runs the pipelined prefill.
func (e *Engine) pipelines() bool { return prefillPipeline && e.maxCtx > e.chunk }

// open creates the second lane and the events.
func (p *pipeline) open(d *device, layers int) error {
	if err := d.openSpare(); err != nil {
		return err
	}
	for s := range p.done {
		p.done[s] = make([]unsafe.Pointer, layers)
		for l := range p.done[s] {
			ev, err := d.newSyncEvent()
			if err != nil {
				return err
			}
			p.done[s][l] = ev
		}
	}
	return nil
}

// close destroys the events (the device frees the buffers and the lane).
func (p *pipeline) close() {
	if p == nil {
		return
	}
	for s := range p.done {
		for _, ev := range p.done[s] {
			if ev != nil {
				destroyEvent(ev)
			}
		}
		p.done[s] = nil
	}
}

// swapLane makes the other lane and its buffers current.
func (e *Engine) swapLane() {
	e.acts, e.pipe.alt = e.pipe.alt, e.acts
	e.d.swapLanes()
	e.pipe.lane ^= 1
}

// beforeAppend makes layer l's q|k|v of the chunk being queued wait for the
// other lane's chunk to be done with layer l's cache.
func (e *Engine) beforeAppend(l int) error {
	p := e.pipe
	if p == nil || !p.on || p.chunks == 0 {
		return nil
	}
	return e.d.waitEvent(p.done[p.lane^1][l])
}

// cacheDone records that the chunk being queued is done with layer l's
// cache.
func (e *Engine) cacheDone(l int) error {
	p := e.pipe
	if p == nil || !p.on {
		return nil
	}
	return e.d.record(p.done[p.lane][l])
}

// syncLanes waits for both lanes and leaves lane 0 current.
func (e *Engine) syncLanes(what string) error {
	if e.pipe == nil {
		return e.d.sync(what)
	}
	err := e.d.sync(what)
	e.swapLane()
	if err2 := e.d.sync(what); err == nil {
		err = err2
	}
	if e.pipe.lane != 0 {
		e.swapLane()
	}
	e.pipe.on = false
	return err
}
