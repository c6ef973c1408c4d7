package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// emuPrefill2Block runs attn_prefill2_body<D, MW, KEYS> for block
// (bx, kv, z) with dyn bytes of dynamic shared memory, statement by
// statement with warp_emu_test.go's instructions: the same index
// arithmetic, copy and ldmatrix addresses, full/seen tile tests, masks,
// online softmax and partial layout as attn_prefill.cu. With late false
// copies land when issued, so a tile written into the stage being computed
// corrupts it; with late true each commit group lands only at the
// cp.async.wait_group that guarantees it, over shared memory that starts
// as NaN, so a tile read before its wait reads stale data or NaN. (Warps
// run one after the other between barriers: the emulation checks the stage
// indexing and wait counts, not the barriers themselves.)
func emuPrefill2Block(t *testing.T, late bool, D, MW, KEYS, dyn int, qkv, kc, vc []uint16, pos0, tokens, heads, kvHeads, ringCap, window int,
	scale float32, blockKeys, nsplit, bx, kv, z int, wsAcc, wsML []float32) {
	t.Helper()
	const rowsPerBlock, stages = 128, 2
	WARPS := rowsPerBlock / (16 * MW)
	NT := WARPS * 32
	KS := D + 8
	TILE := KEYS * KS
	CHR := D / 8
	CPT := KEYS * CHR / NT
	if dyn < (stages*2*KEYS+map[bool]int{true: rowsPerBlock}[MW == 2])*KS*2 {
		t.Fatalf("%d bytes of shared memory are too few", dyn)
	}
	smem := make(emuSmem, dyn)
	for i := range smem {
		smem[i] = 0xff // NaN halves
	}
	sK := 0
	sV := sK + stages*TILE*2
	sQ := sV + stages*TILE*2

	G := heads / kvHeads
	nrows := tokens * G
	row0 := bx * rowsPerBlock
	qstride := (heads + 2*kvHeads) * D
	pFirst := pos0 + row0/G
	pLast := pos0 + (min(row0+rowsPerBlock, nrows)-1)/G
	lo := 0
	if window > 0 {
		lo = max(0, pFirst-window+1)
	}
	var kBegin, kEnd int
	if blockKeys > 0 {
		kBegin = (lo/blockKeys + z) * blockKeys
		kEnd = min(pLast+1, kBegin+blockKeys)
	} else {
		n := pLast - lo + 1
		per := (n + nsplit - 1) / nsplit
		per = (per + KEYS - 1) / KEYS * KEYS
		kBegin = lo + z*per
		kEnd = min(pLast+1, kBegin+per)
	}
	headBase := kv * ringCap * D
	inf := float32(math.Inf(1))
	type copy16 struct {
		dst, at, bytes int
		src            []uint16
	}
	land := func(c copy16) {
		for i := range 8 {
			var h uint16
			if c.bytes == 16 {
				h = c.src[c.at+i]
			}
			smem.setU16(c.dst+2*i, h)
		}
	}
	var groups [][]copy16 // committed groups (late)
	var open []copy16     // copies not yet committed (late)
	landed := 0           // groups landed (late)
	cp16 := func(dst int, src []uint16, at int, bytes int) {
		if dst%16 != 0 || dst+16 > len(smem) {
			t.Fatalf("cp.async to byte %d of %d", dst, len(smem))
		}
		if late {
			open = append(open, copy16{dst, at, bytes, src})
		} else {
			land(copy16{dst, at, bytes, src})
		}
	}
	commit := func() { groups, open = append(groups, open), nil }
	wait := func(n int) { // cp.async.wait_group n: all but the newest n groups
		for ; landed < len(groups)-n; landed++ {
			for _, c := range groups[landed] {
				land(c)
			}
		}
	}
	issue := func(k0, stage int) {
		for tid := range NT {
			for c := range CPT {
				idx := tid + c*NT
				j, cc := idx/CHR, idx%CHR
				kp := k0 + j
				in := kp >= lo && kp < kEnd
				off := headBase + cc*8
				if in {
					off += (kp % ringCap) * D
				}
				so := (stage*TILE + j*KS + cc*8) * 2
				n := 0
				if in {
					n = 16
				}
				cp16(sK+so, kc, off, n)
				cp16(sV+so, vc, off, n)
			}
		}
	}
	ntiles := 0
	if kBegin < kEnd {
		ntiles = (kEnd - kBegin + KEYS - 1) / KEYS
	}
	if MW == 2 && ntiles > 0 {
		for tid := range NT {
			for c := range rowsPerBlock * CHR / NT {
				idx := tid + c*NT
				r, cc := idx/CHR, idx%CHR
				gr := min(row0+r, nrows-1)
				cp16(sQ+(r*KS+cc*8)*2, qkv, (gr/G)*qstride+(kv*G+gr%G)*D+cc*8, 16)
			}
		}
	}
	if ntiles > 0 {
		issue(kBegin, 0)
	}
	commit()

	type warpState struct {
		wrow0, wFirst, wLast int
		rpos                 [][32][2]int // [mi][lane][h2]
		qa                   [][32][4]uint32
		m, l                 [][32][2]float32
		o                    [][][32][4]float32 // [mi][dt][lane]
	}
	ws := make([]warpState, WARPS)
	for warp := range WARPS {
		w := &ws[warp]
		w.wrow0 = row0 + warp*16*MW
		w.rpos = make([][32][2]int, MW)
		for mi := range MW {
			for lane := range 32 {
				g := lane >> 2
				for h2 := range 2 {
					w.rpos[mi][lane][h2] = pos0 + min(w.wrow0+mi*16+g+8*h2, nrows-1)/G
				}
			}
		}
		w.wFirst = pos0 + min(w.wrow0, nrows-1)/G
		w.wLast = pos0 + min(w.wrow0+16*MW-1, nrows-1)/G
		if MW == 1 {
			w.qa = make([][32][4]uint32, D/16)
			for lane := range 32 {
				g, t4 := lane>>2, lane&3
				gq0, gq1 := min(w.wrow0+g, nrows-1), min(w.wrow0+g+8, nrows-1)
				q0 := (gq0/G)*qstride + (kv*G+gq0%G)*D
				q1 := (gq1/G)*qstride + (kv*G+gq1%G)*D
				for ks := range D / 16 {
					c := ks*16 + t4*2
					w.qa[ks][lane] = [4]uint32{emuU32(qkv, q0+c), emuU32(qkv, q1+c), emuU32(qkv, q0+c+8), emuU32(qkv, q1+c+8)}
				}
			}
		}
		w.m = make([][32][2]float32, MW)
		w.l = make([][32][2]float32, MW)
		w.o = make([][][32][4]float32, MW)
		for mi := range MW {
			for lane := range 32 {
				w.m[mi][lane] = [2]float32{-inf, -inf}
			}
			w.o[mi] = make([][32][4]float32, D/8)
		}
	}
	sl2 := scale * float32(1.4426950408889634)
	var kLane, vLane, qLane [32]int
	for lane := range 32 {
		kLane[lane] = (((lane>>4)*8+(lane&7))*KS + ((lane>>3)&1)*8) * 2
		vLane[lane] = ((((lane>>3)&1)*8+(lane&7))*KS + (lane>>4)*8) * 2
	}

	for it := range ntiles {
		k0, stage := kBegin+it*KEYS, it&1
		if it+1 < ntiles {
			issue(k0+KEYS, stage^1)
		}
		commit()
		wait(1)
		// __syncthreads
		for warp := range WARPS {
			w := &ws[warp]
			for lane := range 32 {
				qLane[lane] = sQ + ((warp*16*MW+((lane>>3)&1)*8+(lane&7))*KS+(lane>>4)*8)*2
			}
			seen := w.wrow0 < nrows && k0 <= w.wLast && (window <= 0 || k0+KEYS-1 > w.wFirst-window)
			if !seen {
				continue
			}
			kb, vb := sK+stage*TILE*2, sV+stage*TILE*2
			s := make([][][32][4]float32, MW)
			for mi := range MW {
				s[mi] = make([][32][4]float32, KEYS/8)
			}
			for ks := range D / 16 {
				a := make([][32][4]uint32, MW)
				for mi := range MW {
					if MW == 1 {
						a[mi] = w.qa[ks]
					} else {
						var addr [32]int
						for lane := range 32 {
							addr[lane] = qLane[lane] + (mi*16*KS+ks*16)*2
						}
						a[mi] = emuLdsmX4(t, smem, &addr, false)
					}
				}
				for np := range KEYS / 16 {
					var addr [32]int
					for lane := range 32 {
						addr[lane] = kb + kLane[lane] + (np*16*KS+ks*16)*2
					}
					b := emuLdsmX4(t, smem, &addr, false)
					var b0, b1, b2, b3 [32]uint32
					for lane := range 32 {
						b0[lane], b1[lane], b2[lane], b3[lane] = b[lane][0], b[lane][1], b[lane][2], b[lane][3]
					}
					for mi := range MW {
						emuMMA(&s[mi][2*np], &a[mi], &b0, &b1)
						emuMMA(&s[mi][2*np+1], &a[mi], &b2, &b3)
					}
				}
			}
			full := k0+KEYS-1 <= pFirst && k0+KEYS <= kEnd && (window <= 0 || k0 > pLast-window)
			for mi := range MW {
				var mt [32][2]float32
				for lane := range 32 {
					t4 := lane & 3
					mt[lane] = [2]float32{-inf, -inf}
					for nt := range KEYS / 8 {
						for e := range 4 {
							if full {
								s[mi][nt][lane][e] *= sl2
							} else {
								kp := k0 + nt*8 + t4*2 + (e & 1)
								p := w.rpos[mi][lane][e>>1]
								ok := kp < kEnd && kp <= p && (window <= 0 || kp > p-window)
								if ok {
									s[mi][nt][lane][e] *= sl2
								} else {
									s[mi][nt][lane][e] = -inf
								}
							}
							mt[lane][e>>1] = emuFmax(mt[lane][e>>1], s[mi][nt][lane][e])
						}
					}
				}
				var alpha, mu [32][2]float32
				for h2 := range 2 {
					var v [32]float32
					for lane := range 32 {
						v[lane] = mt[lane][h2]
					}
					for _, sh := range []int{1, 2} {
						x := emuShflXor(v, sh)
						for lane := range 32 {
							v[lane] = emuFmax(v[lane], x[lane])
						}
					}
					for lane := range 32 {
						mn := emuFmax(w.m[mi][lane][h2], v[lane])
						mu[lane][h2] = mn
						if mn == -inf {
							mu[lane][h2] = 0
						}
						alpha[lane][h2] = emuExp2(w.m[mi][lane][h2] - mu[lane][h2])
						w.m[mi][lane][h2] = mn
						w.l[mi][lane][h2] *= alpha[lane][h2]
					}
				}
				for lane := range 32 {
					for nt := range KEYS / 8 {
						for e := range 4 {
							s[mi][nt][lane][e] = emuExp2(s[mi][nt][lane][e] - mu[lane][e>>1])
							w.l[mi][lane][e>>1] += s[mi][nt][lane][e]
						}
					}
					for dt := range D / 8 {
						for e := range 4 {
							w.o[mi][dt][lane][e] *= alpha[lane][e>>1]
						}
					}
				}
			}
			for kk := range KEYS / 16 {
				pa := make([][32][4]uint32, MW)
				for mi := range MW {
					for lane := range 32 {
						a, b := s[mi][2*kk][lane], s[mi][2*kk+1][lane]
						pa[mi][lane] = [4]uint32{emuPack(a[0], a[1]), emuPack(a[2], a[3]), emuPack(b[0], b[1]), emuPack(b[2], b[3])}
					}
				}
				for dp := range D / 16 {
					var addr [32]int
					for lane := range 32 {
						addr[lane] = vb + vLane[lane] + (kk*16*KS+dp*16)*2
					}
					b := emuLdsmX4(t, smem, &addr, true)
					var b0, b1, b2, b3 [32]uint32
					for lane := range 32 {
						b0[lane], b1[lane], b2[lane], b3[lane] = b[lane][0], b[lane][1], b[lane][2], b[lane][3]
					}
					for mi := range MW {
						emuMMA(&w.o[mi][2*dp], &pa[mi], &b0, &b1)
						emuMMA(&w.o[mi][2*dp+1], &pa[mi], &b2, &b3)
					}
				}
			}
		}
	}

	for warp := range WARPS {
		w := &ws[warp]
		for mi := range MW {
			for h2 := range 2 {
				var lt [32]float32
				for lane := range 32 {
					lt[lane] = w.l[mi][lane][h2]
				}
				for _, sh := range []int{1, 2} {
					x := emuShflXor(lt, sh)
					for lane := range 32 {
						lt[lane] += x[lane]
					}
				}
				for lane := range 32 {
					g, t4 := lane>>2, lane&3
					gr := w.wrow0 + mi*16 + g + 8*h2
					if gr >= nrows {
						continue
					}
					orow := (gr/G)*heads + kv*G + gr%G
					oo := z*tokens*heads + orow
					for dt := range D / 8 {
						wsAcc[oo*D+dt*8+t4*2] = w.o[mi][dt][lane][2*h2]
						wsAcc[oo*D+dt*8+t4*2+1] = w.o[mi][dt][lane][2*h2+1]
					}
					if t4 == 0 {
						wsML[oo*2] = -inf
						if w.m[mi][lane][h2] != -inf {
							wsML[oo*2] = w.m[mi][lane][h2] * float32(0.6931471805599453)
						}
						wsML[oo*2+1] = lt[lane]
					}
				}
			}
		}
	}
}

// TestPrefill2Emulated runs attn_prefill.cu's kernels, emulated lane by
// lane (copies, ldmatrix of Q, K and V, fragments, full and skipped tiles,
// masks, softmax, partials) with attn_reduce, on prefill chunks against the
// float64 reference: ragged row tiles, the window's edge inside the chunk,
// the ring's wrap, G = 1, 3, 4, head dims 64 and 128, the planned splits,
// one and an odd count.
func TestPrefill2Emulated(t *testing.T) {
	if testing.Short() {
		t.Skip("slow emulation")
	}
	rng := rand.New(rand.NewPCG(43, 44))
	cases := []struct{ H, KV, D, T, pos0, cap, window int }{
		{8, 2, 128, 17, 0, 300, 256},   // first chunk, ragged row tile
		{8, 2, 64, 100, 200, 357, 256}, // the window's edge inside the chunk, ring wraps
		{8, 2, 128, 40, 700, 297, 256}, // past the window, wrapped
		{6, 2, 64, 40, 50, 128, 0},     // G = 3, no window, ragged
		{4, 4, 64, 150, 100, 400, 0},   // G = 1: two row tiles
		{8, 2, 64, 33, 310, 400, 100},  // window start inside a tile
	}
	for _, c := range cases {
		G := c.H / c.KV
		w := (c.H + 2*c.KV) * c.D
		qkvF := randHalves(rng, c.T*w, -1, 1)
		kcF := randHalves(rng, c.KV*c.cap*c.D, -1, 1)
		vcF := randHalves(rng, c.KV*c.cap*c.D, -1, 1)
		qkv, kc, vc := halfBits(qkvF), halfBits(kcF), halfBits(vcF)
		var want []float64
		for tt := range c.T {
			for h := range c.H {
				want = append(want, attnRef(qkvF[tt*w+h*c.D:], kcF, vcF, h/G, c.cap, c.D, c.pos0+tt, c.window)...)
			}
		}
		keyRange := c.cap
		if c.window > 0 {
			keyRange = min(c.window+15, c.cap)
		}
		for _, kn := range []string{"attn_prefill2", "attn_prefill2q"} {
			k := prefill2Kernels[kn]
			MW := 1
			if k.qShared {
				MW = 2
			}
			p := planAttentionWith(kn, c.T, c.H, c.KV, c.D, 132, keyRange)
			if p.kernel != fmt.Sprintf("%s_d%d", kn, c.D) || int(p.shape.Block[0]) != 128/(16*MW)*32 || p.blockKeys != 0 {
				t.Fatalf("%+v: plan %+v", c, p)
			}
			for _, late := range []bool{false, true} {
				for _, splits := range []int{p.splits, 1, 7} {
					t.Run(fmt.Sprintf("%s/%+v/splits%d/late%v", kn, c, splits, late), func(t *testing.T) {
						rows := c.T * c.H
						wsAcc := make([]float32, splits*rows*c.D)
						wsML := make([]float32, splits*rows*2)
						for i := range wsAcc {
							wsAcc[i] = float32(math.NaN())
						}
						for i := range wsML {
							wsML[i] = float32(math.NaN())
						}
						scale := float32(1 / math.Sqrt(float64(c.D)))
						for bx := range int(p.shape.Grid[0]) {
							for kv := range c.KV {
								for z := range splits {
									emuPrefill2Block(t, late, c.D, MW, k.keys, int(p.shape.Shared), qkv, kc, vc, c.pos0, c.T, c.H, c.KV, c.cap, c.window,
										scale, 0, splits, bx, kv, z, wsAcc, wsML)
								}
							}
						}
						got := emuReduce(wsAcc, wsML, rows, splits, c.D)
						compare(t, fmt.Sprintf("emulated %s", p.kernel), got, want, 2e-3, 2e-3)
					})
				}
			}
		}
	}
}
