package cuda

// CPU tests of the fused GEMM epilogues (awq.go: gemmEpilogue,
// awqGemmEpiPlan; awq_gemm.cu: gemm with kEpiSilu / kEpiRope): the plans,
// the kernel names in the sources and the embedded fatbins, and the
// epilogues' index math emulated over the plan's whole grid. The GPU tests
// are in gemm_epilogue_test.go.

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// gemmEpiShapes are projections for the plan tests: gate|up (out 2*inter)
// and q|k|v of the 7B, of the "small" and "hd64" synthetic models, and a
// gate|up whose plain packing has a stripe straddling gate and up.
var gemmEpiShapes = []struct {
	name, epi string
	in, out   int
}{
	{"7B gate|up", epiSilu, 4096, 2 * 14336},
	{"small gate|up", epiSilu, 1024, 2 * 3584},
	{"hd64 gate|up", epiSilu, 512, 2 * 1024},
	{"odd gate|up", epiSilu, 512, 2 * 1000},
	{"7B q|k|v", epiRope, 4096, (32 + 2*8) * 128},
	{"small q|k|v", epiRope, 1024, (8 + 2*2) * 128},
	{"hd64 q|k|v", epiRope, 512, (8 + 2*2) * 64},
}

// gemmEpiTokens are prefill chunk sizes: the smallest GEMM step, one block
// row, ragged block rows, both sides of awqGemmBigTokens, the default chunk.
var gemmEpiTokens = []int{17, 64, 130, 200, 383, 384, 512}

// TestAWQGemmEpiPlan: the fused-epilogue GEMM runs group 128 beyond 16
// tokens with the plain GEMM's shape (large or small tile as awqPlan picks)
// under the epilogue's name, a kernel the sources define; steps the mat-vec
// takes, other groups, ragged gate|up outputs and unknown epilogues get none.
func TestAWQGemmEpiPlan(t *testing.T) {
	tiles := map[string]bool{}
	for _, sh := range gemmEpiShapes {
		p := &awqPacked{In: sh.in, Out: sh.out, Group: 128}
		for _, tokens := range gemmEpiTokens {
			l, base := awqGemmEpiPlan(p, tokens, 90, sh.epi), awqPlan(p, tokens, 90)
			if !strings.HasPrefix(base.Kernel, "awq_gemm") {
				t.Fatalf("%s tokens %d: awqPlan runs %q, not the GEMM", sh.name, tokens, base.Kernel)
			}
			if l.Kernel != base.Kernel+sh.epi || l.Grid != base.Grid || l.Block != base.Block || l.Shared != base.Shared || l.Workspace != 0 {
				t.Errorf("%s tokens %d: plan %+v, want %+v under the %s name", sh.name, tokens, l, base, sh.epi)
			}
			if !kernelDefined(t, l.Kernel) {
				t.Errorf("%s tokens %d: kernel %q is not defined in cuda/awq_gemm.cu", sh.name, tokens, l.Kernel)
			}
			tiles[strings.TrimSuffix(l.Kernel, sh.epi)] = true
		}
		for _, tokens := range []int{-1, 0, 1, 8, 16} {
			if l := awqGemmEpiPlan(p, tokens, 90, sh.epi); l.Kernel != "" {
				t.Errorf("%s tokens %d: plan %+v, want none", sh.name, tokens, l)
			}
		}
		for _, epi := range []string{"", "_gelu", "silu"} {
			if l := awqGemmEpiPlan(p, 64, 90, epi); l.Kernel != "" {
				t.Errorf("%s epilogue %q: plan %+v, want none", sh.name, epi, l)
			}
		}
	}
	if !tiles["awq_gemm_g128"] || !tiles["awq_gemm_small_g128"] {
		t.Errorf("tiles planned %v: the table should exercise both the large and the small tile", tiles)
	}
	for _, tc := range []struct {
		p   *awqPacked
		epi string
	}{
		{&awqPacked{In: 4096, Out: 28672, Group: 64}, epiSilu}, {&awqPacked{In: 4096, Out: 6144, Group: 32}, epiRope},
		{&awqPacked{In: 512, Out: 24, Group: 128}, epiSilu}, {&awqPacked{In: 32, Out: 256, Group: 128}, epiRope}, {nil, epiSilu},
	} {
		if l := awqGemmEpiPlan(tc.p, 64, 90, tc.epi); l.Kernel != "" {
			t.Errorf("%+v %s: plan %+v, want none", tc.p, tc.epi, l)
		}
	}
}

// TestGemmEpiKernelsInFatbins: every kernel the fused GEMM epilogues
// launch is an entry of an embedded fatbin (a stale build would fail at the
// first prefill on the GPU), and made-up names are not found.
func TestGemmEpiKernelsInFatbins(t *testing.T) {
	has := fatbinHas(t)
	var names []string
	for _, sh := range gemmEpiShapes {
		for _, tokens := range gemmEpiTokens {
			names = append(names, awqGemmEpiPlan(&awqPacked{In: sh.in, Out: sh.out, Group: 128}, tokens, 90, sh.epi).Kernel)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) != 4 {
		t.Errorf("kernels planned %v: want the large and small tile of both epilogues", names)
	}
	for _, n := range names {
		if !has(n) {
			t.Errorf("kernel %q is in no embedded fatbin: run make -C cuda", n)
		}
	}
	for _, n := range []string{"awq_gemm_g64_silu", "awq_gemm_g32_rope", "awq_gemm_g128_gelu", "rope_pair_store"} {
		if has(n) {
			t.Errorf("%q found as a kernel entry: the search does not tell names apart", n)
		}
	}
}

// gemmTile is the block shape of a GEMM kernel (awq_gemm.cu: kGemm*):
// stripes, warps along stripes and along tokens.
func gemmTile(t *testing.T, l awqLaunch) (ms, wm, wn int) {
	t.Helper()
	ms, wm, wn = awqGemmStripes, 8, 1
	if strings.HasPrefix(l.Kernel, "awq_gemm_small_") {
		ms, wm = awqGemmSmallStripes, 4
	}
	if int(l.Block[0]) != wm*wn*32 {
		t.Fatalf("%s: block %v, the tile has %d warps", l.Kernel, l.Block, wm*wn)
	}
	return ms, wm, wn
}

// emulateGemmEpi runs the index math of gemm's epilogue over the whole grid
// of plan l: for every block, warp and lane, each accumulator pair (v, v+2)
// of acc[i][nt], as awq_gemm.cu computes stripe, row and token. pair gets
// the stripe, the lane's g and the token (all in range or not, as the
// kernel's guards see them).
func emulateGemmEpi(t *testing.T, l awqLaunch, pair func(stripe, g, tok int)) {
	t.Helper()
	ms, wm, wn := gemmTile(t, l)
	ws, wt := ms/wm, awqGemmTokens/wn/8
	for bx := range int(l.Grid[0]) {
		for by := range int(l.Grid[1]) {
			s0, n0 := bx*ms, by*awqGemmTokens
			for warp := range wm * wn {
				wmi, wni := warp%wm, warp/wm
				for lane := range 32 {
					g, tt := lane>>2, lane&3
					for i := range ws {
						for nt := range wt {
							for v := range 2 {
								pair(s0+wmi*ws+i, g, n0+(wni*wt+nt)*8+2*tt+v)
							}
						}
					}
				}
			}
		}
	}
}

// TestGemmSiluEpilogueEmulated: the fused-SiLU GEMM epilogue, run over
// the plan's grid on a gate|up output in siluOrder, writes what
// silu_mul_perm writes after the plain GEMM (and silu_mul from the plain
// order), every activation exactly once. The gate function is a stand-in
// that tells gate and up apart; the GPU tests check the real one's bits.
func TestGemmSiluEpilogueEmulated(t *testing.T) {
	gate := func(g, u float64) float64 { return 1e3*g + u }
	r := rand.New(rand.NewPCG(61, 62))
	for _, inter := range []int{24, 1000, 1024, 3584} {
		for _, T := range []int{17, 64, 130, 200, 512} {
			out := 2 * inter
			order := siluOrder(inter)
			y := make([][]float64, T) // plain order
			for tok := range y {
				y[tok] = make([]float64, out)
				for c := range y[tok] {
					y[tok][c] = r.Float64()
				}
			}
			l := awqGemmEpiPlan(&awqPacked{In: 512, Out: out, Group: 128}, T, 90, epiSilu)
			got := slices.Repeat([]float64{math.NaN()}, T*inter)
			emulateGemmEpi(t, l, func(stripe, g, tok int) {
				// awq_gemm.cu, kEpiSilu: acc[v] is row g of the stripe, acc[v+2] row g+8.
				j := stripe*(awqStripe/2) + g
				if j >= inter || tok >= T {
					return
				}
				a := tok*inter + j
				if !math.IsNaN(got[a]) {
					t.Fatalf("inter %d tokens %d (%s): act[%d][%d] written twice", inter, T, l.Kernel, tok, j)
				}
				got[a] = gate(y[tok][order[stripe*awqStripe+g]], y[tok][order[stripe*awqStripe+g+8]])
			})
			for tok := range T {
				row := make([]float64, out) // the plain GEMM's y on the permuted packing
				for m, o := range order {
					row[m] = y[tok][o]
				}
				for j := range inter {
					c := 16*(j>>3) + (j & 7) // silu_mul_perm
					perm, plain := gate(row[c], row[c+8]), gate(y[tok][j], y[tok][inter+j])
					if g := got[tok*inter+j]; g != perm || g != plain {
						t.Fatalf("inter %d tokens %d (%s): act[%d][%d] = %v, silu_mul_perm %v, silu_mul %v", inter, T, l.Kernel, tok, j, g, perm, plain)
					}
				}
			}
		}
	}
}

// TestGemmRopeEpilogueEmulated: the fused-RoPE GEMM epilogue, run over the
// plan's grid on a q|k|v output in ropeOrder with rope_pair_store's index
// math, writes what rope_append_perm leaves after the plain GEMM: every q
// column of every token once, rotated, and each token's k and v into slot
// pos % cap of the caches once, also where the ring wraps. The rotation is
// a stand-in that tells the column pair and position apart.
func TestGemmRopeEpilogueEmulated(t *testing.T) {
	rot := func(x1, x2 float64, pos, i int) (float64, float64) {
		return x1 + 1e3*float64(pos) + 1e7*float64(i), x2 - 1e3*float64(pos) - 1e7*float64(i)
	}
	r := rand.New(rand.NewPCG(63, 64))
	for _, sh := range ropeShapes {
		for _, pc := range []struct{ pos, cap, tokens int }{{0, 600, 17}, {100, 250, 200}, {4093, 4113, 130}, {7, 600, 512}} {
			H, KV, D := sh.heads, sh.kvHeads, sh.headDim
			half, out, T := D/2, (H+2*KV)*D, pc.tokens
			order := ropeOrder(H, KV, D)
			y := make([][]float64, T) // plain order
			for tok := range y {
				y[tok] = make([]float64, out)
				for c := range y[tok] {
					y[tok][c] = r.Float64()
				}
			}
			newCache := func() []float64 { return slices.Repeat([]float64{math.NaN()}, KV*pc.cap*D) }
			// rope_append_perm after the plain GEMM on the permuted packing.
			wantQ := make([][]float64, T)
			wantK, wantV := newCache(), newCache()
			for tok := range T {
				x := make([]float64, out)
				for m, o := range order {
					x[m] = y[tok][o]
				}
				wantQ[tok] = slices.Clone(x)
				pos := pc.pos + tok
				for hh := range H + KV {
					for i := range half {
						pcol := 16*(i/8) + i%8
						r1, r2 := rot(x[hh*D+pcol], x[hh*D+pcol+8], pos, i)
						if hh < H {
							wantQ[tok][hh*D+i], wantQ[tok][hh*D+i+half] = r1, r2
							continue
						}
						slot := ((hh-H)*pc.cap + pos%pc.cap) * D
						wantK[slot+i], wantK[slot+i+half] = r1, r2
						v := x[(H+KV+hh-H)*D:]
						wantV[slot+i], wantV[slot+i+half] = v[i], v[i+half]
					}
				}
			}

			l := awqGemmEpiPlan(&awqPacked{In: 512, Out: out, Group: 128}, T, 90, epiRope)
			gotQ := make([][]float64, T)
			for tok := range gotQ {
				gotQ[tok] = slices.Repeat([]float64{math.NaN()}, H*D)
			}
			gotK, gotV := newCache(), newCache()
			set := func(dst []float64, i int, v float64, what string, tok int) {
				if !math.IsNaN(dst[i]) {
					t.Fatalf("%+v %+v (%s): token %d %s element %d written twice", sh, pc, l.Kernel, tok, what, i)
				}
				dst[i] = v
			}
			emulateGemmEpi(t, l, func(stripe, g, tok int) {
				col0 := stripe * awqStripe
				if col0 >= out || tok >= T {
					return
				}
				h1, h2 := y[tok][order[col0+g]], y[tok][order[col0+g+8]]
				// rope_pair_store (awq_epilogue.cuh).
				pos := pc.pos + tok
				qk, slot := (H+KV)*D, (pos%pc.cap)*D
				if col0 < qk {
					head, c := col0/D, 8*((col0%D)/16)+g
					r1, r2 := rot(h1, h2, pos, c)
					if head < H {
						set(gotQ[tok], head*D+c, r1, "q", tok)
						set(gotQ[tok], head*D+c+half, r2, "q", tok)
					} else {
						k := (head-H)*pc.cap*D + slot
						set(gotK, k+c, r1, "k cache", tok)
						set(gotK, k+c+half, r2, "k cache", tok)
					}
				} else {
					c := col0 - qk + g
					head, d := c/D, c%D
					v := head*pc.cap*D + slot
					set(gotV, v+d, h1, "v cache", tok)
					set(gotV, v+d+8, h2, "v cache", tok)
				}
			})
			for tok := range T {
				for c := range H * D {
					if gotQ[tok][c] != wantQ[tok][c] {
						t.Fatalf("%+v %+v (%s): token %d q column %d = %v, want %v", sh, pc, l.Kernel, tok, c, gotQ[tok][c], wantQ[tok][c])
					}
				}
			}
			for i := range wantK {
				if !sameFloat(gotK[i], wantK[i]) || !sameFloat(gotV[i], wantV[i]) {
					t.Fatalf("%+v %+v (%s): cache element %d: k %v v %v, want %v %v", sh, pc, l.Kernel, i, gotK[i], gotV[i], wantK[i], wantV[i])
				}
			}
		}
	}
}
