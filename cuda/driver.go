package cuda

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "driver.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// ErrNoGPU is wrapped by every error that means "this machine cannot run the
// CUDA engine" (no driver, no device, a device too old), as opposed to a
// failure of a working GPU.
var ErrNoGPU = errors.New("no NVIDIA GPU found")

// devPtr is a device address (CUdeviceptr).
type devPtr uint64

// at returns the address off bytes further on.
func (p devPtr) at(off int) devPtr { return p + devPtr(off) }

// driverError is a failed driver call: the operation, what it worked on, and
// the driver's own name and description of the status.
type driverError struct {
	Op   string
	Code int
}

func (e *driverError) Error() string {
	name := C.GoString(C.bcu_error_name(C.int(e.Code)))
	msg := C.GoString(C.bcu_error_string(C.int(e.Code)))
	if name == "" {
		name = fmt.Sprintf("CUDA error %d", e.Code)
	}
	if msg != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Op, name, msg)
	}
	return fmt.Sprintf("%s: %s", e.Op, name)
}

// Driver status codes we react to.
const (
	cuErrorOutOfMemory = 2
	cuErrorNoDevice    = 100
)

func check(code C.int, op string, args ...any) error {
	if code == 0 {
		return nil
	}
	if len(args) > 0 {
		op = fmt.Sprintf(op, args...)
	}
	return &driverError{Op: op, Code: int(code)}
}

// Device attributes (CUdevice_attribute).
const (
	attrMultiprocessors = 16
	attrCCMajor         = 75
	attrCCMinor         = 76
	attrSharedOptin     = 97
)

// device is one GPU with its context, stream and loaded kernels. Every
// method must be called on a thread where its context is current (see
// worker).
type device struct {
	ordinal     int
	name        string
	cc          int // compute capability, e.g. 90 for sm_90
	sms         int // streaming multiprocessors
	sharedOptin int // most dynamic shared memory a block may opt into
	totalMem    int64

	ctx unsafe.Pointer
	lane
	// spare is a second stream with its own staging buffer, opened for the
	// pipelined prefill (openSpare); swapLanes makes it the current one.
	spare   lane
	modules []unsafe.Pointer
	funcs   map[string]unsafe.Pointer
	shared  map[string]uint32 // dynamic shared-memory limit raised so far per kernel
	// ptxTried: the PTX modules for this chip (ptxImages) have been
	// compiled, or tried; jitErr says why one failed (their kernels are
	// then missing and the plans fall back). See function.
	ptxTried bool
	jitErr   error

	// syncEach makes every launch wait for the kernel and report its own
	// failure (which kernel, which shapes); off in the fast path.
	syncEach bool
	capture  bool // inside a graph capture: no synchronization allowed

	// overlap launches kernels with programmatic stream serialization
	// (sm_90, a CUDA 12 driver): each may start while the previous one
	// drains, doing what needs no earlier result (a mat-vec's first weight
	// loads) before its grid_dep_wait. See overlapLaunches.
	overlap bool

	// prof, when set, brackets every launch with events (profiling only).
	prof *profiler
	tag  string // what the next launches compute, for the profile ("q|k|v")

	mem    memAccount
	allocs map[devPtr]int64
	argBuf [8 * 32]byte
}

// lane is a stream and the page-locked memory its small transfers go
// through.
type lane struct {
	stream unsafe.Pointer
	// hostBuf is page-locked memory for small transfers: uploads stage
	// through its first hostBufLen bytes, readbacks land in the next
	// hostBufLen. From page-locked memory a copy is one DMA queued on the
	// stream; from pageable memory the driver stages it itself.
	hostBuf unsafe.Pointer
	staged  bool // an upload from hostBuf may still be queued
}

// open creates the lane's stream and buffer.
func (l *lane) open() error {
	if err := check(C.bcu_stream_create(&l.stream), "cuStreamCreate"); err != nil {
		return err
	}
	return check(C.bcu_mem_alloc_host(&l.hostBuf, 2*hostBufLen), "cuMemAllocHost %d bytes", 2*hostBufLen)
}

// close destroys what open made.
func (l *lane) close() {
	if l.stream != nil {
		C.bcu_stream_destroy(l.stream)
		l.stream = nil
	}
	if l.hostBuf != nil {
		C.bcu_mem_free_host(l.hostBuf)
		l.hostBuf = nil
	}
}

// openSpare opens the second lane once.
func (d *device) openSpare() error {
	if d.spare.stream != nil {
		return nil
	}
	if err := d.spare.open(); err != nil {
		d.spare.close()
		return err
	}
	return nil
}

// swapLanes makes the spare lane current and the current one spare.
func (d *device) swapLanes() { d.lane, d.spare = d.spare, d.lane }

// newSyncEvent creates an event for ordering only (no timing).
func (d *device) newSyncEvent() (unsafe.Pointer, error) {
	var ev unsafe.Pointer
	return ev, check(C.bcu_event_create_sync(&ev), "cuEventCreate")
}

func destroyEvent(ev unsafe.Pointer) { C.bcu_event_destroy(ev) }

// record marks ev at this point of the current stream.
func (d *device) record(ev unsafe.Pointer) error {
	return check(C.bcu_event_record(ev, d.stream), "cuEventRecord")
}

// waitEvent makes later work on the current stream wait for ev's last
// record.
func (d *device) waitEvent(ev unsafe.Pointer) error {
	return check(C.bcu_stream_wait_event(d.stream, ev), "cuStreamWaitEvent")
}

const hostBufLen = 1 << 16

// memAccount is the engine's own accounting of device memory. Calls inside
// e.w.do change it; Engine.Memory reads it without taking e.w's lock, so a
// monitor may ask while a step runs.
type memAccount struct{ cur, peak atomic.Int64 }

// add counts bytes allocated (negative: freed).
func (m *memAccount) add(bytes int64) {
	cur := m.cur.Add(bytes)
	for p := m.peak.Load(); cur > p && !m.peak.CompareAndSwap(p, cur); p = m.peak.Load() {
	}
}

// openDevice loads the driver, checks the GPU and creates a context on the
// calling thread, which must be locked (runtime.LockOSThread).
// driverDevice loads and starts the CUDA driver and returns its handle of
// GPU ordinal.
func driverDevice(ordinal int) (C.int, error) {
	var errBuf [512]C.char
	if C.bcu_open(&errBuf[0], C.size_t(len(errBuf))) != 0 {
		return 0, fmt.Errorf("%w: libcuda.so.1 could not be loaded (%s)", ErrNoGPU, C.GoString(&errBuf[0]))
	}
	if code := C.bcu_init(); code != 0 {
		if code == cuErrorNoDevice {
			return 0, fmt.Errorf("%w: the NVIDIA driver reports no device", ErrNoGPU)
		}
		return 0, fmt.Errorf("%w: %v", ErrNoGPU, check(code, "cuInit"))
	}
	var n C.int
	if err := check(C.bcu_device_count(&n), "cuDeviceGetCount"); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNoGPU, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: the NVIDIA driver reports no device", ErrNoGPU)
	}
	if ordinal < 0 || ordinal >= int(n) {
		return 0, fmt.Errorf("%w: GPU %d asked for, the driver reports %d", ErrNoGPU, ordinal, n)
	}
	var dev C.int
	if err := check(C.bcu_device_get(&dev, C.int(ordinal)), "cuDeviceGet(%d)", ordinal); err != nil {
		return 0, err
	}
	return dev, nil
}

// pciBusID is the PCI bus id of CUDA's GPU ordinal
// ("domain:bus:device.function", hex): what NVML knows it by, since the
// two number GPUs differently (CUDA puts the fastest first, and
// CUDA_VISIBLE_DEVICES renumbers).
func pciBusID(ordinal int) (string, error) {
	dev, err := driverDevice(ordinal)
	if err != nil {
		return "", err
	}
	var id [64]C.char
	if err := check(C.bcu_device_pci_bus_id(&id[0], C.int(len(id)), dev), "cuDeviceGetPCIBusId(%d)", ordinal); err != nil {
		return "", err
	}
	return C.GoString(&id[0]), nil
}

func openDevice(ordinal int) (*device, error) {
	dev, err := driverDevice(ordinal)
	if err != nil {
		return nil, err
	}
	d := &device{ordinal: ordinal, funcs: map[string]unsafe.Pointer{}, shared: map[string]uint32{}, allocs: map[devPtr]int64{}}
	var name [256]C.char
	if err := check(C.bcu_device_name(&name[0], C.int(len(name)), dev), "cuDeviceGetName"); err != nil {
		return nil, err
	}
	d.name = C.GoString(&name[0])
	attr := func(a int) (int, error) {
		var v C.int
		err := check(C.bcu_device_attr(&v, C.int(a), dev), "cuDeviceGetAttribute(%d)", a)
		return int(v), err
	}
	major, err := attr(attrCCMajor)
	if err != nil {
		return nil, err
	}
	minor, err := attr(attrCCMinor)
	if err != nil {
		return nil, err
	}
	d.cc = major*10 + minor
	if d.cc < 80 {
		return nil, fmt.Errorf("%w: %s is sm_%d%d; Brief's CUDA engine needs sm_80 (Ampere) or newer", ErrNoGPU, d.name, major, minor)
	}
	if d.sms, err = attr(attrMultiprocessors); err != nil {
		return nil, err
	}
	if d.sharedOptin, err = attr(attrSharedOptin); err != nil {
		return nil, err
	}
	// Only sm_90 runs cubins built with griddepcontrol: newer chips JIT the
	// compute_80 PTX, which has no grid_dep_wait, so they must not overlap.
	d.overlap = overlapLaunches && d.cc == 90 && C.bcu_has_launch_ex() != 0
	var total C.size_t
	if err := check(C.bcu_device_total_mem(&total, dev), "cuDeviceTotalMem"); err != nil {
		return nil, err
	}
	d.totalMem = int64(total)
	if err := check(C.bcu_ctx_create(&d.ctx, dev), "cuCtxCreate on %s", d.name); err != nil {
		return nil, err
	}
	if err := d.lane.open(); err != nil {
		d.close()
		return nil, err
	}
	if err := d.loadModules(); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

// close frees everything the device holds; the context goes last.
func (d *device) close() {
	if d.ctx == nil {
		return
	}
	for p := range d.allocs {
		C.bcu_mem_free(C.bdev_ptr(p))
	}
	d.allocs = map[devPtr]int64{}
	d.mem.cur.Store(0)
	for _, m := range d.modules {
		C.bcu_module_unload(m)
	}
	d.modules = nil
	d.lane.close()
	d.spare.close()
	C.bcu_ctx_destroy(d.ctx)
	d.ctx = nil
}

// makeCurrent binds the context to the calling (locked) thread.
func (d *device) makeCurrent() error {
	return check(C.bcu_ctx_set_current(d.ctx), "cuCtxSetCurrent")
}

// freeMemory reports the device's free and total bytes.
func (d *device) freeMemory() (free, total int64, err error) {
	var f, t C.size_t
	err = check(C.bcu_mem_info(&f, &t), "cuMemGetInfo")
	return int64(f), int64(t), err
}

// alloc allocates bytes of device memory (rounded up to 256) and accounts it.
func (d *device) alloc(bytes int64, what string) (devPtr, error) {
	if bytes <= 0 {
		bytes = 256
	}
	bytes = (bytes + 255) &^ 255
	var p C.bdev_ptr
	if code := C.bcu_mem_alloc(&p, C.size_t(bytes)); code != 0 {
		if code == cuErrorOutOfMemory {
			free, _, _ := d.freeMemory()
			return 0, fmt.Errorf("not enough GPU memory for %s: need %s more, %s free on %s", what, mib(bytes), mib(free), d.name)
		}
		return 0, check(code, "cuMemAlloc %s (%d bytes) for %s", mib(bytes), bytes, what)
	}
	d.allocs[devPtr(p)] = bytes
	d.mem.add(bytes)
	return devPtr(p), nil
}

// free releases an allocation made by alloc.
func (d *device) free(p devPtr) error {
	n, ok := d.allocs[p]
	if !ok {
		return nil
	}
	delete(d.allocs, p)
	d.mem.add(-n)
	return check(C.bcu_mem_free(C.bdev_ptr(p)), "cuMemFree")
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// upload copies host bytes to the device on the stream and waits for it,
// so that the copy comes after the stream's work before it and before the
// work after it. (cuMemcpyHtoD ran on the legacy stream, which our
// non-blocking stream does not wait for: a memset queued on the stream just
// before, as the tests' mustAlloc does, could land after the copy, and
// from pageable memory the copy may still be in flight when it returns.
// Run 127, H200: TestAddRMSNormVT4SameBits read that memset's NaNs.)
func (d *device) upload(dst devPtr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	err := check(C.bcu_memcpy_htod_async(C.bdev_ptr(dst), unsafe.Pointer(&src[0]), C.size_t(len(src)), d.stream), "copy %d bytes to the GPU", len(src))
	if err == nil {
		err = d.sync("copy to the GPU")
	}
	runtime.KeepAlive(src)
	return err
}

// download copies device bytes to the host after the stream's work is done.
// Up to hostBufLen bytes (a step's ids) are copied by a DMA queued behind
// that work into hostBuf's second half, so one wait covers both; more (the
// logits) are copied after the wait.
func (d *device) download(dst []byte, src devPtr) error {
	if len(dst) == 0 {
		return nil
	}
	if len(dst) <= hostBufLen {
		buf := unsafe.Add(d.hostBuf, hostBufLen)
		if err := check(C.bcu_memcpy_dtoh_async(buf, C.bdev_ptr(src), C.size_t(len(dst)), d.stream), "copy %d bytes from the GPU", len(dst)); err != nil {
			return err
		}
		if err := d.sync("copy from the GPU"); err != nil {
			return err
		}
		copy(dst, unsafe.Slice((*byte)(buf), len(dst)))
		return nil
	}
	if err := d.sync("copy from the GPU"); err != nil {
		return err
	}
	err := check(C.bcu_memcpy_dtoh(unsafe.Pointer(&dst[0]), C.bdev_ptr(src), C.size_t(len(dst))), "copy %d bytes from the GPU", len(dst))
	runtime.KeepAlive(dst)
	return err
}

// uploadAsync queues a small copy (at most hostBufLen bytes) on the stream,
// staged through hostBuf so that it is ordered with the kernels around it.
func (d *device) uploadAsync(dst devPtr, src []byte) error {
	if len(src) > hostBufLen {
		return fmt.Errorf("uploadAsync: %d bytes is over %d", len(src), hostBufLen)
	}
	// The previous upload may still read hostBuf; finish it first.
	if d.staged {
		if err := d.sync("stage parameters"); err != nil {
			return err
		}
	}
	copy(unsafe.Slice((*byte)(d.hostBuf), hostBufLen), src)
	d.staged = true
	return check(C.bcu_memcpy_htod_async(C.bdev_ptr(dst), d.hostBuf, C.size_t(len(src)), d.stream), "copy %d bytes to the GPU", len(src))
}

// memset fills device bytes with v on the stream.
func (d *device) memset(dst devPtr, v byte, bytes int64) error {
	return check(C.bcu_memset_d8_async(C.bdev_ptr(dst), C.uchar(v), C.size_t(bytes), d.stream), "cuMemsetD8 %d bytes", bytes)
}

// sync waits for the stream; what names the work waited on in errors.
func (d *device) sync(what string) error {
	if d.capture {
		return nil
	}
	if err := check(C.bcu_stream_sync(d.stream), "%s on %s", what, d.name); err != nil {
		return err
	}
	d.staged = false
	return nil
}

// overlapLaunches lets openDevice turn on device.overlap where the GPU and
// driver support it. Every kernel calls grid_dep_wait before it touches
// memory an earlier kernel writes or reads (TestKernelsWaitForPredecessor),
// so either setting computes the same bits; tests and benchmarks compare.
var overlapLaunches = true

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// launchShape is how a kernel runs.
type launchShape struct {
	Grid, Block [3]uint32
	Shared      uint32
	Cooperative bool // every block resident at once (grid barriers), or the launch fails
}

// launch queues kernel name with args (devPtr, int, int32, uint32, float32)
// on the stream. shapes describes the problem for error messages.
func (d *device) launch(name string, ls launchShape, shapes string, args ...any) error {
	if skipLaunch != nil && skipLaunch(name, d.tag) {
		return nil
	}
	if extraLaunches > 0 && name != "noop_boundary" {
		if err := d.launchWithoutExtras(name, ls, shapes, args...); err != nil {
			return err
		}
		for range extraLaunches {
			if err := d.launchWithoutExtras("noop_boundary", launchShape{Grid: [3]uint32{1}, Block: [3]uint32{32}}, "boundary"); err != nil {
				return err
			}
		}
		return nil
	}
	return d.launchWithoutExtras(name, ls, shapes, args...)
}

// launchWithoutExtras is launch without the benchmarks' extra boundaries.
func (d *device) launchWithoutExtras(name string, ls launchShape, shapes string, args ...any) error {
	f, err := d.function(name)
	if err != nil {
		return err
	}
	if ls.Shared > 48<<10 && d.shared[name] < ls.Shared {
		if int(ls.Shared) > d.sharedOptin {
			return fmt.Errorf("kernel %s (%s) needs %d bytes of shared memory, %s allows %d", name, shapes, ls.Shared, d.name, d.sharedOptin)
		}
		if err := check(C.bcu_func_set_max_dynamic_shared(f, C.int(ls.Shared)), "raise shared memory of %s to %d", name, ls.Shared); err != nil {
			return err
		}
		d.shared[name] = ls.Shared
	}
	if len(args) > 32 {
		return fmt.Errorf("kernel %s: %d arguments, at most 32", name, len(args))
	}
	b := d.argBuf[:]
	for i, a := range args {
		s := b[8*i : 8*i+8]
		switch v := a.(type) {
		case devPtr:
			putU64(s, uint64(v))
		case int:
			if v != int(int32(v)) {
				return fmt.Errorf("kernel %s (%s): argument %d = %d overflows int32", name, shapes, i, v)
			}
			putU32(s, uint32(int32(v)))
		case int32:
			putU32(s, uint32(v))
		case uint32:
			putU32(s, v)
		case float32:
			putU32(s, math.Float32bits(v))
		default:
			return fmt.Errorf("kernel %s: argument %d has unsupported type %T", name, i, a)
		}
	}
	g, bl := ls.Grid, ls.Block
	for i := range 3 {
		if g[i] == 0 {
			g[i] = 1
		}
		if bl[i] == 0 {
			bl[i] = 1
		}
	}
	if d.prof != nil && !d.capture {
		if err := d.prof.before(d, name); err != nil {
			return err
		}
	}
	if failOverlapCapture && d.capture && d.overlap {
		return fmt.Errorf("launch %s: overlapped launch refused during capture (test)", name)
	}
	code := C.bcu_launch(f, C.uint(g[0]), C.uint(g[1]), C.uint(g[2]), C.uint(bl[0]), C.uint(bl[1]), C.uint(bl[2]),
		C.uint(ls.Shared), d.stream, unsafe.Pointer(&d.argBuf[0]), C.int(len(args)), boolInt(d.overlap), boolInt(ls.Cooperative))
	if err := check(code, "launch %s grid %v block %v shared %d (%s)", name, g, bl, ls.Shared, shapes); err != nil {
		return err
	}
	if d.prof != nil && !d.capture {
		if err := d.prof.after(d); err != nil {
			return err
		}
	}
	if d.syncEach && !d.capture {
		if err := check(C.bcu_stream_sync(d.stream), "kernel %s (%s) grid %v block %v", name, shapes, g, bl); err != nil {
			return err
		}
	}
	return nil
}

func putU64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

func putU32(b []byte, v uint32) {
	for i := range 4 {
		b[i] = byte(v >> (8 * i))
	}
	for i := 4; i < 8; i++ {
		b[i] = 0
	}
}

// graph is an instantiated CUDA graph.
type graph struct {
	g, exec unsafe.Pointer
}

// captureGraph records what body queues on the stream into a graph. A
// driver that runs overlapped launches but cannot capture them (graphs got
// programmatic edges in CUDA 12.3) fails the capture; the device then stops
// overlapping and captures again.
func (d *device) captureGraph(what string, body func() error) (*graph, error) {
	g, err := d.capture1(what, body)
	if err == nil || !d.overlap {
		return g, err
	}
	d.overlap = false
	g, err2 := d.capture1(what, body)
	if err2 != nil {
		return nil, errors.Join(err, err2)
	}
	return g, nil
}

// skipLaunch, when set, drops the launches it names (kernel, AWQ tag):
// BenchmarkStepWithout times steps with one stage left out, which bounds
// what fusing it away could save. The results are then wrong; only
// benchmarks set it.
var skipLaunch func(kernel, tag string) bool

// extraLaunches, when positive, adds that many empty kernels
// (noop_boundary) after every launch: BenchmarkStepBoundaries times what a
// kernel boundary costs in a replayed step. Only benchmarks set it.
var extraLaunches = 0

// failOverlapCapture makes launches fail while capturing with overlap on
// (tests of captureGraph's fallback).
var failOverlapCapture = false

func (d *device) capture1(what string, body func() error) (*graph, error) {
	if err := check(C.bcu_capture_begin(d.stream), "begin capture of %s", what); err != nil {
		return nil, err
	}
	d.capture = true
	berr := body()
	d.capture = false
	var g unsafe.Pointer
	eerr := check(C.bcu_capture_end(d.stream, &g), "end capture of %s", what)
	if berr != nil || eerr != nil {
		if g != nil {
			C.bcu_graph_destroy(g)
		}
		return nil, errors.Join(berr, eerr)
	}
	var exec unsafe.Pointer
	if err := check(C.bcu_graph_instantiate(&exec, g), "instantiate graph of %s", what); err != nil {
		C.bcu_graph_destroy(g)
		return nil, err
	}
	return &graph{g: g, exec: exec}, nil
}

// launchGraph queues the graph on the stream.
func (d *device) launchGraph(gr *graph, what string) error {
	return check(C.bcu_graph_launch(gr.exec, d.stream), "launch graph of %s", what)
}

func (gr *graph) destroy() {
	if gr.exec != nil {
		C.bcu_graph_exec_destroy(gr.exec)
	}
	if gr.g != nil {
		C.bcu_graph_destroy(gr.g)
	}
	gr.exec, gr.g = nil, nil
}

// worker runs the engine's CUDA calls one at a time on the calling
// goroutine's thread, locked for the call, with the engine's context made
// current first (the driver binds a context to a thread). Until session 15
// it was one goroutine on a locked thread that every call was handed to:
// a Verify step then waited for two thread wake-ups, and the GPU idled
// through them between steps.
type worker struct {
	mu  sync.Mutex
	ctx unsafe.Pointer // the device's context once opened (set inside do)
}

func newWorker() *worker { return &worker{} }

// do runs f with the context current and returns its error; a panic in f
// is turned into an error so the engine's owner sees it.
func (w *worker) do(f func() error) (err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cuda engine: internal error: %v", r)
		}
	}()
	if w.ctx != nil {
		if err := check(C.bcu_ctx_set_current(w.ctx), "cuCtxSetCurrent"); err != nil {
			return err
		}
	}
	return f()
}

// stop forgets the context (the device has closed it).
func (w *worker) stop() {
	w.mu.Lock()
	w.ctx = nil
	w.mu.Unlock()
}

// shapeString formats dimensions as "a x b x c" for messages.
func shapeString(dims ...int) string {
	s := make([]string, len(dims))
	for i, v := range dims {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, "x")
}
