package cuda

// CPU tests of the fused-SiLU gate|up path (awq.go: siluOrder,
// packAWQOrder, awqSiluPlan; the kernels' index math emulated; the kernel
// names in the embedded fatbins); the GPU tests are in silu_fused_test.go.

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/briefapp/brief/inference"
)

// siluInters are intermediate sizes for the order tests: the 7B's, the
// "small" and "hd64" synthetic models', and sizes whose plain gate|up
// packing has a stripe straddling gate and up (inter/8 odd).
var siluInters = []int{8, 24, 192, 1000, 1024, 3584, 14336}

// TestSiluOrder: siluOrder is a permutation of gate|up's columns that puts
// gate column j and up column j in rows g and g+8 of one stripe, where both
// kernels look for them: silu_epilogue writes activation 8s+g from rows g
// and g+8 of stripe s, silu_mul_perm reads activation j from device columns
// 16(j/8) + j%8 and 8 after it.
func TestSiluOrder(t *testing.T) {
	for _, inter := range siluInters {
		order := siluOrder(inter)
		if err := checkOrder(order, 2*inter); err != nil {
			t.Fatalf("inter %d: %v", inter, err)
		}
		inv := invertOrder(order)
		for s := 0; s < 2*inter/awqStripe; s++ {
			for g := range 8 {
				j := 8*s + g
				if order[16*s+g] != j || order[16*s+g+8] != inter+j {
					t.Fatalf("inter %d: stripe %d rows %d, %d hold columns %d, %d; silu_epilogue expects gate %d, up %d",
						inter, s, g, g+8, order[16*s+g], order[16*s+g+8], j, inter+j)
				}
			}
		}
		for j := range inter {
			pc := 16*(j/8) + j%8
			if inv[j] != pc || inv[inter+j] != pc+8 {
				t.Fatalf("inter %d: gate %d and up %d at device columns %d, %d; silu_mul_perm reads %d, %d", inter, j, j, inv[j], inv[inter+j], pc, pc+8)
			}
		}
	}
	for _, tc := range []struct {
		group, inter int
		want         bool
	}{
		{128, 14336, true}, {128, 3584, true}, {128, 8, true}, {128, 1000, true},
		{64, 14336, false}, {32, 14336, false}, {128, 12, false}, {128, 0, false}, {128, -8, false},
	} {
		if got := siluFusable(tc.group, tc.inter); got != tc.want {
			t.Errorf("%+v: fusable %v", tc, got)
		}
	}
}

// permuteAWQ is the file-layout linear whose column n is l's column
// order[n] (weights, zeros and scales): what the checkpoint would hold if
// its columns came in that order.
func permuteAWQ(l inference.AWQLinear, order []int) inference.AWQLinear {
	p := inference.AWQLinear{In: l.In, Out: l.Out, GroupSize: l.GroupSize,
		QWeight: make([]int32, len(l.QWeight)),
		QZeros:  make([]int32, len(l.QZeros)),
		Scales:  make([]uint16, len(l.Scales)),
	}
	pc := l.Out / 8
	move := func(dst, src []int32, rows int) {
		for k := range rows {
			for n, o := range order {
				q := nibble(src[k*pc+o/8], o%8)
				dst[k*pc+n/8] |= int32(q << (4 * nibbleOf[n%8]))
			}
		}
	}
	move(p.QWeight, l.QWeight, l.In)
	move(p.QZeros, l.QZeros, l.In/l.GroupSize)
	for gi := 0; gi < l.In/l.GroupSize; gi++ {
		for n, o := range order {
			p.Scales[gi*l.Out+n] = l.Scales[gi*l.Out+o]
		}
	}
	return p
}

// TestPackAWQSiluOrder: packing gate and up in siluOrder gives the very
// bytes of packing a checkpoint whose gate|up columns were permuted so, and
// every device weight dequantizes to the file's weight of column order[m].
func TestPackAWQSiluOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for _, tc := range []struct{ in, inter int }{{256, 24}, {128, 40}, {384, 64}} {
		gate, up := randomAWQ(r, tc.in, tc.inter, 128), randomAWQ(r, tc.in, tc.inter, 128)
		order := siluOrder(tc.inter)
		p, err := packAWQOrder(order, gate, up)
		if err != nil {
			t.Fatal(err)
		}
		permuted, err := packAWQ(permuteAWQ(concatAWQ(gate, up), order))
		if err != nil {
			t.Fatal(err)
		}
		if p.Out != 2*tc.inter || !bytes.Equal(p.Bytes, permuted.Bytes) {
			t.Fatalf("%+v: packing in siluOrder (out %d, %d bytes) differs from packing the permuted checkpoint (out %d, %d bytes)",
				tc, p.Out, len(p.Bytes), permuted.Out, len(permuted.Bytes))
		}
		plain, err := packAWQ(gate, up)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(p.Bytes, plain.Bytes) {
			t.Fatalf("%+v: siluOrder packs the same bytes as the plain order: the test compares nothing", tc)
		}
		want := concat(fileDequant(gate), fileDequant(up))
		deviceFragments(p, func(k, n int, v float64) {
			if v != want[k][order[n]] {
				t.Fatalf("%+v: device W[%d][%d] = %g, file W[%d][%d] = %g", tc, k, n, v, k, order[n], want[k][order[n]])
			}
		})
	}
}

// TestAWQSiluPlan: the fused-SiLU mat-vec runs group 128 at 1..16 tokens
// with the plain mat-vec's shape, under a kernel the sources define; other
// groups, ragged outputs and longer steps get no fused kernel.
func TestAWQSiluPlan(t *testing.T) {
	for _, sh := range []struct{ in, inter int }{{4096, 14336}, {1024, 3584}, {512, 1024}, {512, 1000}} {
		p := &awqPacked{In: sh.in, Out: 2 * sh.inter, Group: 128}
		for tokens := 1; tokens <= 16; tokens++ {
			l, base := awqSiluPlan(p, tokens, 90), awqPlan(p, tokens, 90)
			if l.Kernel != base.Kernel+"_silu" || l.Grid != base.Grid || l.Block != base.Block || l.Shared != base.Shared || l.Workspace != 0 {
				t.Errorf("%+v tokens %d: plan %+v, want %+v under the _silu name", sh, tokens, l, base)
			}
			if !kernelDefined(t, l.Kernel) {
				t.Errorf("%+v tokens %d: kernel %q is not defined in cuda/awq_gemv.cu", sh, tokens, l.Kernel)
			}
		}
		for _, tokens := range []int{0, 17, 512} {
			if l := awqSiluPlan(p, tokens, 90); l.Kernel != "" {
				t.Errorf("%+v tokens %d: plan %+v, want none", sh, tokens, l)
			}
		}
	}
	for _, p := range []*awqPacked{{In: 4096, Out: 28672, Group: 64}, {In: 4096, Out: 28672, Group: 32}, {In: 512, Out: 24, Group: 128}, nil} {
		if l := awqSiluPlan(p, 1, 90); l.Kernel != "" {
			t.Errorf("%+v: plan %+v, want none", p, l)
		}
	}
}

// TestSiluKernelsInFatbins: every kernel the fused-SiLU and fused-RoPE
// paths launch is an entry of an embedded fatbin (a stale or partial
// build would fail at the first step on the GPU), and a name no source
// defines is not found.
func TestSiluKernelsInFatbins(t *testing.T) {
	has := fatbinHas(t)
	names := []string{"silu_mul", "silu_mul_perm", "rope_append", "rope_append_perm"}
	p := &awqPacked{In: 4096, Out: 28672, Group: 128}
	for tokens := 1; tokens <= 16; tokens++ {
		names = append(names, awqSiluPlan(p, tokens, 90).Kernel, awqRopePlan(p, tokens, 90).Kernel, awqPlan(p, tokens, 90).Kernel)
	}
	slices.Sort(names)
	for _, n := range slices.Compact(names) {
		if !has(n) {
			t.Errorf("kernel %q is in no embedded fatbin: run make -C cuda", n)
		}
	}
	for _, n := range []string{"awq_gemv_g128_n3_silu", "silu_gate", "silu_mul_"} {
		if has(n) {
			t.Errorf("%q found as a kernel entry: the search does not tell names apart", n)
		}
	}
}

// TestSiluEpilogueEmulated runs Go transliterations of silu_epilogue
// (awq_gemv.cu) and silu_mul_perm (silu.cu), line for line in their index
// arithmetic, on a gate|up output in siluOrder, and checks that they write
// what silu_mul writes from the plain order, every activation once. The
// gate function is a stand-in that tells gate and up apart; the GPU tests
// check the real one's bits.
func TestSiluEpilogueEmulated(t *testing.T) {
	gate := func(g, u float64) float64 { return 1e3*g + u }
	r := rand.New(rand.NewPCG(43, 44))
	for _, inter := range []int{24, 1000, 1024} {
		for _, T := range []int{1, 5, 8, 9, 11, 16} {
			out := 2 * inter
			order := siluOrder(inter)
			y := make([][]float64, T) // plain order, as the mat-vec stores it
			for tok := range y {
				y[tok] = make([]float64, out)
				for c := range y[tok] {
					y[tok][c] = r.Float64()
				}
			}
			// silu_mul on the plain order: grid (ceil(inter/256), T), block 256.
			want := make([]float64, T*inter)
			for tok := range T {
				for j := range inter {
					want[tok*inter+j] = gate(y[tok][j], y[tok][inter+j])
				}
			}
			check := func(what string, got []float64) {
				t.Helper()
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%s inter %d tokens %d: act[%d][%d] = %v, want %v", what, inter, T, i/inter, i%inter, got[i], want[i])
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
			got := slices.Repeat([]float64{math.NaN()}, T*inter)
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
				// silu_epilogue, one warp (nw = 1).
				j0 := s * (awqStripe / 2)
				for idx := 0; idx < NT*2*32; idx++ {
					l, p := idx%32, idx/32
					nt, i := p/2, p%2
					tok := nt*8 + 2*(l&3) + i
					if tok >= T || j0 >= inter {
						continue
					}
					v1 := (nt*4+i)*32 + l
					v2 := v1 + 2*32
					a := tok*inter + j0 + (l >> 2)
					if !math.IsNaN(got[a]) {
						t.Fatalf("silu_epilogue inter %d tokens %d: act[%d][%d] written twice", inter, T, tok, j0+(l>>2))
					}
					got[a] = gate(red[v1], red[v2])
				}
			}
			check("silu_epilogue", got)

			// silu_mul_perm on the permuted order (the GEMM's output).
			got = slices.Repeat([]float64{math.NaN()}, T*inter)
			for tok := range T {
				row := make([]float64, out)
				for m, o := range order {
					row[m] = y[tok][o]
				}
				for j := range inter {
					c := 16*(j>>3) + (j & 7)
					got[tok*inter+j] = gate(row[c], row[c+8])
				}
			}
			check("silu_mul_perm", got)
		}
	}
}

// TestSiluKernelFamilies: a profile of the fused path books the fused
// mat-vec under the AWQ mat-vec family (tagged gate|up by forward) and
// silu_mul_perm under SiLU, as their unfused counterparts.
func TestSiluKernelFamilies(t *testing.T) {
	for _, tc := range []struct{ kernel, want string }{
		{"awq_gemv_g128_n1_silu", "AWQ mat-vec"}, {"awq_gemv_g128_n2_silu", "AWQ mat-vec"}, {"awq_gemv_g128_n1", "AWQ mat-vec"},
		{"silu_mul_perm", "SiLU"}, {"silu_mul", "SiLU"},
	} {
		if got := kernelFamily(tc.kernel); got != tc.want {
			t.Errorf("kernelFamily(%q) = %q, want %q", tc.kernel, got, tc.want)
		}
	}
}
