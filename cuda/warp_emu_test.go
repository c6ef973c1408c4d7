package cuda

import (
	"encoding/binary"
	"math"
	"testing"
)

// Lane-level emulation of the warp instructions of the tensor-core attention
// kernels (mma.sync.m16n8k16.row.col.f32.f16.f16.f32, ldmatrix.m8n8.x4 with
// and without .trans, shuffles), written from the PTX ISA's fragment
// layouts, so that a Go test can run a kernel's own index arithmetic end to
// end against the float64 reference without a GPU. Per-lane registers are
// arrays indexed by lane; shared memory is a byte slice.

// emuSmem is one block's shared memory.
type emuSmem []byte

func (s emuSmem) u16(a int) uint16       { return binary.LittleEndian.Uint16(s[a:]) }
func (s emuSmem) setU16(a int, v uint16) { binary.LittleEndian.PutUint16(s[a:], v) }
func (s emuSmem) u32(a int) uint32       { return binary.LittleEndian.Uint32(s[a:]) }
func (s emuSmem) f32(a int) float32      { return math.Float32frombits(binary.LittleEndian.Uint32(s[a:])) }
func (s emuSmem) setF32(a int, v float32) {
	binary.LittleEndian.PutUint32(s[a:], math.Float32bits(v))
}

// emuU32 is the 32-bit word of halves h[i], h[i+1] (h[i] in the low half).
func emuU32(h []uint16, i int) uint32 { return uint32(h[i]) | uint32(h[i+1])<<16 }

// halfBits is v (fp16-exact values) as fp16 bits.
func halfBits(v []float32) []uint16 {
	h := make([]uint16, len(v))
	for i, f := range v {
		h[i] = f2h(f)
	}
	return h
}

// emuPack is __floats2half2_rn(lo, hi) as a 32-bit register.
func emuPack(lo, hi float32) uint32 { return uint32(f2h(lo)) | uint32(f2h(hi))<<16 }

// emuHalf is half i (0 low, 1 high) of register r.
func emuHalf(r uint32, i int) float64 { return float64(h2f(uint16(r >> (16 * i)))) }

// emuMMA is mma.m16n8k16 (row.col, f16 inputs, f32 accumulators) over a
// warp: a (row-major 16x16): a0 rows g, cols 2t4+{0,1}; a1 row g+8; a2, a3
// the same 8 columns later; b (16x8, k x n): b0 rows 2t4+{0,1}, col g; b1 8
// rows later; c: c0, c1 row g, cols 2t4+{0,1}; c2, c3 row g+8.
func emuMMA(c *[32][4]float32, a *[32][4]uint32, b0, b1 *[32]uint32) {
	var A [16][16]float64
	var B [16][8]float64
	for lane := range 32 {
		g, t4 := lane>>2, lane&3
		for i := range 2 {
			A[g][2*t4+i] = emuHalf(a[lane][0], i)
			A[g+8][2*t4+i] = emuHalf(a[lane][1], i)
			A[g][2*t4+8+i] = emuHalf(a[lane][2], i)
			A[g+8][2*t4+8+i] = emuHalf(a[lane][3], i)
			B[2*t4+i][g] = emuHalf(b0[lane], i)
			B[2*t4+8+i][g] = emuHalf(b1[lane], i)
		}
	}
	for lane := range 32 {
		g, t4 := lane>>2, lane&3
		for e := range 4 {
			r, col := g+8*(e>>1), 2*t4+(e&1)
			s := float64(c[lane][e])
			for k := range 16 {
				s += A[r][k] * B[k][col]
			}
			c[lane][e] = float32(s)
		}
	}
}

// emuLdsmX4 is ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16: lane
// 8q+r gives the byte address of row r of matrix q (16-byte aligned);
// register q of lane (g, t4) gets M_q[g][2t4], M_q[g][2t4+1], or with trans
// M_q[2t4][g], M_q[2t4+1][g].
func emuLdsmX4(t *testing.T, s emuSmem, addr *[32]int, trans bool) (r [32][4]uint32) {
	t.Helper()
	for lane, a := range addr {
		if a%16 != 0 || a < 0 || a+16 > len(s) {
			t.Fatalf("ldmatrix: lane %d address %d not a 16-byte row inside %d bytes of shared memory", lane, a, len(s))
		}
	}
	for lane := range 32 {
		g, t4 := lane>>2, lane&3
		for q := range 4 {
			var h [2]uint16
			for i := range 2 {
				if trans {
					h[i] = s.u16(addr[8*q+2*t4+i] + 2*g)
				} else {
					h[i] = s.u16(addr[8*q+g] + 2*(2*t4+i))
				}
			}
			r[lane][q] = uint32(h[0]) | uint32(h[1])<<16
		}
	}
	return r
}

// emuShflXor is __shfl_xor_sync over the full warp.
func emuShflXor(v [32]float32, mask int) (r [32]float32) {
	for lane := range 32 {
		r[lane] = v[lane^mask]
	}
	return r
}

// emuFmax is fmaxf for the values the kernels see (no NaN).
func emuFmax(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}

// emuExp2 stands in for exp2f (the kernels' arithmetic is matched in order,
// not in the last bit of each function).
func emuExp2(x float32) float32 { return float32(math.Exp2(float64(x))) }

// emuFma stands in for __fmaf_rn.
func emuFma(a, b, c float32) float32 { return float32(math.FMA(float64(a), float64(b), float64(c))) }

// emuReduce is attn_reduce: per row, the splits' weights e^(m_z - M) (each
// lane of the first warp takes splits lane, lane+32, ... in order, then a
// butterfly over the warp), the numerator a sequential sum over splits.
func emuReduce(wsAcc, wsML []float32, rows, nsplit, D int) []float32 {
	out := make([]float32, rows*D)
	wz := make([]float32, nsplit)
	for r := range rows {
		M := float32(math.Inf(-1))
		for z := range nsplit {
			M = emuFmax(M, wsML[(z*rows+r)*2])
		}
		var den [32]float32
		for lane := range 32 {
			for z := lane; z < nsplit; z += 32 {
				o := z*rows + r
				mz := wsML[o*2]
				w := float32(0)
				if !math.IsInf(float64(mz), -1) {
					w = float32(math.Exp(float64(mz - M)))
				}
				wz[z] = w
				den[lane] = emuFma(w, wsML[o*2+1], den[lane])
			}
		}
		for o := 16; o > 0; o >>= 1 {
			x := emuShflXor(den, o)
			for lane := range 32 {
				den[lane] += x[lane]
			}
		}
		inv := float32(0)
		if den[0] > 0 {
			inv = 1 / den[0]
		}
		for d := range D {
			num := float32(0)
			for z := range nsplit {
				num = emuFma(wz[z], wsAcc[(z*rows+r)*D+d], num)
			}
			out[r*D+d] = roundHalf(num * inv)
		}
	}
	return out
}
