package cuda

import (
	"encoding/binary"
	"math"
	"testing"
)

// TestRopeSincosFast: rope_sincos_fast gives sincosf's bits for every
// float from 0 up to kRopeFastMax (rope.cuh), the whole range the GEMM
// epilogue uses it on, and the bound is sincosf's own.
func TestRopeSincosFast(t *testing.T) {
	d := testDevice(t)
	const fastMax = 105615.0 // kRopeFastMax
	last := math.Float32bits(fastMax)
	if last != 0x47CE4780 {
		t.Fatalf("kRopeFastMax's bits %#x", last)
	}
	out := d.upI32(t, []int{0, -1})
	if err := d.launch("rope_sincos_check", launchShape{Grid: [3]uint32{4096}, Block: [3]uint32{256}}, "test",
		uint32(0), last, out); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8)
	if err := d.download(b, out); err != nil {
		t.Fatal(err)
	}
	if bad, low := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]); bad != 0 {
		t.Errorf("%d of %d floats in [0, %g) differ from sincosf, the first %#x (%g)", bad, last, fastMax, low, math.Float32frombits(low))
	}
}
