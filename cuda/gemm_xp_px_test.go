package cuda

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/briefapp/brief/inference"
)

// Tests of the x-producer GEMM's inputs stored in its stages' order (awq.go:
// xpPerm): the _px norms and GEMM kernels write and read each 64-element
// chunk's pairs where xp_perm_pair (common.cuh) puts them. The kernel tests
// need a GPU (the GEMM ones sm_90) and skip elsewhere.

// xpPermPair is common.cuh's xp_perm_pair.
func xpPermPair(p int) int { return p&^31 | (p&7)<<2 | (p>>3)&3 }

// permRows is v (rows of n, n a multiple of 64) with each pair where
// xpPermPair puts it; unpermRows undoes it.
func permRows(v []float32, n int) []float32   { return movePairs(v, n, false) }
func unpermRows(v []float32, n int) []float32 { return movePairs(v, n, true) }

func movePairs(v []float32, n int, back bool) []float32 {
	out := make([]float32, len(v))
	for r := 0; r < len(v)/n; r++ {
		for p := 0; p < n/2; p++ {
			from, to := r*n+2*p, r*n+2*xpPermPair(p)
			if back {
				from, to = to, from
			}
			out[to], out[to+1] = v[from], v[from+1]
		}
	}
	return out
}

// upPermuted uploads rows of n random halves twice: in order, and with
// each pair where xpPermPair puts it.
func upPermuted(t *testing.T, d *device, rng *rand.Rand, rows, n int) (x, xp devPtr) {
	t.Helper()
	v := randHalves(rng, rows*n, -1, 1)
	return d.upHalf(t, v), d.upHalf(t, permRows(v, n))
}

// TestXpPermPair: the order is the one xp_stage_x stages x in, a
// permutation within each chunk: the producer thread with 16-byte piece u
// of a chunk's row (pairs 4u..4u+3) stores word k of it at word u/2 of the
// row's 16-byte unit 4(u%2) + k.
func TestXpPermPair(t *testing.T) {
	for c := range 3 {
		seen := map[int]bool{}
		for u := range 8 {
			for k := range 4 {
				p := 32*c + 4*u + k
				want := 32*c + 4*(4*(u%2)+k) + u/2
				if got := xpPermPair(p); got != want {
					t.Errorf("pair %d: %d, want %d", p, got, want)
				}
				seen[xpPermPair(p)] = true
			}
		}
		if len(seen) != 32 {
			t.Errorf("chunk %d: %d distinct places", c, len(seen))
		}
	}
	v := randHalves(rand.New(rand.NewPCG(1, 2)), 3*128, -1, 1)
	if got := unpermRows(permRows(v, 128), 128); !slices.Equal(got, v) {
		t.Error("unpermRows does not undo permRows")
	}
}

// TestNormPx: each _px norm leaves h as its plain twin does and writes its
// outputs, bit for bit, where xp_perm_pair puts them.
func TestNormPx(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(151, 152))
	const T, vocab = 40, 64
	for _, hid := range []int{4096, 1024} {
		h0 := randHalves(rng, T*hid, -3, 3)
		yp := d.upHalf(t, randHalves(rng, T*hid, -2, 2))
		wp := d.upHalf(t, randHalves(rng, hid, 0.5, 1.5))
		table := d.upHalf(t, randHalves(rng, vocab*hid, -1, 1))
		ids := make([]int, T)
		for i := range ids {
			ids[i] = rng.IntN(vocab)
		}
		pp := d.upI32(t, params(0, ids))
		for _, k := range []string{"add_rmsnorm", "add_rmsnorm_vt4", "embed_rmsnorm", "embed_rmsnorm_vt4"} {
			t.Run(fmt.Sprintf("%s hidden %d", k, hid), func(t *testing.T) {
				d.bind(t)
				threads := normThreads(hid)
				if k == "add_rmsnorm_vt4" || k == "embed_rmsnorm_vt4" {
					threads = uint32(hid / 16)
				}
				var hs, outs [2][]float32
				for i, name := range []string{k, k + "_px"} {
					h := d.upF32(t, h0)
					out := d.mustAlloc(t, 2*T*hid)
					ls := launchShape{Grid: [3]uint32{T}, Block: [3]uint32{threads}}
					var err error
					if k[:5] == "embed" {
						err = d.launch(name, ls, "test", table, pp, h, wp, out, hid, float32(1e-5))
					} else {
						err = d.launch(name, ls, "test", h, yp, wp, out, hid, float32(1e-5))
					}
					if err != nil {
						t.Fatal(err)
					}
					hs[i], outs[i] = d.downF32(t, h, T*hid), d.downHalf(t, out, T*hid)
				}
				sameBits(t, "h", hs[1], hs[0])
				sameBits(t, "out", unpermRows(outs[1], hid), outs[0])
			})
		}
	}
}

// TestGemmXpPxMatches: every tile's _px kernel on x stored permuted writes,
// bit for bit, what its plain kernel writes on x in order.
func TestGemmXpPxMatches(t *testing.T) {
	d := xpDevice(t)
	rng := rand.New(rand.NewPCG(153, 154))
	maxT := slices.Max(wgKernelTokens)
	for _, tile := range awqXpTiles {
		for _, sh := range wgKernelShapes {
			t.Run(fmt.Sprintf("%s %+v", xpName(tile), sh), func(t *testing.T) {
				d.bind(t)
				p, err := packAWQ(randomAWQ(rng, sh.in, sh.out, 128))
				if err != nil {
					t.Fatal(err)
				}
				w := d.upRaw(t, p.Bytes)
				x, xp := upPermuted(t, d, rng, maxT, sh.in)
				for _, T := range wgKernelTokens {
					y0, y1 := d.mustAlloc(t, 2*T*sh.out), d.mustAlloc(t, 2*T*sh.out)
					l := xpMove(tile)(awqPlan(&p, T, d.cc), &p, T)
					awqLaunchTest(t, d, l, w, x, y0, T, sh.in, sh.out)
					lp := l
					lp.Kernel += "_px"
					awqLaunchTest(t, d, lp, w, xp, y1, T, sh.in, sh.out)
					ref, got := d.downRaw(t, y0, 2*T*sh.out), d.downRaw(t, y1, 2*T*sh.out)
					if i := firstDiff(ref, got); i >= 0 {
						t.Fatalf("%d tokens, %s: token %d output %d differs", T, lp.Kernel, i/2/sh.out, i/2%sh.out)
					}
				}
			})
		}
	}
}

// TestGemmXpPxSilu: the _px SiLU GEMMs on x stored permuted write the
// activations of the plain SiLU GEMMs on x in order, bit for bit, each
// pair where xp_perm_pair puts it.
func TestGemmXpPxSilu(t *testing.T) {
	d := xpDevice(t)
	rng := rand.New(rand.NewPCG(155, 156))
	maxT := slices.Max(wgKernelTokens)
	for _, tile := range awqXpTiles {
		for _, sh := range siluKernelShapes {
			t.Run(fmt.Sprintf("%s %+v", xpName(tile), sh), func(t *testing.T) {
				d.bind(t)
				in, inter := sh.in, sh.inter
				if in%64 != 0 || inter%64 != 0 {
					t.Skipf("rows of %d and %d: not whole 64-element chunks", in, inter)
				}
				_, perm := siluGateUp(t, rng, in, inter)
				w := d.upRaw(t, perm.Bytes)
				x, xp := upPermuted(t, d, rng, maxT, in)
				for _, T := range wgKernelTokens {
					a0, a1 := d.mustAlloc(t, 2*T*inter), d.mustAlloc(t, 2*T*inter)
					f := xpMove(tile)(awqGemmEpiPlan(&perm, T, d.cc, epiSilu), &perm, T)
					awqLaunchTest(t, d, f, w, x, a0, T, in, perm.Out)
					fp := f
					fp.Kernel += "_px"
					awqLaunchTest(t, d, fp, w, xp, a1, T, in, perm.Out)
					sameBits(t, fmt.Sprintf("%d tokens, %s", T, fp.Kernel), unpermRows(d.downHalf(t, a1, T*inter), inter), d.downHalf(t, a0, T*inter))
				}
			})
		}
	}
}

func withXpPerm(t *testing.T, m *inference.Model, opts Options, on bool) *Engine {
	t.Helper()
	return withKnob(t, m, opts, "xpPerm", &xpPerm, on, func(e *Engine) bool { return e.xpPerm })
}

// TestXpPermEngine: an engine with the GEMMs' inputs stored permuted gives
// the logits of one without, bit for bit, over prefills (whole and in
// chunks of 130), decodes and verify steps: the RoPE GEMM's _px kernel
// with them.
func TestXpPermEngine(t *testing.T) {
	xpDevice(t)
	knobSameSteps(t, 157, "inputs permuted", "inputs in order", withXpPerm)
}

// TestLookupMatchesGreedyXpPerm: with them, greedy ids equal those
// without, and prompt lookup's equal greedy's.
func TestLookupMatchesGreedyXpPerm(t *testing.T) {
	xpDevice(t)
	m := synthModel(t, "small", 5)
	knobKeepsGreedy(t, "the GEMMs' inputs permuted", m, 200, 18, func(on bool) *Engine {
		return withXpPerm(t, m, Options{}, on)
	})
}
