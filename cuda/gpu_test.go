package cuda

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// GPU test helpers: a device on the test's locked thread, fp16 conversion,
// and host<->device copies of typed slices. Outputs are poisoned (all bits
// set: NaN in fp16 and fp32) before each launch so unwritten elements show.

// testDevice opens GPU 0 for the calling test, or skips it without one.
func testDevice(t *testing.T) *device {
	t.Helper()
	runtime.LockOSThread()
	d, err := openDevice(0)
	if errors.Is(err, ErrNoGPU) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	d.syncEach = true
	t.Cleanup(func() { d.close(); runtime.UnlockOSThread() })
	return d
}

// TestOpenWithoutGPU: where no GPU can be used (CI), opening one fails with
// an error wrapping ErrNoGPU that says why, and nothing crashes.
func TestOpenWithoutGPU(t *testing.T) {
	w := newWorker()
	defer w.stop()
	err := w.do(func() error {
		d, err := openDevice(0)
		if err == nil {
			d.close()
		}
		return err
	})
	if err == nil {
		t.Skip("a usable GPU is present")
	}
	if !errors.Is(err, ErrNoGPU) || !strings.HasPrefix(err.Error(), "no NVIDIA GPU found: ") {
		t.Fatalf("error %q does not wrap ErrNoGPU with a reason", err)
	}
	t.Log(err)
}

// f2h rounds a float32 to fp16 bits (round to nearest even).
func f2h(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int((b>>23)&0xff) - 127 + 15
	man := b & 0x7fffff
	switch {
	case (b>>23)&0xff == 0xff: // inf or NaN
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp >= 31:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		man |= 0x800000
		shift := uint(14 - exp)
		h := man >> shift
		rem := man & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(exp)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++
	}
	return sign | uint16(h)
}

// h2f widens fp16 bits to float32.
func h2f(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0:
		if man == 0 {
			return math.Float32frombits(sign)
		}
		f := float32(man) / 1024 / 16384
		if sign != 0 {
			f = -f
		}
		return f
	case exp == 31:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	}
	return math.Float32frombits(sign | (exp-15+127)<<23 | man<<13)
}

// roundHalf is f rounded through fp16, as the GPU stores it.
func roundHalf(f float32) float32 { return h2f(f2h(f)) }

// randHalves returns n values uniform in [lo, hi), already fp16-exact.
func randHalves(rng *rand.Rand, n int, lo, hi float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = roundHalf(lo + (hi-lo)*rng.Float32())
	}
	return v
}

// bind makes d's context current on a subtest's own goroutine.
func (d *device) bind(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	if err := d.makeCurrent(); err != nil {
		t.Fatal(err)
	}
}

func (d *device) mustAlloc(t testing.TB, bytes int) devPtr {
	t.Helper()
	p, err := d.alloc(int64(bytes), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.memset(p, 0xff, int64(bytes)); err != nil {
		t.Fatal(err)
	}
	return p
}

func (d *device) upHalf(t testing.TB, v []float32) devPtr {
	t.Helper()
	b := make([]byte, 2*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint16(b[2*i:], f2h(f))
	}
	p := d.mustAlloc(t, len(b))
	if err := d.upload(p, b); err != nil {
		t.Fatal(err)
	}
	return p
}

func (d *device) upF32(t *testing.T, v []float32) devPtr {
	t.Helper()
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	p := d.mustAlloc(t, len(b))
	if err := d.upload(p, b); err != nil {
		t.Fatal(err)
	}
	return p
}

func (d *device) upI32(t *testing.T, v []int) devPtr {
	t.Helper()
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(int32(x)))
	}
	p := d.mustAlloc(t, len(b))
	if err := d.upload(p, b); err != nil {
		t.Fatal(err)
	}
	return p
}

func (d *device) downHalf(t *testing.T, p devPtr, n int) []float32 {
	t.Helper()
	b := make([]byte, 2*n)
	if err := d.download(b, p); err != nil {
		t.Fatal(err)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = h2f(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return v
}

func (d *device) downF32(t *testing.T, p devPtr, n int) []float32 {
	t.Helper()
	b := make([]byte, 4*n)
	if err := d.download(b, p); err != nil {
		t.Fatal(err)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func (d *device) downI32(t *testing.T, p devPtr, n int) []int {
	t.Helper()
	b := make([]byte, 4*n)
	if err := d.download(b, p); err != nil {
		t.Fatal(err)
	}
	v := make([]int, n)
	for i := range v {
		v[i] = int(int32(binary.LittleEndian.Uint32(b[4*i:])))
	}
	return v
}

// params builds the step-parameter block: position, then ids at kParamIds.
func params(pos int, ids []int) []int {
	p := make([]int, 4+len(ids))
	p[0] = pos
	copy(p[4:], ids)
	return p
}

// closeTo reports whether got is within abs + rel*|want| of want (never NaN).
func closeTo(got, want float64, abs, rel float64) bool {
	return !math.IsNaN(got) && math.Abs(got-want) <= abs+rel*math.Abs(want)
}

// compare fails t at the first element out of tolerance, naming it.
func compare(t *testing.T, what string, got []float32, want []float64, abs, rel float64) {
	t.Helper()
	worst, at := 0.0, -1
	for i := range want {
		if !closeTo(float64(got[i]), want[i], abs, rel) {
			t.Fatalf("%s[%d] = %v, want %v (tolerance %g + %g*|want|)", what, i, got[i], want[i], abs, rel)
		}
		if d := math.Abs(float64(got[i]) - want[i]); d > worst {
			worst, at = d, i
		}
	}
	t.Logf("%s: %d values, max |error| %.3g at %d", what, len(want), worst, at)
}
