package cuda

// Device time from CUDA events: the per-launch profiler behind the kernel
// profiles, and the timer the benchmarks use.

/*
#include "driver.h"
*/
import "C"

import "unsafe"

// profiler records an event before and after each launch; collect sums the
// device time per kernel (and tag).
type profiler struct {
	events []unsafe.Pointer
	names  []string
	used   int
}

func (p *profiler) event(d *device) (unsafe.Pointer, error) {
	if p.used == len(p.events) {
		var ev unsafe.Pointer
		if err := check(C.bcu_event_create(&ev), "cuEventCreate"); err != nil {
			return nil, err
		}
		p.events = append(p.events, ev)
	}
	ev := p.events[p.used]
	p.used++
	return ev, check(C.bcu_event_record(ev, d.stream), "cuEventRecord")
}

func (p *profiler) before(d *device, name string) error {
	if d.tag != "" {
		name += " " + d.tag
	}
	p.names = append(p.names, name)
	_, err := p.event(d)
	return err
}

func (p *profiler) after(d *device) error {
	_, err := p.event(d)
	return err
}

// collect waits for the recorded work and adds each launch's milliseconds
// to sums by name, then starts over.
func (p *profiler) collect(sums map[string]float64) error {
	for i, name := range p.names {
		a, b := p.events[2*i], p.events[2*i+1]
		if err := check(C.bcu_event_sync(b), "cuEventSynchronize"); err != nil {
			return err
		}
		var ms C.float
		if err := check(C.bcu_event_elapsed(&ms, a, b), "cuEventElapsedTime"); err != nil {
			return err
		}
		sums[name] += float64(ms)
	}
	p.names, p.used = p.names[:0], 0
	return nil
}

func (p *profiler) destroy() {
	for _, ev := range p.events {
		C.bcu_event_destroy(ev)
	}
	p.events = nil
}

// timer measures device time between two points of the stream.
type timer struct{ a, b unsafe.Pointer }

func (d *device) newTimer() (*timer, error) {
	t := &timer{}
	if err := check(C.bcu_event_create(&t.a), "cuEventCreate"); err != nil {
		return nil, err
	}
	if err := check(C.bcu_event_create(&t.b), "cuEventCreate"); err != nil {
		C.bcu_event_destroy(t.a)
		return nil, err
	}
	return t, nil
}

func (d *device) start(t *timer) error {
	return check(C.bcu_event_record(t.a, d.stream), "cuEventRecord")
}

// stop records the end event, waits for it and returns milliseconds.
func (d *device) stop(t *timer) (float64, error) {
	if err := check(C.bcu_event_record(t.b, d.stream), "cuEventRecord"); err != nil {
		return 0, err
	}
	if err := check(C.bcu_event_sync(t.b), "cuEventSynchronize"); err != nil {
		return 0, err
	}
	var ms C.float
	err := check(C.bcu_event_elapsed(&ms, t.a, t.b), "cuEventElapsedTime")
	return float64(ms), err
}

func (t *timer) destroy() {
	C.bcu_event_destroy(t.a)
	C.bcu_event_destroy(t.b)
}

// hostTail is what a greedy step queues behind its graph (greedy.go): a
// 4-byte copy into page-locked memory and an event, over a ring of slots.
type hostTail struct {
	ids    unsafe.Pointer
	events [4]unsafe.Pointer
	n      int
}

func (d *device) newHostTail() (*hostTail, error) {
	t := &hostTail{}
	if err := check(C.bcu_mem_alloc_host(&t.ids, 16), "cuMemAllocHost"); err != nil {
		return nil, err
	}
	for i := range t.events {
		if err := check(C.bcu_event_create(&t.events[i]), "cuEventCreate"); err != nil {
			t.destroy()
			return nil, err
		}
	}
	return t, nil
}

// queue copies 4 bytes at src to the next slot and records its event.
func (d *device) queueTail(t *hostTail, src devPtr) error {
	slot := t.n % len(t.events)
	t.n++
	if err := check(C.bcu_memcpy_dtoh_async(unsafe.Add(t.ids, 4*slot), C.bdev_ptr(src), 4, d.stream), "copy"); err != nil {
		return err
	}
	return check(C.bcu_event_record(t.events[slot], d.stream), "cuEventRecord")
}

func (t *hostTail) destroy() {
	for _, ev := range t.events {
		if ev != nil {
			C.bcu_event_destroy(ev)
		}
	}
	if t.ids != nil {
		C.bcu_mem_free_host(t.ids)
	}
}
