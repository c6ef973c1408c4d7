package cuda

/*
#include "driver.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/briefapp/brief/inference"
)

var _ inference.Pipelined = (*Engine)(nil)

// Greedy decoding with the host off the device's path. A Verify step of
// one token waits for its id on the host, which then stages the next step:
// the GPU idles for that turn every token. Here each step ends with
// argmax_chain (argmax.cu), which writes the next step's position and token
// into params on the device, so steps can be queued back to back, and the
// id into a ring of page-locked host memory, with an event behind the step
// that the host waits on. The host keeps greedyAhead steps queued past the
// one it reads, and drops the queued ones when the caller stops.

// greedyAhead is how many steps stay queued beyond the one being read.
const greedyAhead = 2

// greedySlots is the ring of page-locked ids: a slot is written again only
// after the host has read it.
const greedySlots = greedyAhead + 2

// greedyRing holds the page-locked ids and their events.
type greedyRing struct {
	ids    unsafe.Pointer // greedySlots int32, slot = position % greedySlots
	dev    devPtr         // ids as the device addresses them
	events [greedySlots]unsafe.Pointer
}

// Greedy implements inference.Pipelined: it appends first and then each
// greedy token, one step each, for at most n steps, handing every new token
// to each in order until each returns false. The tokens are those of
// one-token Verify steps (the same kernels, graph-replayed likewise).
func (e *Engine) Greedy(first, n int, each func(next int) bool) error {
	if n < 1 {
		return fmt.Errorf("greedy: %d steps", n)
	}
	if err := e.checkTokens([]int{first}); err != nil {
		return fmt.Errorf("greedy: %w", err)
	}
	if e.n+n > e.maxCtx {
		return fmt.Errorf("greedy: %d steps after %d positions would pass the maximum context of %d", n, e.n, e.maxCtx)
	}
	base, queued, read := e.n, 0, 0
	queue := func(upto int) error {
		for ; queued < min(upto, n); queued++ {
			if err := e.greedyStep(base, queued); err != nil {
				return err
			}
		}
		return nil
	}
	err := e.w.do(func() error {
		if err := e.greedySetup(); err != nil {
			return err
		}
		if err := e.stageParams([]int{first}); err != nil {
			return err
		}
		return queue(1 + greedyAhead)
	})
	for err == nil && read < n {
		var next int
		err = e.w.do(func() error {
			var err error
			if next, err = e.greedyID(base, read); err != nil {
				return err
			}
			return queue(read + 2 + greedyAhead)
		})
		if err != nil {
			break
		}
		read++
		e.n, e.lastRows = base+read, 0
		if !each(next) {
			break
		}
	}
	// The steps queued past the last id read wrote only cache slots past
	// e.n (the ring keeps rollbackMax of slack) and params, which the next
	// step stages again; wait for them so that the engine is idle.
	if serr := e.w.do(func() error { return e.d.sync("greedy steps") }); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("greedy step %d at position %d: %w%s", read+1, base+read, err, e.syncHint())
	}
	return nil
}

// greedySetup allocates the ring of ids on first use.
func (e *Engine) greedySetup() error {
	if e.ring.ids != nil {
		return nil
	}
	if e.rollbackMax < greedyAhead {
		return fmt.Errorf("the KV ring keeps %d positions of slack, greedy steps queue %d ahead", e.rollbackMax, greedyAhead)
	}
	var r greedyRing
	if err := check(C.bcu_mem_alloc_host(&r.ids, 4*greedySlots), "cuMemAllocHost"); err != nil {
		return err
	}
	var dev C.bdev_ptr
	if err := check(C.bcu_mem_host_device_ptr(&dev, r.ids), "cuMemHostGetDevicePointer"); err != nil {
		e.ring = r
		e.freeGreedy()
		return err
	}
	r.dev = devPtr(dev)
	for i := range r.events {
		if err := check(C.bcu_event_create(&r.events[i]), "cuEventCreate"); err != nil {
			e.ring = r
			e.freeGreedy()
			return err
		}
	}
	e.ring = r
	return nil
}

// freeGreedy releases the ring (inside e.w.do, before the context goes).
func (e *Engine) freeGreedy() {
	for i, ev := range e.ring.events {
		if ev != nil {
			C.bcu_event_destroy(ev)
			e.ring.events[i] = nil
		}
	}
	if e.ring.ids != nil {
		C.bcu_mem_free_host(e.ring.ids)
		e.ring.ids = nil
	}
}

// greedyStep queues step k of a run from position base (params for step 0
// staged): the one-token forward pass ending in argmax_chain, replayed as
// one graph after the first, then the event of its slot.
func (e *Engine) greedyStep(base, k int) error {
	what := fmt.Sprintf("greedy step at position %d", base+k)
	step := func() error { return e.forward(1, logitsChain) }
	switch {
	case e.opts.NoGraphs || e.chain == nil:
		// As in Verify, the first step runs kernel by kernel (loading every
		// kernel) and is then captured.
		if err := step(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if !e.opts.NoGraphs {
			if err := e.d.sync(what); err != nil {
				return err
			}
			g, err := e.d.captureGraph(what, step)
			if err != nil {
				return fmt.Errorf("capture %s: %w", what, err)
			}
			e.chain = g
		}
	default:
		if err := e.d.launchGraph(e.chain, what); err != nil {
			return err
		}
	}
	return check(C.bcu_event_record(e.ring.events[(base+k)%greedySlots], e.d.stream), "record the end of %s", what)
}

// greedyID waits for step k of a run from position base and returns its id.
func (e *Engine) greedyID(base, k int) (int, error) {
	slot := (base + k) % greedySlots
	if err := check(C.bcu_event_sync(e.ring.events[slot]), "wait for greedy step %d", k+1); err != nil {
		return 0, err
	}
	id := int(*(*int32)(unsafe.Add(e.ring.ids, 4*slot)))
	if id < 0 || id >= e.cfg.Vocab {
		return 0, fmt.Errorf("greedy step %d gave id %d, outside the vocabulary (%d)", k+1, id, e.cfg.Vocab)
	}
	return id, nil
}
