package cuda

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/briefapp/brief/inference"
)

// These tests need no GPU: they mirror attn_verify.cu's index arithmetic in
// Go (the same formulas, line by line) and check what the kernel relies on.
// They do not run the kernel; TestAttentionVerifyKernel and
// TestAttentionVerifyBatchInvariant do that on a GPU.

// keyVisit says who scores one (row, key) pair: the absolute first key of
// the split's block, the warp and the warp's tile index (seen false: nobody).
type keyVisit struct {
	block, warp, tile int
	seen              bool
}

// emulateVerify walks attn_verify_body's grid for one step and returns, for
// every row (token*G + head in the KV group, KV head 0) and each key the
// row may see (index key - the row's first visible key), who scores it. It fails t where a visible key would be scored from
// a zero-filled or aliased ring slot, a chunk of a tile is loaded twice or
// never, or a pair is scored twice.
func emulateVerify(t *testing.T, p attnPlan, kw, D, tokens, G, pos0, window, ringCap int) [][]keyVisit {
	t.Helper()
	nrows := tokens * G
	B := p.blockKeys
	if B%(attnWarps*kw) != 0 {
		t.Fatalf("block of %d keys is not a multiple of %d warps x %d keys", B, attnWarps, kw)
	}
	ntw := B / (attnWarps * kw)
	visits := make([][]keyVisit, nrows)
	first := make([]int, nrows) // each row's first visible key
	for r := range visits {
		pos := pos0 + r/G
		if window > 0 {
			first[r] = max(0, pos-window+1)
		}
		visits[r] = make([]keyVisit, pos-first[r]+1)
	}
	for x := range p.tiles {
		row0 := 64 * x
		pFirst := pos0 + row0/G
		pLast := pos0 + (min(row0+64, nrows)-1)/G
		lo := 0
		if window > 0 {
			lo = max(0, pFirst-window+1)
		}
		nmt := (min(64, nrows-row0) + 15) / 16
		// The ring must hold every key the tile may see in its own slot.
		slots := map[int]int{}
		for kp := lo; kp <= pLast; kp++ {
			if prev, ok := slots[kp%ringCap]; ok {
				t.Fatalf("keys %d and %d share ring slot %d (cap %d)", prev, kp, kp%ringCap, ringCap)
			}
			slots[kp%ringCap] = kp
		}
		for z := range p.splits {
			kBegin := (lo/B + z) * B
			kEnd := min(pLast+1, kBegin+B)
			for w := range attnWarps {
				for i := range ntw {
					k0 := kBegin + kw*(w+attnWarps*i)
					if k0 >= kEnd || k0+kw <= lo {
						continue
					}
					// load_tile: every 16-byte chunk of the KW x D tile once.
					loaded := make([]bool, kw*D/8)
					zero := make([]bool, kw)
					cpr := D / 8
					rpc := 32 / cpr
					for lane := range 32 {
						cc, j0 := lane%cpr, lane/cpr
						slot0 := (k0 + j0) % ringCap
						for c := range kw * cpr / 32 {
							j := j0 + rpc*c
							if loaded[j*cpr+cc] {
								t.Fatalf("chunk %d,%d loaded twice", j, cc)
							}
							loaded[j*cpr+cc] = true
							kp := k0 + j
							ok := kp >= lo && kp < kEnd
							zero[j] = !ok
							slot := slot0 + rpc*c
							if slot >= ringCap {
								slot -= ringCap
							}
							if ok && slot != kp%ringCap {
								t.Fatalf("key %d read from slot %d, want %d", kp, slot, kp%ringCap)
							}
						}
					}
					if slices.Contains(loaded, false) {
						t.Fatal("a chunk of the tile is never loaded")
					}
					for mt := range nmt {
						for g := range 8 {
							for h2 := range 2 {
								gr := row0 + mt*16 + g + 8*h2
								rok := gr < nrows
								rpos := pos0
								if rok {
									rpos = pos0 + gr/G
								}
								for nt := range kw / 8 {
									for t4 := range 4 {
										for e := range 2 {
											kp := k0 + nt*8 + t4*2 + e
											ok := rok && kp >= lo && kp < kEnd && kp <= rpos && (window <= 0 || kp > rpos-window)
											if !ok {
												continue
											}
											if zero[kp-k0] {
												t.Fatalf("row %d scores key %d from a zero-filled slot", gr, kp)
											}
											v := &visits[gr][kp-first[gr]] // in range: ok implies first <= kp <= rpos
											if v.seen {
												t.Fatalf("row %d scores key %d twice", gr, kp)
											}
											*v = keyVisit{kBegin, w, i, true}
										}
									}
								}
							}
						}
					}
				}
			}
		}
	}
	return visits
}

// TestVerifyIndexMath: every row of a verify step scores exactly the keys
// the sliding window and causality give it, each once, from its own ring
// slot; and each (row, key) pair is scored by the same absolute key block,
// warp and tile whatever the step's size (the index half of batch
// invariance), near the window's edge, across key block boundaries and
// around the ring's wrap.
func TestVerifyIndexMath(t *testing.T) {
	defer func(v string) { verifyKernel = v }(verifyKernel)
	type shape struct{ H, KV, D, window, ringCap int }
	shapes := []shape{
		{32, 8, 128, 4096, 4096 + 512 + 1},                 // the 7B: cap = window + chunk + 1
		{32, 8, 128, 4096, 4096 + inference.MaxVerify + 1}, // the tightest ring a verify step allows
		{8, 2, 64, 128, 200},
		{32, 4, 64, 256, 600}, // G = 8: two row tiles at 16 tokens
		{8, 2, 64, 0, 33000},  // no window: several tiles per warp
	}
	for _, k := range slices.Sorted(maps.Keys(verifyKernels)) {
		kw := verifyKernels[k]
		verifyKernel = k
		for _, s := range shapes {
			t.Run(fmt.Sprintf("%s/%+v", k, s), func(t *testing.T) {
				G := s.H / s.KV
				keyRange := s.ringCap
				if s.window > 0 {
					keyRange = min(s.window+inference.MaxVerify-1, s.ringCap)
				}
				// Positions: the start, the window's edge, a key block boundary
				// on either side, the ring's wrap, and far along.
				var positions []int
				if s.window > 0 {
					for _, base := range []int{0, s.window - 1, s.window, s.ringCap - 1, 3 * s.ringCap, 6435} {
						for d := -17; d <= 17; d += 3 {
							positions = append(positions, max(0, base+d))
						}
					}
				} else {
					positions = []int{0, 5, 1023, 1024, s.ringCap - inference.MaxVerify - 1}
				}
				one := map[int][]keyVisit{} // position -> visits of head 0 in a 1-token step
				p1 := planAttention(1, s.H, s.KV, s.D, 108, keyRange)
				for _, T := range []int{1, 2, 5, 11, 16} {
					p := planAttention(T, s.H, s.KV, s.D, 108, keyRange)
					if p.kernel != fmt.Sprintf("%s_d%d", k, s.D) || p.blockKeys != p1.blockKeys || p.splits != p1.splits {
						t.Fatalf("%d tokens: plan %+v, 1 token: %+v", T, p, p1)
					}
					// Solo (partials in the K tiles) exactly where every block computes
					// one m-tile with one key tile a warp.
					solo := T*G <= 16 && p.blockKeys == attnWarps*kw
					if p.shape.Shared != uint32(verifySmem(s.D, kw, solo)) || p.shape.Block[0] != attnWarps*32 {
						t.Fatalf("%d tokens: launch %+v", T, p.shape)
					}
					for _, pos0 := range positions {
						if s.window == 0 && pos0+T > s.ringCap {
							continue
						}
						visits := emulateVerify(t, p, kw, s.D, T, G, pos0, s.window, s.ringCap)
						for r := range T * G {
							pos := pos0 + r/G
							lo := 0
							if s.window > 0 {
								lo = max(0, pos-s.window+1)
							}
							for kp := lo; kp <= pos; kp++ {
								if !visits[r][kp-lo].seen {
									t.Fatalf("%d tokens at %d, row %d (position %d): key %d not scored", T, pos0, r, pos, kp)
								}
							}
							if r%G != 0 {
								continue
							}
							if T == 1 {
								one[pos] = visits[r]
							} else if want, ok := one[pos]; ok && !slices.Equal(visits[r], want) {
								t.Fatalf("%d tokens at %d: the row at position %d is split over keys differently than in a 1-token step", T, pos0, pos)
							}
						}
					}
				}
			})
		}
	}
}

// TestVerifyFragments checks attn_verify.cu's shared-memory addressing
// against the PTX ISA's fragment layouts: ldmatrix.x4.trans on row-major V
// gives each lane the B fragments of mma.m16n8k16 for two n-tiles of head
// dimensions (b0 = V[16kk + 2t4 + {0,1}][8dt + g], b1 the same 8 keys
// later), with 16-byte aligned rows and no bank conflicts; and the 32-bit
// loads of K's B fragments are conflict-free too.
func TestVerifyFragments(t *testing.T) {
	for _, D := range []int{64, 128} {
		for _, kw := range []int{32, 64} {
			KS := D + 8
			// V element (key, d) holds its own coordinates.
			val := func(key, d int) int { return key<<16 | d }
			for kk := range kw / 16 {
				for dt := 0; dt < D/8; dt += 2 {
					addr := make([]int, 32) // in halves
					for lane := range 32 {
						vrow := kk*16 + ((lane>>3)&1)*8 + (lane & 7)
						addr[lane] = vrow*KS + (dt+(lane>>4))*8
						if addr[lane]*2%16 != 0 {
							t.Fatalf("D %d KW %d: row address %d not 16-byte aligned", D, kw, addr[lane])
						}
					}
					// One matrix per phase: its 8 rows of 16 bytes cover all 32 banks.
					for q := range 4 {
						banks := map[int]bool{}
						for r := range 8 {
							for wd := range 4 {
								banks[(addr[8*q+r]*2/4+wd)%32] = true
							}
						}
						if len(banks) != 32 {
							t.Fatalf("D %d KW %d: ldmatrix matrix %d has bank conflicts", D, kw, q)
						}
					}
					elem := func(a int) int { return val(a/KS, a%KS) }
					for lane := range 32 {
						g, t4 := lane>>2, lane&3
						// .trans: register q of lane holds M_q[2t4][g], M_q[2t4+1][g],
						// where row r of M_q is the 8 halves at lane 8q+r's address.
						var reg [4][2]int
						for q := range 4 {
							reg[q][0] = elem(addr[8*q+2*t4] + g)
							reg[q][1] = elem(addr[8*q+2*t4+1] + g)
						}
						for half := range 2 {
							d := (dt+half)*8 + g
							b0 := [2]int{val(kk*16+2*t4, d), val(kk*16+2*t4+1, d)}
							b1 := [2]int{val(kk*16+8+2*t4, d), val(kk*16+8+2*t4+1, d)}
							if reg[2*half] != b0 || reg[2*half+1] != b1 {
								t.Fatalf("D %d KW %d kk %d dt %d lane %d: got %v %v, want %v %v", D, kw, kk, dt+half, lane, reg[2*half], reg[2*half+1], b0, b1)
							}
						}
					}
				}
			}
			// K: lane (g, t4) loads the word at (nt*8 + g)*KS + ks*16 + t4*2 (+8).
			for nt := range kw / 8 {
				for ks := range D / 16 {
					for _, off := range []int{0, 8} {
						banks := map[int]bool{}
						for lane := range 32 {
							g, t4 := lane>>2, lane&3
							banks[((nt*8+g)*KS+ks*16+t4*2+off)/2%32] = true
						}
						if len(banks) != 32 {
							t.Fatalf("D %d KW %d: K fragment loads have bank conflicts", D, kw)
						}
					}
				}
			}
		}
	}
}

// TestVerifySmemFits: the shared memory the plans ask for is what the
// chips allow (attn_verify: every supported chip, 99 KB at most, and solo
// three blocks to an H100's 228 KB; attn_verify_k64: sm_80 and sm_90,
// 163 KB), counting the 1 KB the driver keeps per block.
func TestVerifySmemFits(t *testing.T) {
	for _, c := range []struct {
		kernel string
		D      int
		solo   bool
		limit  int
	}{
		{"attn_verify", 64, false, 101376}, {"attn_verify", 128, false, 101376},
		{"attn_verify", 128, true, 228<<10/3 - 1024},
		{"attn_verify_k64", 64, false, 101376}, {"attn_verify_k64", 128, false, 166912},
	} {
		if got := verifySmem(c.D, verifyKernels[c.kernel], c.solo); got > c.limit {
			t.Errorf("%s head dim %d solo %v: %d bytes of shared memory, more than %d", c.kernel, c.D, c.solo, got, c.limit)
		}
	}
}

// TestReduceSplitShift: attn_reduce's denominator (each lane sums splits
// lane, lane+32, ... in order, then a butterfly over the warp) gives the same
// bits when a row's nonzero splits move to other split indexes, as they do
// between step sizes under a sliding window (split z is block lo/B + z of
// the step's first row): a shift rotates the lanes' sums (adding zeros is
// exact) and the butterfly pairs lanes i, i+2^k mod 2^(k+1), which a
// rotation keeps. attn_reduce's numerator is a sequential sum over z, which
// leading zeros do not change. Lane sums are float32 sums here, standing in
// for the kernel's fmaf: the property is the order.
func TestReduceSplitShift(t *testing.T) {
	den := func(v []float32) float32 {
		var lanes [32]float32
		for z, x := range v {
			lanes[z%32] += x
		}
		for o := 16; o > 0; o >>= 1 {
			var next [32]float32
			for i := range 32 {
				next[i] = lanes[i] + lanes[i^o]
			}
			lanes = next
		}
		return lanes[0]
	}
	rng := rand.New(rand.NewPCG(31, 32))
	for _, splits := range []int{18, 34, 80} {
		for range 2000 {
			span := 1 + rng.IntN(splits-1)
			vals := make([]float32, span)
			for i := range vals {
				vals[i] = rng.Float32() * float32(int(1)<<rng.IntN(16))
			}
			var want float32
			for at := 0; at+span <= splits; at++ {
				v := make([]float32, splits)
				copy(v[at:], vals)
				got := den(v)
				if at == 0 {
					want = got
				} else if math.Float32bits(got) != math.Float32bits(want) {
					t.Fatalf("%d splits, %d nonzero from split %d: %v, from split 0: %v", splits, span, at, got, want)
				}
			}
		}
	}
}
