package cuda

// Tests of lm_head on the tensor cores (lmhead_mma.cu, lmHeadMMA): CPU
// tests of the launch plan, the kernel names in the fatbins and the
// kernel's fragment index math; GPU tests of its logits against an fp64
// reference, of batch invariance bit for bit, and of an engine with the
// knob on.

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/briefapp/brief/inference"
)

// TestLMHeadPlan: with the knob on every step size 1..16 runs the mma
// kernel (of the chosen variant) on a grid of 32-row blocks; off, the FMA
// kernels as before; other sizes and unknown variants are refused.
func TestLMHeadPlan(t *testing.T) {
	for _, tc := range []struct {
		n, vocab int
		mma      bool
		variant  string
		kernel   string
		grid     uint32
		block    uint32
	}{
		{1, 32002, true, "", "lm_head_mma", 1001, 128},
		{3, 32002, true, "", "lm_head_mma", 1001, 128},
		{8, 32002, true, "", "lm_head_mma", 1001, 128},
		{9, 32002, true, "", "lm_head_mma", 1001, 128},
		{11, 32002, true, "", "lm_head_mma", 1001, 128},
		{16, 32002, true, "", "lm_head_mma", 1001, 128},
		{1, 32000, true, "", "lm_head_mma", 1000, 128},
		{1, 1003, true, "", "lm_head_mma", 32, 128},
		{1, 32002, true, "_np", "lm_head_mma_np", 1001, 128},
		{16, 32002, true, "_np", "lm_head_mma_np", 1001, 128},
		{1, 32002, false, "", "lm_head_1", 4001, 256},
		{3, 32002, false, "", "lm_head_4", 2001, 256},
		{11, 32002, false, "", "lm_head_16", 1001, 256},
		{11, 32002, false, "_np", "lm_head_16", 1001, 256}, // the variant is the mma kernel's
	} {
		k, s, err := lmHeadPlan(tc.n, tc.vocab, tc.mma, tc.variant)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if k != tc.kernel || s.Grid != [3]uint32{tc.grid} || s.Block != [3]uint32{tc.block} || s.Shared != 0 {
			t.Errorf("%d tokens vocab %d mma %v %q: %s grid %v block %v shared %d, want %s grid %d block %d",
				tc.n, tc.vocab, tc.mma, tc.variant, k, s.Grid, s.Block, s.Shared, tc.kernel, tc.grid, tc.block)
		}
	}
	for n := 1; n <= inference.MaxVerify; n++ {
		for _, mma := range []bool{false, true} {
			k, s, err := lmHeadPlan(n, 32002, mma, "")
			if err != nil {
				t.Fatalf("%d tokens mma %v: %v", n, mma, err)
			}
			if rows := int(s.Grid[0]) * 32; mma && rows < 32002 {
				t.Errorf("%s for %d tokens covers %d rows of 32002", k, n, rows)
			}
			if strings.HasPrefix(k, "lm_head_mma") != mma {
				t.Errorf("%d tokens mma %v: kernel %s", n, mma, k)
			}
		}
	}
	for _, n := range []int{0, -1, 17, 100} {
		for _, mma := range []bool{false, true} {
			if k, _, err := lmHeadPlan(n, 32002, mma, ""); err == nil {
				t.Errorf("%d tokens mma %v: planned %s, want an error", n, mma, k)
			}
		}
	}
	for _, v := range []string{"np", "_x", "_pf", "_np "} {
		if k, _, err := lmHeadPlan(1, 32002, true, v); err == nil {
			t.Errorf("variant %q: planned %s, want an error", v, k)
		}
	}
	for _, tc := range []struct {
		hidden int
		fits   bool
	}{{4096, true}, {64, true}, {128, true}, {1024, true}, {96, false}, {32, false}, {0, false}, {-64, false}} {
		if got := lmHeadMMAFits(tc.hidden); got != tc.fits {
			t.Errorf("hidden %d: fits %v, want %v", tc.hidden, got, tc.fits)
		}
	}
}

// TestLMHeadKernelsInFatbins: every kernel lmHeadPlan names is an entry of
// an embedded fatbin, and a name no source defines is not found.
func TestLMHeadKernelsInFatbins(t *testing.T) {
	has := fatbinHas(t)
	var names []string
	for n := 1; n <= inference.MaxVerify; n++ {
		for _, v := range lmHeadMMAVariants {
			for _, mma := range []bool{false, true} {
				k, _, err := lmHeadPlan(n, 32002, mma, v)
				if err != nil {
					t.Fatal(err)
				}
				names = append(names, k)
			}
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) != 7 {
		t.Errorf("kernels %v: want lm_head_1..16 and lm_head_mma, lm_head_mma_np", names)
	}
	for _, n := range names {
		if !has(n) {
			t.Errorf("kernel %q is in no embedded fatbin: run make -C cuda", n)
		}
	}
	for _, n := range []string{"lm_head_mma_n1", "lm_head_mma_", "lm_head_mma_n", "lm_head_mma_pf"} {
		if has(n) {
			t.Errorf("%q found as a kernel entry: the search does not tell names apart", n)
		}
	}
}

// TestLMHeadMMAFragments transliterates lmm_load, lmm_chunk and the
// epilogue (lmhead_mma.cu) for one 64-k chunk of 16 tokens and one 8-row
// tile: each lane's registers as the kernel loads them, fed through
// mma.m16n8k16's fragment layout (PTX ISA), must give every token's dot
// product with every row over all 64 k, each k once, and the epilogue's
// store must put each accumulator where the reduction reads that (token,
// row). Integer values keep the sums exact, so a permutation that pairs a
// row's k with a token's other k shows. It also checks that the warps'
// k-slices cover every chunk once.
func TestLMHeadMMAFragments(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	var W [8][lmHeadMMAChunk]int64               // one tile's vocabulary rows
	var X [lmHeadMMATokens][lmHeadMMAChunk]int64 // the tokens
	for i := range W {
		for k := range W[i] {
			W[i][k] = rng.Int64N(2001) - 1000
		}
	}
	for i := range X {
		for k := range X[i] {
			X[i][k] = rng.Int64N(2001) - 1000
		}
	}
	// word returns the two halves of 32-bit word i of the lane's 16-byte
	// piece u of row: k 32u + 8t + 2i and + 1.
	word := func(row *[lmHeadMMAChunk]int64, t, u, i int) [2]int64 {
		k := 32*u + 8*t + 2*i
		return [2]int64{row[k], row[k+1]}
	}
	var C [16][8]int64 // tokens x rows
	for s := range 4 {
		u, w0 := s>>1, (s&1)*2
		var A [16][16]int64
		var B [16][8]int64
		seenA, seenB := map[[2]int]bool{}, map[[2]int]bool{}
		for lane := range 32 {
			g, tq := lane>>2, lane&3
			// lmm_chunk: a = {x[0] w0, x[1] w0, x[0] w0+1, x[1] w0+1}, x[h] token g + 8h;
			// b0, b1 = words w0, w0+1 of row g.
			a := [4][2]int64{word(&X[g], tq, u, w0), word(&X[g+8], tq, u, w0), word(&X[g], tq, u, w0+1), word(&X[g+8], tq, u, w0+1)}
			b := [2][2]int64{word(&W[g], tq, u, w0), word(&W[g], tq, u, w0+1)}
			// A fragment: a0 (g, 2t..), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..).
			for i, rc := range [4][2]int{{g, 2 * tq}, {g + 8, 2 * tq}, {g, 2*tq + 8}, {g + 8, 2*tq + 8}} {
				for p := range 2 {
					A[rc[0]][rc[1]+p] = a[i][p]
					seenA[[2]int{rc[0], rc[1] + p}] = true
				}
			}
			// B fragment: b0 (k 2t.., column g), b1 (k 2t+8.., column g).
			for i, k := range [2]int{2 * tq, 2*tq + 8} {
				for p := range 2 {
					B[k+p][g] = b[i][p]
					seenB[[2]int{k + p, g}] = true
				}
			}
		}
		if len(seenA) != 256 || len(seenB) != 128 {
			t.Fatalf("step %d: fragments fill %d of A's 256 and %d of B's 128 elements", s, len(seenA), len(seenB))
		}
		for m := range 16 {
			for n := range 8 {
				for k := range 16 {
					C[m][n] += A[m][k] * B[k][n]
				}
			}
		}
	}
	for m := range 16 {
		for n := range 8 {
			var want int64
			for k := range lmHeadMMAChunk {
				want += X[m][k] * W[n][k]
			}
			if C[m][n] != want {
				t.Fatalf("token %d row %d: the fragments give %d, the dot product is %d", m, n, C[m][n], want)
			}
		}
	}

	// The epilogue: tile r's accumulators hold C[g (+8)][2t (+1)] (mma's C
	// layout, PTX ISA: c_i is row g + 8(i/2), column 2t + i%2); the kernel
	// stores them at part[w][token][row] and thread e reads (token, row) =
	// (e/32, e%32). Every (token, row) of the 4 tiles must be stored once,
	// from the accumulator that holds it.
	const rows = lmHeadMMARows
	var part [lmHeadMMATokens][rows]int64
	written := map[[2]int]int{}
	for r := range rows / 8 {
		for lane := range 32 {
			g, tq := lane>>2, lane&3
			// The kernel's store: m = 8r + 2t; [0] (g, m), [1] (g, m+1),
			// [2] (g+8, m), [3] (g+8, m+1).
			m := 8*r + 2*tq
			store := [4][2]int{{g, m}, {g, m + 1}, {g + 8, m}, {g + 8, m + 1}}
			for i, nm := range store {
				tok, row := g+8*(i>>1), 8*r+2*tq+(i&1)
				if nm != [2]int{tok, row} {
					t.Fatalf("accumulator %d of lane %d holds token %d row %d; the store writes token %d row %d", i, lane, tok, row, nm[0], nm[1])
				}
				part[nm[0]][nm[1]] = int64(1000*row + tok)
				written[nm]++
			}
		}
	}
	for e := range lmHeadMMATokens * rows {
		n, m := e/rows, e%rows
		if written[[2]int{n, m}] != 1 || part[n][m] != int64(1000*m+n) {
			t.Fatalf("epilogue element %d (token %d, row %d) written %d times", e, n, m, written[[2]int{n, m}])
		}
	}

	// k-slices: warp w takes chunks [w*C/4, (w+1)*C/4).
	for _, hidden := range []int{64, 128, 192, 512, 1024, 4096, 64 * 67} {
		chunks := hidden / lmHeadMMAChunk
		seen := make([]int, chunks)
		for w := range lmHeadMMAWarps {
			for c := w * chunks / lmHeadMMAWarps; c < (w+1)*chunks/lmHeadMMAWarps; c++ {
				seen[c]++
			}
		}
		for c, n := range seen {
			if n != 1 {
				t.Fatalf("hidden %d: chunk %d summed by %d warps", hidden, c, n)
			}
		}
	}
}

// lmHeadRef is x W^T in float64: (tokens, vocab).
func lmHeadRef(W, x []float32, tokens, vocab, hidden int) []float64 {
	want := make([]float64, tokens*vocab)
	for r := range tokens {
		for v := range vocab {
			s := 0.0
			for i := range hidden {
				s += float64(W[v*hidden+i]) * float64(x[r*hidden+i])
			}
			want[r*vocab+v] = s
		}
	}
	return want
}

// runLMHeadMMA launches the mma lm_head (variant v) for tokens rows of xp
// into a fresh 16-row output (poisoned) and returns all 16 rows.
func runLMHeadMMA(t *testing.T, d *device, v string, wp, xp devPtr, tokens, vocab, hidden int) []float32 {
	t.Helper()
	k, s, err := lmHeadPlan(tokens, vocab, true, v)
	if err != nil {
		t.Fatal(err)
	}
	out := d.mustAlloc(t, 4*inference.MaxVerify*vocab)
	if err := d.launch(k, s, "test", wp, xp, out, tokens, vocab, hidden); err != nil {
		t.Fatal(err)
	}
	return d.downF32(t, out, inference.MaxVerify*vocab)
}

// TestLMHeadMMA: the mma kernels' logits against float64, for hidden
// sizes of one chunk per warp or less (64: stories260K) up to the 7B's, a
// vocabulary whose last block is partial, and step sizes on both sides of
// 8; rows past the step's tokens are left alone.
func TestLMHeadMMA(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(23, 24))
	const V = 1003
	for _, hidden := range []int{64, 512, 4096} {
		W := randHalves(rng, V*hidden, -1, 1)
		wp := d.upHalf(t, W)
		for _, T := range []int{1, 2, 3, 8, 9, 11, 16} {
			for _, v := range lmHeadMMAVariants {
				t.Run(fmt.Sprintf("hidden%d/%d%s", hidden, T, v), func(t *testing.T) {
					d.bind(t)
					x := randHalves(rng, T*hidden, -1, 1)
					got := runLMHeadMMA(t, d, v, wp, d.upHalf(t, x), T, V, hidden)
					compare(t, "logits", got[:T*V], lmHeadRef(W, x, T, V, hidden), 1e-3, 1e-4)
					for i := T * V; i < len(got); i++ {
						if math.Float32bits(got[i]) != 0xffffffff {
							t.Fatalf("logit %d of row %d written in a %d-token step", i%V, i/V, T)
						}
					}
				})
			}
		}
	}
}

// TestLMHeadMMABatchInvariant: a token's logits are the same bits whatever
// the step's size (1, 3, 8, 9, 11, 16: zero rows in the mma or none), the
// token's place in it (its row of the mma) and the variant: the rows of a 16-token pool, shuffled into
// steps at several offsets, against the pool run as one 16-token step of
// the default variant.
func TestLMHeadMMABatchInvariant(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(25, 26))
	const V = 1003
	for _, hidden := range []int{512, 4096} {
		t.Run(fmt.Sprint(hidden), func(t *testing.T) {
			d.bind(t)
			const pool = inference.MaxVerify
			wp := d.upHalf(t, randHalves(rng, V*hidden, -1, 1))
			x := randHalves(rng, pool*hidden, -1, 1)
			ref := runLMHeadMMA(t, d, "", wp, d.upHalf(t, x), pool, V, hidden)
			for _, T := range []int{1, 3, 8, 9, 11, 16} {
				for _, c := range []struct {
					off int
					v   string
				}{{0, ""}, {5, ""}, {13, ""}, {0, "_np"}, {13, "_np"}} {
					off := c.off
					// Step row i holds pool row (7i + off) % 16: distinct rows, each
					// at another place than in the pool.
					src := make([]int, T)
					step := make([]float32, 0, T*hidden)
					for i := range T {
						src[i] = (7*i + off) % pool
						step = append(step, x[src[i]*hidden:(src[i]+1)*hidden]...)
					}
					got := runLMHeadMMA(t, d, c.v, wp, d.upHalf(t, step), T, V, hidden)
					for i, p := range src {
						for v := range V {
							if g, w := got[i*V+v], ref[p*V+v]; math.Float32bits(g) != math.Float32bits(w) {
								t.Fatalf("%d tokens variant %q offset %d: pool row %d at place %d: logit %d is %v, %v in the 16-token step", T, c.v, off, p, i, v, g, w)
							}
						}
					}
				}
			}
		})
	}
}

// withLMHeadMMA opens an engine on m with the lmHeadMMA knob set to on.
func withLMHeadMMA(t *testing.T, m *inference.Model, on bool) *Engine {
	t.Helper()
	defer func(v bool) { lmHeadMMA = v }(lmHeadMMA)
	lmHeadMMA = on
	e := testEngine(t, m, Options{})
	if e.lmHeadMMA != on {
		t.Fatalf("engine lmHeadMMA %v with the knob %v", e.lmHeadMMA, on)
	}
	return e
}

// TestLMHeadMMAEngine: an engine with lm_head on the tensor cores gives a
// verify step's last token the same logits bit for bit as one-token steps
// through the same tokens (every step size 1..16), keeps lookup equal to
// greedy, and stays close to the FMA kernels' logits.
func TestLMHeadMMAEngine(t *testing.T) {
	m := synthModel(t, "small", 9)
	rng := rand.New(rand.NewPCG(27, 28))
	prompt := make([]int, 120)
	for i := range prompt {
		prompt[i] = rng.IntN(m.Config.Vocab)
	}
	drafts := make([]int, inference.MaxVerify)
	for i := range drafts {
		drafts[i] = rng.IntN(m.Config.Vocab)
	}
	var single [2][][]float32 // [knob][token] the logits after drafts[:token+1], one token a step
	for k, on := range []bool{false, true} {
		e := withLMHeadMMA(t, m, on)
		if _, err := e.Prefill(context.Background(), prompt); err != nil {
			t.Fatal(err)
		}
		base := e.Len()
		for _, tok := range drafts {
			if _, err := e.Verify([]int{tok}); err != nil {
				t.Fatal(err)
			}
			l, err := e.LastLogits()
			if err != nil {
				t.Fatal(err)
			}
			single[k] = append(single[k], l)
		}
		if !on {
			e.Close()
			continue
		}
		if err := e.Rollback(base); err != nil {
			t.Fatal(err)
		}
		for n := 1; n <= inference.MaxVerify; n++ {
			if _, err := e.Verify(drafts[:n]); err != nil {
				t.Fatal(err)
			}
			l, err := e.LastLogits()
			if err != nil {
				t.Fatal(err)
			}
			sameSteps(t, [][]float32{l}, single[1][n-1:n], fmt.Sprintf("in a %d-token step", n), "in one-token steps")
			if err := e.Rollback(base); err != nil {
				t.Fatal(err)
			}
		}
		e.Close()
	}
	// The FMA and mma kernels sum in other orders: close, not equal.
	for i := range single[0] {
		want := make([]float64, len(single[0][i]))
		for j, v := range single[0][i] {
			want[j] = float64(v)
		}
		compare(t, fmt.Sprintf("token %d logits, mma against FMA", i), single[1][i], want, 1e-3, 1e-4)
	}

	e := withLMHeadMMA(t, m, true)
	accepted := 0
	for seed := uint64(8); seed < 11; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed+1))
		p := make([]int, 200)
		for i := range p {
			p[i] = rng.IntN(m.Config.Vocab)
		}
		var ids [2][]int
		for i, s := range []inference.Strategy{inference.Greedy, inference.Lookup} {
			rep, err := inference.Generate(context.Background(), e, nil, inference.Request{
				Prompt: p, MaxNewTokens: 300, Strategy: s, LookupTokens: 10}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = rep.TokenIDs
			accepted += rep.Accepted
		}
		if !slices.Equal(ids[0], ids[1]) {
			t.Errorf("prompt %d: lookup ids differ from greedy with lm_head on the tensor cores:\n greedy %v\n lookup %v", seed, ids[0], ids[1])
		}
	}
	if accepted == 0 {
		t.Error("no drafted token accepted: the test does not exercise verify steps")
	}
	t.Logf("%d drafts accepted over 3 prompts", accepted)
}

// BenchmarkLMHeadMMA times replayed verify steps of the synthetic 7B
// ($BRIEF_SYNTH_DIR, see benchModel) after the reference prompt's 6,435
// tokens with lm_head on the FMA kernels (off) and the tensor cores (on,
// and on_np for the non-prefetching variant), one engine at a time, and logs each one's lm_head kernel time (events,
// eager launches) at 1 and 11 tokens.
func BenchmarkLMHeadMMA(b *testing.B) {
	m := benchModel(b)
	prompt := benchPrompt(m)
	defer func(v bool, s string) { lmHeadMMA, lmHeadMMAVariant = v, s }(lmHeadMMA, lmHeadMMAVariant)
	for _, c := range []struct {
		name    string
		on      bool
		variant string
	}{{"off", false, ""}, {"on", true, ""}, {"on_np", true, "_np"}} {
		name, on := c.name, c.on
		lmHeadMMA, lmHeadMMAVariant = on, c.variant
		e := benchEngine(b, m, prompt)
		if e.lmHeadMMA != on {
			e.Close()
			b.Fatalf("engine lmHeadMMA = %v with the knob %v", e.lmHeadMMA, on)
		}
		for _, n := range []int{1, 8, 11, 16} {
			benchVerify(b, e, fmt.Sprintf("%s/verify%d", name, n), prompt, n)
		}
		for _, n := range []int{1, 11} {
			prof, err := e.Profile(n, 20)
			if err != nil {
				e.Close()
				b.Fatal(err)
			}
			for k, ms := range prof {
				if strings.HasPrefix(k, "lm_head") {
					b.Logf("lm_head %s, %d tokens: %s %.4f ms (%.2f TB/s of W)", name, n, k, ms,
						2*float64(m.Config.Vocab)*float64(m.Config.Hidden)/(ms*1e-3)/1e12)
				}
			}
		}
		e.Close()
	}
}
