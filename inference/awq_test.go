package inference

import (
	"testing"

	"github.com/briefapp/brief/inference/f16"
)

// TestDequantizeAWQHandPacked checks the AWQ GEMM nibble order on words
// packed by hand: nibble i of a packed word holds column [0,2,4,6,1,3,5,7][i].
func TestDequantizeAWQHandPacked(t *testing.T) {
	h := f16.Float32ToHalf
	one, half, two := h(1), h(0.5), h(2)
	// One group of two rows, eight columns.
	l := AWQLinear{
		In: 2, Out: 8, GroupSize: 2,
		// Row 0: nibble i = i. Row 1: nibble i = 8+i.
		QWeight: []int32{0x76543210, int32(-0x01234568)}, // 0xFEDCBA98
		// Zero 15 in nibble 2 (column 4), zero 1 elsewhere.
		QZeros: []int32{0x11111F11},
		Scales: []uint16{one, one, one, one, half, one, one, two},
	}
	// Column c gets nibble inverse[c]: columns 0..7 read nibbles 0,4,1,5,2,6,3,7.
	want := []float32{
		0 - 1, 4 - 1, 1 - 1, 5 - 1, (2 - 15) * 0.5, 6 - 1, 3 - 1, (7 - 1) * 2,
		8 - 1, 12 - 1, 9 - 1, 13 - 1, (10 - 15) * 0.5, 14 - 1, 11 - 1, (15 - 1) * 2,
	}
	got := DequantizeAWQ(l)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("W[%d][%d] = %v, want %v", i/8, i%8, got[i], want[i])
		}
	}

	// Two groups and two packed columns: group 1's zeros and scales apply to
	// rows 2..3, packed column 1 to output columns 8..15.
	l = AWQLinear{In: 4, Out: 16, GroupSize: 2,
		QWeight: []int32{0, 0x00000005, 0, 0, 0x00000030, 0, 0, 0x70000000},
		QZeros:  []int32{0, 0, 0x00000001, 0x00000002},
		Scales:  make([]uint16, 32),
	}
	for i := range l.Scales {
		l.Scales[i] = one
	}
	l.Scales[16+2] = two // group 1, column 2
	got = DequantizeAWQ(l)
	check := map[[2]int]float32{
		{0, 8}:  5,           // row 0, packed column 1, nibble 0 -> column 8
		{2, 2}:  (3 - 0) * 2, // row 2, nibble 1 -> column 2; group 1 zero of column 2 is 0
		{2, 0}:  -1,          // group 1 zero of column 0 is 1
		{3, 15}: 7,           // row 3, packed column 1, nibble 7 -> column 15
		{2, 8}:  -2,          // group 1 zero of column 8 is 2
		{1, 8}:  0,
	}
	for rc, w := range check {
		if g := got[rc[0]*16+rc[1]]; g != w {
			t.Errorf("W[%d][%d] = %v, want %v", rc[0], rc[1], g, w)
		}
	}
}

func TestDequantizeDense(t *testing.T) {
	d := Dense{Shape: []int{3}, Data: []uint16{0x3c00, 0xc000, 0x3555}}
	got := DequantizeDense(d)
	if got[0] != 1 || got[1] != -2 || got[2] != 0.333251953125 {
		t.Errorf("DequantizeDense = %v", got)
	}
}
