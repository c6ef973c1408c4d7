package f16

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestKnownValues(t *testing.T) {
	tests := []struct {
		h uint16
		f float32
	}{
		{0x0000, 0},
		{0x3c00, 1},
		{0xbc00, -1},
		{0x4000, 2},
		{0x3555, 0.333251953125},
		{0x7bff, 65504},
		{0x0400, 6.103515625e-05},       // smallest normal
		{0x0001, 5.960464477539063e-08}, // smallest subnormal
		{0x03ff, 6.097555160522461e-05}, // largest subnormal
		{0x7c00, float32(math.Inf(1))},
		{0xfc00, float32(math.Inf(-1))},
	}
	for _, tt := range tests {
		if got := HalfToFloat32(tt.h); got != tt.f {
			t.Errorf("HalfToFloat32(%#04x) = %v, want %v", tt.h, got, tt.f)
		}
		if got := Float32ToHalf(tt.f); got != tt.h {
			t.Errorf("Float32ToHalf(%v) = %#04x, want %#04x", tt.f, got, tt.h)
		}
	}
	if got := Float32ToHalf(float32(math.Copysign(0, -1))); got != 0x8000 {
		t.Errorf("Float32ToHalf(-0) = %#04x, want 0x8000", got)
	}
}

func TestRoundTripAllHalves(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := HalfToFloat32(h)
		got := Float32ToHalf(f)
		if f != f {
			if got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
				t.Fatalf("NaN %#04x became %#04x", h, got)
			}
			continue
		}
		if got != h {
			t.Fatalf("round trip of %#04x (%v) gave %#04x", h, f, got)
		}
	}
}

// TestRoundingIsNearestEven checks Float32ToHalf against the definition: the
// chosen half is at least as close to f as its neighbours, and on a tie its
// last bit is even.
func TestRoundingIsNearestEven(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(f float32) {
		h := Float32ToHalf(f)
		got := float64(HalfToFloat32(h))
		if math.IsInf(got, 0) {
			// Overflow: f must be at least halfway past the largest finite half.
			if math.Abs(float64(f)) < 65520 {
				t.Fatalf("%v overflowed to %#04x", f, h)
			}
			return
		}
		d := math.Abs(got - float64(f))
		for _, n := range []uint16{h + 1, h - 1} {
			if n&0x7c00 == 0x7c00 || (n^h)&0x8000 != 0 {
				continue
			}
			dn := math.Abs(float64(HalfToFloat32(n)) - float64(f))
			if dn < d || (dn == d && h&1 == 1) {
				t.Fatalf("Float32ToHalf(%v) = %#04x (%v), but %#04x (%v) is nearer or an even tie", f, h, got, n, HalfToFloat32(n))
			}
		}
	}
	for i := 0; i < 2_000_000; i++ {
		// Exponents from below the smallest subnormal to past the largest half.
		exp := uint32(127-26+r.IntN(44)) << 23
		check(math.Float32frombits(r.Uint32()&0x807fffff | exp))
	}
	for i := 0; i < 1<<16; i++ { // exact midpoints between neighbouring halves
		a, b := HalfToFloat32(uint16(i)), HalfToFloat32(uint16(i+1))
		if a == a && b == b && !math.IsInf(float64(a), 0) && !math.IsInf(float64(b), 0) && (i+1)&0x8000 == i&0x8000 {
			check((a + b) / 2)
		}
	}
}
