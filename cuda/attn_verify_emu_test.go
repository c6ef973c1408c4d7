package cuda

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// emuVerifyBlock runs attn_verify_body<D, KW> for block (bx, kv, z) with
// dyn bytes of dynamic shared memory, statement by statement with
// warp_emu_test.go's instructions: the same index arithmetic, fragment
// addresses, masks, online softmax, warp combine and partial layout as
// attn_verify.cu. With late false cp.async copies land when issued; with
// late true each commit group (a tile's K, then its V) lands only at the
// cp.async.wait_group that guarantees it, over shared memory that starts as
// NaN, so a wrong wait count reads NaN or a stale tile. Warps run one after
// the other between barriers, so a partial that spilled into a later
// warp's tile would corrupt it before use.
func emuVerifyBlock(t *testing.T, late bool, D, KW, dyn int, qkv, kc, vc []uint16, pos0, tokens, heads, kvHeads, ringCap, window int,
	scale float32, blockKeys, bx, kv, z int, wsAcc, wsML []float32) {
	t.Helper()
	const warps = 4
	KS, NT, DT, CH := D+8, KW/8, D/8, KW*(D/8)
	G := heads / kvHeads
	nrows := tokens * G
	row0 := bx * 64
	qstride := (heads + 2*kvHeads) * D
	pFirst := pos0 + row0/G
	pLast := pos0 + (min(row0+64, nrows)-1)/G
	lo := 0
	if window > 0 {
		lo = max(0, pFirst-window+1)
	}
	kBegin := (lo/blockKeys + z) * blockKeys
	kEnd := min(pLast+1, kBegin+blockKeys)
	ntw := blockKeys / (warps * KW)
	nmt := (min(64, nrows-row0) + 15) / 16
	solo := nmt == 1 && ntw == 1
	if dyn < verifySmem(D, KW, solo) || blockKeys <= 0 || blockKeys%(warps*KW) != 0 || (window > 0 && ringCap < KW) {
		t.Fatalf("block %d,%d,%d traps: %d bytes of shared memory (solo %v needs %d), block of %d keys", bx, kv, z, dyn, solo, verifySmem(D, KW, solo), blockKeys)
	}
	smem := make(emuSmem, dyn)
	for i := range smem {
		smem[i] = 0xff // NaN halves
	}
	type copy16 struct {
		dst, at int
		ok      bool
		src     []uint16
	}
	land := func(c copy16) {
		for i := range 8 {
			var h uint16
			if c.ok {
				h = c.src[c.at+i]
			}
			smem.setU16(c.dst+2*i, h)
		}
	}
	groups := make([][][]copy16, 4) // each warp's committed groups (late)
	landed := make([]int, 4)
	wait := func(w, n int) { // cp.async.wait_group n: all but the newest n groups
		for ; landed[w] < len(groups[w])-n; landed[w]++ {
			for _, c := range groups[w][landed[w]] {
				land(c)
			}
		}
	}
	ksAddr := func(w int) int { return w * 2 * KW * KS * 2 }
	vsAddr := func(w int) int { return ksAddr(w) + KW*KS*2 }
	part1, partStride := warps*2*KW*KS*2, (DT+1)*32*16 // bytes
	if solo {
		part1, partStride = 2*KW*KS*2, 2*KW*KS*2
	}
	part := func(w int) int { return part1 + (w-1)*partStride }
	headBase := kv * ringCap * D
	sl2 := scale * float32(1.4426950408889634)
	inf := float32(math.Inf(1))

	loadTile := func(w, k0 int) {
		CPR := D / 8
		RPC := 32 / CPR
		var grp [2][]copy16 // K's group, then V's
		for lane := range 32 {
			cc, j0 := lane%CPR, lane/CPR
			slot0 := (k0 + j0) % ringCap
			for half := range 2 {
				src, dst := kc, ksAddr(w)
				if half == 1 {
					src, dst = vc, vsAddr(w)
				}
				tileEnd := dst + KW*KS*2
				dst += (j0*KS + cc*8) * 2
				for c := range CH / 32 {
					kp := k0 + j0 + RPC*c
					ok := kp >= lo && kp < kEnd
					slot := slot0 + RPC*c
					if slot >= ringCap {
						slot -= ringCap
					}
					d := dst + RPC*c*KS*2
					if d%16 != 0 || d+16 > tileEnd {
						t.Fatalf("cp.async to byte %d: unaligned or past the warp's tile", d)
					}
					c := copy16{d, headBase + slot*D + cc*8, ok, src}
					if late {
						grp[half] = append(grp[half], c)
					} else {
						land(c)
					}
				}
			}
		}
		if late {
			groups[w] = append(groups[w], grp[0], grp[1])
		}
	}
	live := func(k0 int) bool { return k0 < kEnd && k0+KW > lo }

	if ntw == 1 {
		for w := range warps {
			if live(kBegin + KW*w) {
				loadTile(w, kBegin+KW*w)
			}
		}
	}
	for mt := range nmt {
		var m0, l0 [32][2]float32 // warp 0's m and l
		var o0 [][32][4]float32   // warp 0's O
		for w := range warps {
			var rpos [32][2]int
			var rok [32][2]bool
			qa := make([][32][4]uint32, D/16)
			for lane := range 32 {
				g, t4 := lane>>2, lane&3
				var qrow [2]int
				for h2 := range 2 {
					gr := row0 + mt*16 + g + 8*h2
					rok[lane][h2] = gr < nrows
					gg := 0
					if rok[lane][h2] {
						gg = gr
					}
					rpos[lane][h2] = pos0 + gg/G
					qrow[h2] = (gg/G)*qstride + (kv*G+gg%G)*D
				}
				for ks := range D / 16 {
					c := ks*16 + t4*2
					qa[ks][lane] = [4]uint32{emuU32(qkv, qrow[0]+c), emuU32(qkv, qrow[1]+c), emuU32(qkv, qrow[0]+c+8), emuU32(qkv, qrow[1]+c+8)}
				}
			}
			var m, l [32][2]float32
			for lane := range 32 {
				m[lane] = [2]float32{-inf, -inf}
			}
			o := make([][32][4]float32, DT)
			for i := range ntw {
				k0 := kBegin + KW*(w+warps*i)
				if !live(k0) {
					continue
				}
				if ntw > 1 {
					loadTile(w, k0)
				}
				wait(w, 1) // K landed
				s := make([][32][4]float32, NT)
				for ks := range D / 16 {
					for nt := range NT {
						var b0, b1 [32]uint32
						for lane := range 32 {
							g, t4 := lane>>2, lane&3
							kr := ksAddr(w) + ((nt*8+g)*KS+ks*16+t4*2)*2
							b0[lane], b1[lane] = smem.u32(kr), smem.u32(kr+16)
						}
						emuMMA(&s[nt], &qa[ks], &b0, &b1)
					}
				}
				var mx [32][2]float32
				for lane := range 32 {
					t4 := lane & 3
					mx[lane] = [2]float32{-inf, -inf}
					for nt := range NT {
						for e := range 4 {
							h2 := e >> 1
							kp := k0 + nt*8 + t4*2 + (e & 1)
							p := rpos[lane][h2]
							ok := rok[lane][h2] && kp >= lo && kp < kEnd && kp <= p && (window <= 0 || kp > p-window)
							if ok {
								s[nt][lane][e] *= sl2
							} else {
								s[nt][lane][e] = -inf
							}
							mx[lane][h2] = emuFmax(mx[lane][h2], s[nt][lane][e])
						}
					}
				}
				var alpha, mu [32][2]float32
				for h2 := range 2 {
					var v [32]float32
					for lane := range 32 {
						v[lane] = mx[lane][h2]
					}
					for _, sh := range []int{1, 2} {
						x := emuShflXor(v, sh)
						for lane := range 32 {
							v[lane] = emuFmax(v[lane], x[lane])
						}
					}
					for lane := range 32 {
						mn := emuFmax(m[lane][h2], v[lane])
						mu[lane][h2] = mn
						if mn == -inf {
							mu[lane][h2] = 0
						}
						alpha[lane][h2] = emuExp2(m[lane][h2] - mu[lane][h2])
						m[lane][h2] = mn
						l[lane][h2] *= alpha[lane][h2]
					}
				}
				for lane := range 32 {
					for nt := range NT {
						for e := range 4 {
							s[nt][lane][e] = emuExp2(s[nt][lane][e] - mu[lane][e>>1])
							l[lane][e>>1] += s[nt][lane][e]
						}
					}
					for dt := range DT {
						for e := range 4 {
							o[dt][lane][e] *= alpha[lane][e>>1]
						}
					}
				}
				wait(w, 0) // V landed
				for kk := range KW / 16 {
					var pa [32][4]uint32
					for lane := range 32 {
						a, b := s[2*kk][lane], s[2*kk+1][lane]
						pa[lane] = [4]uint32{emuPack(a[0], a[1]), emuPack(a[2], a[3]), emuPack(b[0], b[1]), emuPack(b[2], b[3])}
					}
					for dt := 0; dt < DT; dt += 2 {
						var addr [32]int
						for lane := range 32 {
							vrow := kk*16 + ((lane>>3)&1)*8 + (lane & 7)
							addr[lane] = vsAddr(w) + (vrow*KS+(dt+(lane>>4))*8)*2
						}
						b := emuLdsmX4(t, smem, &addr, true)
						var b0, b1, b2, b3 [32]uint32
						for lane := range 32 {
							b0[lane], b1[lane], b2[lane], b3[lane] = b[lane][0], b[lane][1], b[lane][2], b[lane][3]
						}
						emuMMA(&o[dt], &pa, &b0, &b1)
						emuMMA(&o[dt+1], &pa, &b2, &b3)
					}
				}
			}
			for h2 := range 2 {
				for _, sh := range []int{1, 2} {
					var v [32]float32
					for lane := range 32 {
						v[lane] = l[lane][h2]
					}
					x := emuShflXor(v, sh)
					for lane := range 32 {
						l[lane][h2] = v[lane] + x[lane]
					}
				}
			}
			if w == 0 {
				m0, l0, o0 = m, l, o
				continue
			}
			// Warp w's partials may only overwrite its own dead K tile (solo)
			// or its share of the scratch area: any other warp may still be
			// reading the rest.
			own, ownEnd := ksAddr(w), ksAddr(w)+KW*KS*2
			if !solo {
				own, ownEnd = part1+(w-1)*(DT+1)*32*16, part1+w*(DT+1)*32*16
			}
			if part(w) < own || part(w)+(DT+1)*32*16 > ownEnd || ownEnd > len(smem) {
				t.Fatalf("warp %d's partials [%d, %d) leave its area [%d, %d) of %d bytes", w, part(w), part(w)+(DT+1)*32*16, own, ownEnd, len(smem))
			}
			for lane := range 32 {
				dst := part(w) + lane*16
				for dt := range DT {
					for e := range 4 {
						smem.setF32(dst+dt*32*16+4*e, o[dt][lane][e])
					}
				}
				for e, v := range []float32{m[lane][0], m[lane][1], l[lane][0], l[lane][1]} {
					smem.setF32(dst+DT*32*16+4*e, v)
				}
			}
		}
		// __syncthreads; warp 0 combines the warps in order 0..3.
		for lane := range 32 {
			g, t4 := lane>>2, lane&3
			var wt [2][warps]float32
			var M, L [2]float32
			for h2 := range 2 {
				var mw, lw [warps]float32
				mw[0], lw[0] = m0[lane][h2], l0[lane][h2]
				for w := 1; w < warps; w++ {
					a := part(w) + (DT*32+lane)*16
					mw[w], lw[w] = smem.f32(a+4*h2), smem.f32(a+8+4*h2)
				}
				M[h2] = emuFmax(emuFmax(mw[0], mw[1]), emuFmax(mw[2], mw[3]))
				for w := range warps {
					if mw[w] != -inf {
						wt[h2][w] = emuExp2(mw[w] - M[h2])
					}
				}
				L[h2] = wt[h2][0] * lw[0]
				for w := 1; w < warps; w++ {
					L[h2] = emuFma(wt[h2][w], lw[w], L[h2])
				}
			}
			ov := make([][4]float32, DT)
			for dt := range DT {
				for e := range 4 {
					ov[dt][e] = wt[e>>1][0] * o0[dt][lane][e]
				}
				for w := 1; w < warps; w++ {
					a := part(w) + (dt*32+lane)*16
					for e := range 4 {
						ov[dt][e] = emuFma(wt[e>>1][w], smem.f32(a+4*e), ov[dt][e])
					}
				}
			}
			for h2 := range 2 {
				gr := row0 + mt*16 + g + 8*h2
				if gr >= nrows {
					continue
				}
				orow := (gr/G)*heads + kv*G + gr%G
				oo := z*tokens*heads + orow
				for dt := range DT {
					wsAcc[oo*D+dt*8+t4*2] = ov[dt][2*h2]
					wsAcc[oo*D+dt*8+t4*2+1] = ov[dt][2*h2+1]
				}
				if t4 == 0 {
					wsML[oo*2] = -inf
					if M[h2] != -inf {
						wsML[oo*2] = M[h2] * float32(0.6931471805599453)
					}
					wsML[oo*2+1] = L[h2]
				}
			}
		}
	}
}

// emuVerifyStep runs plan p (an attn_verify kernel with kw keys a warp)
// and attn_reduce in emulation and returns the step's attention output
// (tokens, heads*D), fp16-rounded.
func emuVerifyStep(t *testing.T, late bool, p attnPlan, kw, D int, qkv, kc, vc []uint16, pos0, tokens, heads, kvHeads, ringCap, window int) []float32 {
	t.Helper()
	if p.shape.Block[0] != 4*32 {
		t.Fatalf("%s: block of %d threads", p.kernel, p.shape.Block[0])
	}
	rows := tokens * heads
	wsAcc := make([]float32, p.splits*rows*D)
	wsML := make([]float32, p.splits*rows*2)
	for i := range wsAcc {
		wsAcc[i] = float32(math.NaN()) // unwritten partials show
	}
	for i := range wsML {
		wsML[i] = float32(math.NaN())
	}
	scale := float32(1 / math.Sqrt(float64(D)))
	for bx := range int(p.shape.Grid[0]) {
		for kv := range int(p.shape.Grid[1]) {
			for z := range int(p.shape.Grid[2]) {
				emuVerifyBlock(t, late, D, kw, int(p.shape.Shared), qkv, kc, vc, pos0, tokens, heads, kvHeads, ringCap, window,
					scale, p.blockKeys, bx, kv, z, wsAcc, wsML)
			}
		}
	}
	return emuReduce(wsAcc, wsML, rows, p.splits, D)
}

// TestVerifyEmulated runs attn_verify.cu's kernels, emulated lane by lane
// (fragments, ldmatrix, masks, softmax, warp combine, partials) with
// attn_reduce, against the float64 reference: ring wrapped, window edge,
// start of the cache, G = 8 with two row tiles, no window with several
// tiles per warp; and checks batch invariance bit for bit (within the
// emulation) where the window's first key block changes within a step. The
// step lands its copies late (at the waits), the single tokens at issue.
func TestVerifyEmulated(t *testing.T) {
	if testing.Short() {
		t.Skip("slow emulation")
	}
	defer func(v string, b int) { verifyKernel, verifyBlockKeys = v, b }(verifyKernel, verifyBlockKeys)
	rng := rand.New(rand.NewPCG(41, 42))
	type shape struct{ H, KV, D, pos0, cap, window, blockKeys int }
	shapes := []shape{
		{8, 2, 128, 700, 600, 512, 128}, // ring wrapped
		{8, 2, 128, 3, 600, 512, 128},   // the start of the cache
		{8, 2, 64, 300, 200, 128, 128},  // head dim 64, window edge, wrapped
		{32, 4, 64, 400, 600, 256, 128}, // G = 8: two row tiles at 9..16 tokens
		{8, 2, 64, 1500, 2000, 0, 512},  // no window, several tiles a warp
	}
	for _, c := range shapes {
		G := c.H / c.KV
		w := (c.H + 2*c.KV) * c.D
		kcF := randHalves(rng, c.KV*c.cap*c.D, -1, 1)
		vcF := randHalves(rng, c.KV*c.cap*c.D, -1, 1)
		kc, vc := halfBits(kcF), halfBits(vcF)
		keyRange := c.cap
		if c.window > 0 {
			keyRange = min(c.window+15, c.cap)
		}
		for _, k := range slices.Sorted(maps.Keys(verifyKernels)) {
			kw := verifyKernels[k]
			verifyKernel, verifyBlockKeys = k, c.blockKeys
			for _, T := range []int{1, 5, 9, 16} {
				t.Run(fmt.Sprintf("%s/%+v/T%d", k, c, T), func(t *testing.T) {
					qkvF := randHalves(rng, T*w, -1, 1)
					p := planAttention(T, c.H, c.KV, c.D, 132, keyRange)
					got := emuVerifyStep(t, true, p, kw, c.D, halfBits(qkvF), kc, vc, c.pos0, T, c.H, c.KV, c.cap, c.window)
					var want []float64
					for tt := range T {
						for h := range c.H {
							want = append(want, attnRef(qkvF[tt*w+h*c.D:], kcF, vcF, h/G, c.cap, c.D, c.pos0+tt, c.window)...)
						}
					}
					t.Logf("%s, %d splits of %d keys, %d bytes of shared memory", p.kernel, p.splits, p.blockKeys, p.shape.Shared)
					compare(t, "emulated attention", got, want, 2e-3, 2e-3)
					if T == 1 {
						return
					}
					// Batch invariance: each token alone gives the same bits.
					p1 := planAttention(1, c.H, c.KV, c.D, 132, keyRange)
					for i := range T {
						one := emuVerifyStep(t, false, p1, kw, c.D, halfBits(qkvF[i*w:(i+1)*w]), kc, vc, c.pos0+i, 1, c.H, c.KV, c.cap, c.window)
						for j := range one {
							if math.Float32bits(one[j]) != math.Float32bits(got[i*c.H*c.D+j]) {
								t.Fatalf("token %d of %d, element %d: %v alone, %v in the step", i, T, j, one[j], got[i*c.H*c.D+j])
							}
						}
					}
				})
			}
		}
	}
}
