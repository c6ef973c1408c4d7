package cuda

// CPU tests of the fused-RoPE q|k|v path (awq.go: ropeOrder, packAWQOrder,
// awqRopePlan; the kernels' epilogue index math emulated); the GPU tests
// are in rope_fused_test.go.

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// ropeShapes are q|k|v shapes for the fused-RoPE order: the 7B's, the
// "small" synthetic model's, head_dim 64, and odd head counts.
var ropeShapes = []struct{ heads, kvHeads, headDim int }{
	{32, 8, 128}, {8, 2, 128}, {4, 2, 64}, {3, 1, 64}, {1, 1, 128}, {5, 5, 64},
}

// TestRopeOrder: ropeOrder is a permutation that keeps every column in its
// head, leaves v alone, and puts each q and k RoPE pair in rows g and g+8 of
// one stripe, at the column the kernels compute (rope_epilogue: column
// 8*((16s mod D)/16) + g of head 16s/D and the one D/2 after it;
// rope_append_perm: column i at device column 16(i/8) + i%8 of its head).
func TestRopeOrder(t *testing.T) {
	for _, sh := range ropeShapes {
		H, KV, D := sh.heads, sh.kvHeads, sh.headDim
		half, qk := D/2, (H+KV)*D
		order := ropeOrder(H, KV, D)
		if err := checkOrder(order, (H+2*KV)*D); err != nil {
			t.Fatalf("%+v: %v", sh, err)
		}
		inv := invertOrder(order)
		for m, o := range order {
			if inv[o] != m {
				t.Fatalf("%+v: inverse of column %d is %d, want %d", sh, o, inv[o], m)
			}
			if o/D != m/D {
				t.Fatalf("%+v: device column %d (head %d) holds column %d of head %d", sh, m, m/D, o, o/D)
			}
			if m >= qk && o != m {
				t.Fatalf("%+v: v device column %d holds column %d", sh, m, o)
			}
		}
		for s := 0; s < qk/awqStripe; s++ {
			col0 := s * awqStripe
			for g := range 8 {
				head, c := col0/D, 8*((col0%D)/awqStripe)+g
				if order[col0+g] != head*D+c || order[col0+g+8] != head*D+c+half {
					t.Fatalf("%+v: stripe %d rows %d, %d hold columns %d, %d; the epilogue expects %d, %d",
						sh, s, g, g+8, order[col0+g], order[col0+g+8], head*D+c, head*D+c+half)
				}
			}
		}
		for h := range H + KV {
			for i := range half {
				pc := 16*(i/8) + i%8
				if order[h*D+pc] != h*D+i || order[h*D+pc+8] != h*D+i+half {
					t.Fatalf("%+v: head %d pair %d: device columns %d, %d hold %d, %d", sh, h, i, pc, pc+8, order[h*D+pc], order[h*D+pc+8])
				}
			}
		}
	}
}

// TestPackAWQOrder: packing in an order moves whole columns, scales and
// zeros with them: device column m dequantizes to column order[m] of the
// file, and the emulated mat-vec's column m is the unpermuted one's
// column order[m] (to rounding: emulateGemv adds its steps in map order;
// the GPU test checks bits).
func TestPackAWQOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, sh := range []struct{ heads, kvHeads, headDim int }{{4, 2, 64}, {3, 1, 64}, {2, 1, 128}} {
		H, KV, D := sh.heads, sh.kvHeads, sh.headDim
		q, k, v := randomAWQ(r, 256, H*D, 128), randomAWQ(r, 256, KV*D, 128), randomAWQ(r, 256, KV*D, 128)
		want := concat(fileDequant(q), fileDequant(k), fileDequant(v))
		order := ropeOrder(H, KV, D)
		p, err := packAWQOrder(order, q, k, v)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := packAWQ(q, k, v)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Bytes) != len(plain.Bytes) || p.Out != plain.Out {
			t.Fatalf("%+v: permuted packing has %d bytes out %d, plain %d bytes out %d", sh, len(p.Bytes), p.Out, len(plain.Bytes), plain.Out)
		}
		deviceFragments(p, func(kk, n int, val float64) {
			if val != want[kk][order[n]] {
				t.Fatalf("%+v: device W[%d][%d] = %g, file W[%d][%d] = %g", sh, kk, n, val, kk, order[n], want[kk][order[n]])
			}
		})
		x := make([][]float64, 11)
		for i := range x {
			x[i] = make([]float64, 256)
			for j := range x[i] {
				x[i][j] = r.Float64()*2 - 1
			}
		}
		yp, y := emulateGemv(p, x), emulateGemv(plain, x)
		for i := range x {
			for m, o := range order {
				if math.Abs(yp[i][m]-y[i][o]) > 1e-12*(1+math.Abs(y[i][o])) {
					t.Fatalf("%+v: token %d device column %d = %v, unpermuted column %d = %v", sh, i, m, yp[i][m], o, y[i][o])
				}
			}
		}
	}
	l := randomAWQ(r, 128, 32, 128)
	for _, tc := range []struct {
		name  string
		order []int
		want  string
	}{
		{"short", make([]int, 16), "16 columns, the linears have 32"},
		{"repeat", make([]int, 32), "not a permutation"},
		{"out of range", shifted(32), "not a permutation"},
	} {
		if _, err := packAWQOrder(tc.order, l); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// TestAWQRopePlan: the fused-RoPE mat-vec runs group 128 at 1..16 tokens
// with the plain mat-vec's shape, under a kernel the sources define; other
// groups and longer steps get no fused kernel.
func TestAWQRopePlan(t *testing.T) {
	for _, sh := range []struct{ in, heads, kvHeads, headDim int }{{4096, 32, 8, 128}, {1024, 8, 2, 128}, {512, 4, 2, 64}} {
		p := &awqPacked{In: sh.in, Out: (sh.heads + 2*sh.kvHeads) * sh.headDim, Group: 128}
		for tokens := 1; tokens <= 16; tokens++ {
			l, base := awqRopePlan(p, tokens, 90), awqPlan(p, tokens, 90)
			if l.Kernel != base.Kernel+"_rope" || l.Grid != base.Grid || l.Block != base.Block || l.Shared != base.Shared || l.Workspace != 0 {
				t.Errorf("%+v tokens %d: plan %+v, want %+v under the _rope name", sh, tokens, l, base)
			}
			if !kernelDefined(t, l.Kernel) {
				t.Errorf("%+v tokens %d: kernel %q is not defined in cuda/awq_gemv.cu", sh, tokens, l.Kernel)
			}
		}
		for _, tokens := range []int{0, 17, 512} {
			if l := awqRopePlan(p, tokens, 90); l.Kernel != "" {
				t.Errorf("%+v tokens %d: plan %+v, want none", sh, tokens, l)
			}
		}
	}
	for _, g := range []int{32, 64} {
		if l := awqRopePlan(&awqPacked{In: 4096, Out: 6144, Group: g}, 1, 90); l.Kernel != "" {
			t.Errorf("group %d: plan %+v, want none", g, l)
		}
	}
	for _, tc := range []struct {
		group, heads, kvHeads, headDim int
		want                           bool
	}{
		{128, 32, 8, 128, true}, {128, 4, 2, 64, true}, {64, 32, 8, 128, false}, {32, 4, 2, 32, false},
		{128, 4, 2, 32, false}, {128, 4, 2, 96, false}, {128, 4, 2, 256, false}, {128, 0, 0, 128, false},
	} {
		if got := ropeFusable(tc.group, tc.heads, tc.kvHeads, tc.headDim); got != tc.want {
			t.Errorf("%+v: fusable %v", tc, got)
		}
	}
}

// shifted is 1..n: n columns, one out of range.
func shifted(n int) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = i + 1
	}
	return o
}

// TestRopeEpilogueEmulated runs Go transliterations of rope_epilogue
// (awq_gemv.cu) and rope_append_perm (rope.cu), line for line in their
// index arithmetic, on a q|k|v output in ropeOrder, and checks that they
// write what rope_append writes from the plain order: q to its own columns,
// k and v to slot pos % cap. The rotation is a stand-in that tells the
// column pair and position apart; the GPU tests check the real one's bits.
func TestRopeEpilogueEmulated(t *testing.T) {
	rot := func(x1, x2 float64, pos, i int) (float64, float64) {
		return x1 + 1e3*float64(pos) + 1e7*float64(i), x2 - 1e3*float64(pos) - 1e7*float64(i)
	}
	r := rand.New(rand.NewPCG(23, 24))
	for _, sh := range ropeShapes {
		for _, pc := range []struct{ pos, cap, tokens int }{{0, 64, 1}, {35, 40, 16}, {4093, 4113, 11}, {7, 20, 9}} {
			H, KV, D := sh.heads, sh.kvHeads, sh.headDim
			half, out, T := D/2, (H+2*KV)*D, pc.tokens
			order := ropeOrder(H, KV, D)
			y := make([][]float64, T) // plain order, as the mat-vec stores it
			for tok := range y {
				y[tok] = make([]float64, out)
				for c := range y[tok] {
					y[tok][c] = r.Float64()
				}
			}
			newCache := func() []float64 { return slices.Repeat([]float64{math.NaN()}, KV*pc.cap*D) }

			// rope_append on the plain order: grid (T, H+KV), block D/2.
			wantQ := make([][]float64, T)
			wantK, wantV := newCache(), newCache()
			for tok := range T {
				wantQ[tok] = slices.Clone(y[tok])
				pos := pc.pos + tok
				for hh := range H + KV {
					for i := range half {
						r1, r2 := rot(y[tok][hh*D+i], y[tok][hh*D+i+half], pos, i)
						if hh < H {
							wantQ[tok][hh*D+i], wantQ[tok][hh*D+i+half] = r1, r2
							continue
						}
						slot := ((hh-H)*pc.cap + pos%pc.cap) * D
						wantK[slot+i], wantK[slot+i+half] = r1, r2
						v := y[tok][(H+KV+hh-H)*D:]
						wantV[slot+i], wantV[slot+i+half] = v[i], v[i+half]
					}
				}
			}
			check := func(what string, q [][]float64, k, v []float64) {
				t.Helper()
				for tok := range T {
					for c := range H * D {
						if q[tok][c] != wantQ[tok][c] {
							t.Fatalf("%s %+v %+v: token %d q column %d = %v, want %v", what, sh, pc, tok, c, q[tok][c], wantQ[tok][c])
						}
					}
				}
				for i := range wantK {
					if !sameFloat(k[i], wantK[i]) || !sameFloat(v[i], wantV[i]) {
						t.Fatalf("%s %+v %+v: cache element %d: k %v v %v, want %v %v", what, sh, pc, i, k[i], v[i], wantK[i], wantV[i])
					}
				}
			}

			// The mat-vec's block reduction holds, per stripe s, accumulator
			// (nt*4 + i) of lane l: row g + 8*(i>=2), token nt*8 + 2*(l&3) + (i&1)
			// (the plain store's mapping), here from one warp.
			NT := 1
			if T > 8 {
				NT = 2
			}
			gotQ := make([][]float64, T)
			for tok := range gotQ {
				gotQ[tok] = make([]float64, out)
			}
			gotK, gotV := newCache(), newCache()
			for s := range out / awqStripe {
				red := make([]float64, NT*4*32)
				for idx := range red {
					v, l := idx/32, idx%32
					nt, i := v/4, v%4
					col := s*awqStripe + (l >> 2)
					if i >= 2 {
						col += 8
					}
					if tok := nt*8 + 2*(l&3) + (i & 1); tok < T {
						red[idx] = y[tok][order[col]]
					}
				}
				// rope_epilogue, one warp (nw = 1).
				qk, col0 := (H+KV)*D, s*awqStripe
				for idx := 0; idx < NT*2*32; idx++ {
					l, p := idx%32, idx/32
					nt, i, g := p/2, p%2, l>>2
					tok := nt*8 + 2*(l&3) + i
					if tok >= T || col0 >= out {
						continue
					}
					v1 := (nt*4+i)*32 + l
					v2 := v1 + 2*32
					h1, h2 := red[v1], red[v2]
					pos := pc.pos + tok
					slot := (pos % pc.cap) * D
					if col0 < qk {
						head, c := col0/D, 8*((col0%D)/awqStripe)+g
						r1, r2 := rot(h1, h2, pos, c)
						if head < H {
							gotQ[tok][head*D+c], gotQ[tok][head*D+c+half] = r1, r2
						} else {
							k := (head-H)*pc.cap*D + slot
							gotK[k+c], gotK[k+c+half] = r1, r2
						}
					} else {
						c := col0 - qk + g
						head, d := c/D, c%D
						v := head*pc.cap*D + slot
						gotV[v+d], gotV[v+d+8] = h1, h2
					}
				}
			}
			check("rope_epilogue", gotQ, gotK, gotV)

			// rope_append_perm on the permuted order (the GEMM's output).
			gotQ = make([][]float64, T)
			gotK, gotV = newCache(), newCache()
			for tok := range T {
				gotQ[tok] = make([]float64, out)
				for m, o := range order {
					gotQ[tok][m] = y[tok][o]
				}
				x := slices.Clone(gotQ[tok]) // every thread reads before any writes
				pos := pc.pos + tok
				for hh := range H + KV {
					for i := range half {
						pcol := 16*(i/8) + i%8
						r1, r2 := rot(x[hh*D+pcol], x[hh*D+pcol+8], pos, i)
						if hh < H {
							gotQ[tok][hh*D+i], gotQ[tok][hh*D+i+half] = r1, r2
							continue
						}
						slot := ((hh-H)*pc.cap + pos%pc.cap) * D
						gotK[slot+i], gotK[slot+i+half] = r1, r2
						v := x[(H+KV+hh-H)*D:]
						gotV[slot+i], gotV[slot+i+half] = v[i], v[i+half]
					}
				}
			}
			check("rope_append_perm", gotQ, gotK, gotV)
		}
	}
}

// sameFloat is a == b, with NaN equal to NaN (unwritten cache slots).
func sameFloat(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }
