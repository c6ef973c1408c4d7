package cuda

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/briefapp/brief/inference"
)

// p2Tile is one key tile a block of attn_prefill2* walks.
type p2Tile struct {
	k0   int
	full bool   // no key of the tile is hidden from a row of the block
	seen []bool // warp w has a row that may see a key of the tile
}

// p2Block is the key schedule of one block (row tile x, split z) of an
// attn_prefill2* kernel, its index math written again in Go: the keys it
// loads [lo, kEnd) from kBegin in tiles of keys, and which tiles skip the
// mask or a warp (of warpRows rows). rpos gives the position of each of the
// block's 128 rows (rows past the chunk repeat the last one, as in the
// kernel).
type p2Block struct {
	lo, kBegin, kEnd int
	keys, warpRows   int
	rpos             [prefill2Rows]int
	tiles            []p2Tile
}

func p2Schedule(k prefill2Shape, pos0, tokens, G, window, blockKeys, nsplit, x, z int) p2Block {
	b := p2Block{keys: k.keys, warpRows: prefill2Rows / (k.threads / 32)}
	keys := b.keys
	nrows := tokens * G
	row0 := x * prefill2Rows
	pFirst := pos0 + row0/G
	pLast := pos0 + (min(row0+prefill2Rows, nrows)-1)/G
	if window > 0 {
		b.lo = max(0, pFirst-window+1)
	}
	if blockKeys > 0 {
		b.kBegin = (b.lo/blockKeys + z) * blockKeys
		b.kEnd = min(pLast+1, b.kBegin+blockKeys)
	} else {
		n := pLast - b.lo + 1
		per := (n + nsplit - 1) / nsplit
		per = (per + keys - 1) / keys * keys
		b.kBegin = b.lo + z*per
		b.kEnd = min(pLast+1, b.kBegin+per)
	}
	for r := range b.rpos {
		b.rpos[r] = pos0 + min(row0+r, nrows-1)/G
	}
	for k0 := b.kBegin; k0 < b.kEnd; k0 += keys {
		tl := p2Tile{k0: k0, full: k0+keys-1 <= pFirst && k0+keys <= b.kEnd &&
			(window <= 0 || k0 > pLast-window), seen: make([]bool, prefill2Rows/b.warpRows)}
		for w := range tl.seen {
			wFirst, wLast := b.rpos[w*b.warpRows], b.rpos[(w+1)*b.warpRows-1]
			tl.seen[w] = row0+w*b.warpRows < nrows && k0 <= wLast && (window <= 0 || k0+keys-1 > wFirst-window)
		}
		b.tiles = append(b.tiles, tl)
	}
	return b
}

// p2Mask is the kernel's per-element mask of a tile that is not full.
func (b *p2Block) p2Mask(kp, p, window int) bool {
	return kp < b.kEnd && kp <= p && (window <= 0 || kp > p-window)
}

// TestPrefill2Schedule checks attn_prefill2's key schedule without a GPU:
// over all splits every row takes each key it can see (window and causal)
// exactly once and no other; tiles marked full hold only keys every row of
// the block sees; a warp skips only tiles none of its rows sees; and every
// key that counts is loaded (the others are zero-filled).
func TestPrefill2Schedule(t *testing.T) {
	cases := []struct{ pos0, tokens, G, window, nsplit, blockKeys int }{
		{0, 17, 4, 4096, 1, 0},
		{0, 512, 4, 4096, 3, 0},
		{100, 64, 4, 4096, 2, 0},
		{4000, 100, 4, 4096, 5, 0},
		{4096, 512, 4, 4096, 2, 0},
		{6435, 512, 4, 4096, 3, 0},
		{6435, 512, 4, 4096, 64, 0},
		{700, 100, 4, 256, 7, 0},
		{50, 40, 3, 0, 4, 0},
		{200, 100, 1, 0, 3, 0},
		{1000, 33, 4, 300, 2, 0},
		{6435, 512, 4, 4096, 34, 128}, // absolute key blocks
		{700, 20, 4, 256, 7, 64},
	}
	for _, c := range cases {
		for _, kn := range []string{"attn_prefill2", "attn_prefill2q"} {
			t.Run(fmt.Sprintf("%s/%+v", kn, c), func(t *testing.T) {
				kern := prefill2Kernels[kn]
				nrows := c.tokens * c.G
				tiles := (nrows + prefill2Rows - 1) / prefill2Rows
				nsplit := c.nsplit
				visited, full, skipped := 0, 0, 0
				for x := range tiles {
					// count[r*span + kp-base] is how often row r takes key kp.
					row0 := x * prefill2Rows
					pFirst, pLast := c.pos0+row0/c.G, c.pos0+(min(row0+prefill2Rows, nrows)-1)/c.G
					base := 0
					if c.window > 0 {
						base = max(0, pFirst-c.window+1-max(c.blockKeys, kern.keys))
					}
					span := pLast + kern.keys - base
					count := make([]int32, prefill2Rows*span)
					for z := range nsplit {
						b := p2Schedule(kern, c.pos0, c.tokens, c.G, c.window, c.blockKeys, nsplit, x, z)
						for _, tl := range b.tiles {
							visited++
							if tl.full {
								full++
							}
							for kp := tl.k0; kp < tl.k0+b.keys; kp++ {
								loaded := kp >= b.lo && kp < b.kEnd
								for r, p := range b.rpos {
									ok := b.p2Mask(kp, p, c.window)
									if tl.full && !ok {
										t.Fatalf("block %d split %d: tile %d is full but row %d (position %d) may not see key %d", x, z, tl.k0, r, p, kp)
									}
									if ok && !loaded {
										t.Fatalf("block %d split %d: row %d counts key %d, which is not loaded", x, z, r, kp)
									}
									valid := row0+r < nrows
									if !tl.seen[r/b.warpRows] {
										if ok && valid {
											t.Fatalf("block %d split %d: warp %d skips tile %d but row %d sees key %d", x, z, r/b.warpRows, tl.k0, r, kp)
										}
										continue
									}
									if ok && valid {
										if kp < base || kp >= base+span {
											t.Fatalf("block %d row %d takes key %d outside [%d, %d)", x, r, kp, base, base+span)
										}
										count[r*span+kp-base]++
									}
								}
							}
							for w := range tl.seen {
								if !tl.seen[w] {
									skipped++
								}
							}
						}
					}
					for r := range prefill2Rows {
						if row0+r >= nrows {
							break
						}
						p := c.pos0 + (row0+r)/c.G
						for kp := base; kp < base+span; kp++ {
							want := int32(0)
							if kp <= p && (c.window <= 0 || kp > p-c.window) {
								want = 1
							}
							if got := count[r*span+kp-base]; got != want {
								t.Fatalf("block %d row %d (position %d): key %d taken %d times, want %d", x, r, p, kp, got, want)
							}
						}
					}
				}
				t.Logf("%d tiles visited, %d full, %d warp-tiles skipped", visited, full, skipped)
			})
		}
	}
}

// TestPrefill2Plan: prefill chunks take an attn_prefill2* kernel when
// prefillKernel names it (128 rows, its threads and shared memory), verify
// steps take attn_verify2 with verifyEarly and attn_prefill otherwise,
// small head dims take neither, and the splits cover the GPU.
func TestPrefill2Plan(t *testing.T) {
	const H, KV, sms = 32, 8, 132
	for _, c := range []struct {
		prefill   string
		tokens, D int
		kernel    string
		tiles     int
		threads   int
		shared    int
		early     bool // verifyEarly
	}{
		{"attn_prefill2", 512, 128, "attn_prefill2_d128", 16, 256, 69632, false},
		{"attn_prefill2", 100, 128, "attn_prefill2_d128", 4, 256, 69632, false},
		{"attn_prefill2", 17, 64, "attn_prefill2_d64", 1, 256, 36864, false},
		{"attn_prefill2q", 512, 128, "attn_prefill2q_d128", 16, 128, 69632, false},
		{"attn_prefill2q", 17, 64, "attn_prefill2q_d64", 1, 128, 36864, false},
		{"attn_prefill2", 16, 128, "attn_prefill_d128", 1, 128, 0, false},
		{"attn_prefill2q", 1, 128, "attn_prefill_d128", 1, 128, 0, false},
		{"attn_prefill2", 16, 128, "attn_verify2_d128", 1, 128, 69632, true},
		{"attn_prefill2q", 1, 64, "attn_verify2_d64", 1, 128, 36864, true},
		{"attn_prefill2", 512, 128, "attn_prefill2_d128", 16, 256, 69632, true},
		{"attn_prefill2", 512, 32, "attn_d32_r16", 32, 128, attnSmem(32, 16), false},
		{"attn_prefill2", 16, 32, "attn_d32_r16", 1, 128, attnSmem(32, 16), true},
		{"", 512, 128, "attn_prefill_sync_d128", 32, 128, 0, false},
	} {
		defer func(v bool, k string) { verifyEarly, verifyKernel = v, k }(verifyEarly, verifyKernel)
		verifyEarly, verifyKernel = c.early, "" // the table is the tensor-core kernels' (BRIEF_VERIFY_KERNEL picks another)
		p := planAttentionWith(c.prefill, c.tokens, H, KV, c.D, sms, 4096+15)
		if p.kernel != c.kernel || p.tiles != c.tiles || p.shape.Block[0] != uint32(c.threads) || p.shape.Shared != uint32(c.shared) {
			t.Errorf("%q, %d tokens, head dim %d, verifyEarly %v: %s, %d tiles, %d threads, %d bytes shared; want %s, %d, %d, %d",
				c.prefill, c.tokens, c.D, c.early, p.kernel, p.tiles, p.shape.Block[0], p.shape.Shared, c.kernel, c.tiles, c.threads, c.shared)
		}
	}
}

// TestPrefill2Splits: the split count fills whole waves of resident blocks
// without splitting the keys more than that needs.
func TestPrefill2Splits(t *testing.T) {
	for _, c := range []struct{ blocks, slots, tiles, want int }{
		{128, 132, 66, 1}, // 7B chunk, attn_prefill2 on an H100: one wave
		{128, 264, 66, 2}, // attn_prefill2q: two blocks a multiprocessor
		{8, 264, 66, 33},  // 17 tokens: fill the GPU
		{8, 132, 66, 16},
		{2640, 132, 66, 1}, // twenty full waves: no split
		{80, 132, 66, 3},   // a short last chunk: 240 of 264 slots
	} {
		if got := prefill2Splits(c.blocks, c.slots, c.tiles); got != c.want {
			t.Errorf("prefill2Splits(%d blocks, %d slots, %d tiles) = %d, want %d", c.blocks, c.slots, c.tiles, got, c.want)
		}
	}
}

// TestAttentionPrefill2 runs the attn_prefill2* kernels against the float64
// reference on prefill chunks of 17 to 512 tokens before, at and past the
// window and across the cache ring's wrap, with the planned split count,
// one split and an odd one, and against the 64-row kernel.
// attnCase is one prefill attention launch: heads, KV heads, head dim,
// tokens, first position, cache ring slots and sliding window (0: none).
type attnCase struct{ H, KV, D, T, pos0, cap, window int }

// attnIn is a case's inputs: q|k|v rows and the key and value rings (host
// copies and on the device), the step's positions, and the key range a
// plan of the case covers.
type attnIn struct {
	qkv, kc, vc []float32
	q, k, v, p  devPtr
	keyRange    int
}

// attnInputs draws c's inputs from rng (q|k|v, then keys, then values)
// and uploads them.
func attnInputs(t *testing.T, d *device, rng *rand.Rand, c attnCase) attnIn {
	t.Helper()
	in := attnIn{
		qkv: randHalves(rng, c.T*(c.H+2*c.KV)*c.D, -1, 1),
		kc:  randHalves(rng, c.KV*c.cap*c.D, -1, 1),
		vc:  randHalves(rng, c.KV*c.cap*c.D, -1, 1),
	}
	in.q, in.k, in.v = d.upHalf(t, in.qkv), d.upHalf(t, in.kc), d.upHalf(t, in.vc)
	in.p = d.upI32(t, params(c.pos0, make([]int, c.T)))
	in.keyRange = c.cap
	if c.window > 0 {
		in.keyRange = min(c.window+15, c.cap)
	}
	return in
}

// reference is c's attention output in float64, row (token, head) by row.
func (in attnIn) reference(c attnCase) []float64 {
	w, G := (c.H+2*c.KV)*c.D, c.H/c.KV
	var want []float64
	for tt := range c.T {
		for h := range c.H {
			want = append(want, attnRef(in.qkv[tt*w+h*c.D:], in.kc, in.vc, h/G, c.cap, c.D, c.pos0+tt, c.window)...)
		}
	}
	return want
}

func TestAttentionPrefill2(t *testing.T) {
	d := testDevice(t)
	rng := rand.New(rand.NewPCG(21, 22))
	cases := []attnCase{
		{32, 8, 128, 17, 0, 4609, 4096},    // first chunk, ragged row tile
		{32, 8, 128, 64, 100, 4609, 4096},  // before the window
		{8, 2, 128, 100, 4000, 4609, 4096}, // the window's edge inside the chunk
		{8, 2, 128, 512, 4096, 4609, 4096}, // at the window, ring wraps inside the chunk
		{8, 2, 128, 512, 6435, 4609, 4096}, // the reference chunk: past the window, wrapped
		{32, 8, 128, 512, 700, 769, 256},   // 7B heads, small window, wrapped ring
		{8, 2, 64, 100, 300, 357, 256},     // head dim 64, wrapped
		{6, 2, 64, 40, 50, 128, 0},         // G = 3, no window, ragged
		{4, 4, 128, 100, 200, 400, 0},      // G = 1 (Llama), no window
		{8, 2, 128, 33, 1000, 1100, 300},   // window start inside a tile
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			d.bind(t)
			in := attnInputs(t, d, rng, c)
			qp, kp, vp, pp, keyRange := in.q, in.k, in.v, in.p, in.keyRange
			want := in.reference(c)
			rows := c.T * c.H
			old := planAttentionWith("", c.T, c.H, c.KV, c.D, d.sms, keyRange)
			ref := d.downHalf(t, runAttention(t, d, old, qp, kp, vp, pp, c.T, c.H, c.KV, c.D, c.cap, c.window), rows*c.D)
			for _, kn := range []string{"attn_prefill2", "attn_prefill2q"} {
				p := planAttentionWith(kn, c.T, c.H, c.KV, c.D, d.sms, keyRange)
				if p.kernel != fmt.Sprintf("%s_d%d", kn, c.D) {
					t.Fatalf("plan chose %s", p.kernel)
				}
				for _, splits := range []int{p.splits, 1, 7} {
					ps := p
					ps.splits = splits
					ps.shape.Grid[2] = uint32(splits)
					got := d.downHalf(t, runAttention(t, d, ps, qp, kp, vp, pp, c.T, c.H, c.KV, c.D, c.cap, c.window), rows*c.D)
					compare(t, fmt.Sprintf("%s (%d splits)", ps.kernel, splits), got, want, 2e-3, 2e-3)
					for i := range got {
						if math.Abs(float64(got[i]-ref[i])) > 2e-3 {
							t.Fatalf("%s (%d splits) and %s differ at %d: %v, %v", p.kernel, splits, old.kernel, i, got[i], ref[i])
						}
					}
				}
			}
		})
	}
}

// TestPrefillKernelsAgree: a 700-token prefill (past the small shape's
// window) gives logits within rounding, and the same next token unless the
// top two are as close, with every prefill attention kernel.
func TestPrefillKernelsAgree(t *testing.T) {
	m := synthModel(t, "small", 7)
	defer func(v string) { prefillKernel = v }(prefillKernel)
	e := testEngine(t, m, Options{NoGraphs: true})
	rng := rand.New(rand.NewPCG(30, 31))
	prompt := make([]int, 700)
	for i := range prompt {
		prompt[i] = rng.IntN(m.Config.Vocab)
	}
	run := func(k string) (int, []float32) {
		prefillKernel = k
		e.Reset()
		n, err := e.Prefill(context.Background(), prompt)
		if err != nil {
			t.Fatal(err)
		}
		l, err := e.LastLogits()
		if err != nil {
			t.Fatal(err)
		}
		return n, l
	}
	next0, logits0 := run("")
	gap := margin(logits0) // between the 64-row kernel's top two logits
	for _, k := range []string{"attn_prefill2", "attn_prefill2q"} {
		next, logits := run(k)
		worst := 0.0
		for j := range logits0 {
			diff := math.Abs(float64(logits0[j] - logits[j]))
			if math.IsNaN(diff) || diff > 2e-2+2e-2*math.Abs(float64(logits0[j])) {
				t.Fatalf("logit %d: %v with attn_prefill, %v with %s", j, logits0[j], logits[j], k)
			}
			worst = max(worst, diff)
		}
		if next != next0 && gap > 4e-2+4e-2*math.Abs(float64(logits0[next0])) {
			t.Fatalf("next token %d with attn_prefill, %d with %s (top two logits %.3g apart)", next0, next, k, gap)
		}
		t.Logf("%s: next token %d (attn_prefill: %d); max logit difference %.3g", k, next, next0, worst)
	}
}

// TestAttnWorkspaceCoversPrefillPlans: on GPUs of several sizes the split
// workspace holds every step size's plan with each prefill kernel chosen
// at New, and attnPlan caps a kernel chosen later to it.
func TestAttnWorkspaceCoversPrefillPlans(t *testing.T) {
	defer func(k string) { prefillKernel = k }(prefillKernel)
	cfg := inference.Config{Heads: 32, KVHeads: 8, HeadDim: 128, SlidingWindow: 4096}
	for _, sms := range []int{108, 114, 132} {
		for _, k := range []string{"", "attn_prefill2", "attn_prefill2q"} {
			prefillKernel = k
			e := &Engine{cfg: cfg, chunk: 512, cap: 4096 + 512 + 1, d: &device{sms: sms}}
			acc, ml := e.attnWorkspace()
			e.wsRows = acc / (4 * 128)
			if ml != e.wsRows*2*4 {
				t.Fatalf("%d SMs, %q: ws_ml %d bytes for %d rows", sms, k, ml, e.wsRows)
			}
			for _, k2 := range []string{"", "attn_prefill2", "attn_prefill2q"} {
				prefillKernel = k2
				for T := 1; T <= e.chunk; T++ {
					p := e.attnPlan(T)
					if need := int64(p.splits) * int64(T) * 32; need > e.wsRows || p.shape.Grid[2] != uint32(p.splits) {
						t.Fatalf("%d SMs, workspace for %q, %d tokens with %q: %d splits need %d rows of %d", sms, k, T, k2, p.splits, need, e.wsRows)
					}
					// The kernel sized for runs its own plan, uncapped.
					if want := planAttention(T, 32, 8, 128, sms, e.keyRange()).splits; k2 == k && p.splits != want {
						t.Fatalf("%d SMs, %q, %d tokens: %d splits, capped from %d", sms, k, T, p.splits, want)
					}
				}
			}
		}
	}
}

// TestVerifyEarlyPlan: with verifyEarly, verify steps of head dims 64 and
// 128 run attn_verify2 on the default's grid and splits, with its shared
// memory; other head dims and prefill chunks are unchanged.
func TestVerifyEarlyPlan(t *testing.T) {
	const H, KV, sms, keyRange = 32, 8, 132, 4096 + 15
	defer func(v bool, k string) { verifyEarly, verifyKernel = v, k }(verifyEarly, verifyKernel)
	verifyKernel = "" // attn_verify2 replaces the tensor-core default only (BRIEF_VERIFY_KERNEL picks another)
	for _, D := range []int{32, 64, 128} {
		for _, tokens := range []int{1, 4, 5, 11, 16, 17, 512} {
			verifyEarly = false
			base := planAttention(tokens, H, KV, D, sms, keyRange)
			verifyEarly = true
			p := planAttention(tokens, H, KV, D, sms, keyRange)
			if D == 32 || tokens > inference.MaxVerify {
				if p.kernel != base.kernel || p.shape != base.shape {
					t.Errorf("head dim %d, %d tokens: plan %+v, want the default %+v", D, tokens, p, base)
				}
				continue
			}
			want := base
			want.kernel = fmt.Sprintf("attn_verify2_d%d", D)
			want.shape.Shared = uint32(prefill2Smem(prefill2Shape{keys: verify2Keys}, D))
			if p != want {
				t.Errorf("head dim %d, %d tokens: plan %+v, want %+v", D, tokens, p, want)
			}
			if src, err := kernelSources.ReadFile("attn_prefill.cu"); err != nil || !strings.Contains(string(src), fmt.Sprintf("ATTN_VERIFY2(%s, %d)", p.kernel, D)) {
				t.Errorf("kernel %s is not instantiated in attn_prefill.cu (%v)", p.kernel, err)
			}
		}
	}
}

// TestVerifyEarlySchedule: attn_verify2's copies before grid_dep_wait
// (issue_part 1) are the zero fills and keys of earlier steps whose ring
// slots the step's own appends do not touch, and the copies after it
// (issue_part 2) are exactly the step's own keys; with key blocks of up to
// two tiles (the default 128 keys) every block takes the early path. The kernel's index math
// is written again in Go, for the engine's ring size (engine.go: the
// window plus a chunk plus one, or the whole context).
func TestVerifyEarlySchedule(t *testing.T) {
	const G, rows, keys, chunk = 4, 64, verify2Keys, 512
	for _, w := range []struct{ window, maxCtx int }{{4096, 32768}, {256, 4096}, {0, 8192}} {
		cap := w.maxCtx
		if w.window > 0 {
			cap = min(w.maxCtx, w.window+chunk+1)
		}
		keyRange := cap
		if w.window > 0 {
			keyRange = min(w.window+inference.MaxVerify-1, cap)
		}
		for _, tokens := range []int{1, 2, 5, 8, 11, 16} {
			p := planAttentionWith("", tokens, 32, 8, 128, 132, keyRange)
			for _, pos0 := range []int{0, 1, 63, 64, 100, 255, 256, 4095, 4096, 4097, 4609, 6435, 7000} {
				if pos0+tokens > w.maxCtx {
					continue
				}
				nrows := tokens * G
				for x := range (nrows + rows - 1) / rows {
					row0 := x * rows
					pFirst, pLast := pos0+row0/G, pos0+(min(row0+rows, nrows)-1)/G
					lo := 0
					if w.window > 0 {
						lo = max(0, pFirst-w.window+1)
					}
					for z := range p.splits {
						kBegin := (lo/p.blockKeys + z) * p.blockKeys
						kEnd := min(pLast+1, kBegin+p.blockKeys)
						ntiles := 0
						if kBegin < kEnd {
							ntiles = (kEnd - kBegin + keys - 1) / keys
						}
						if ntiles > 2 {
							if p.blockKeys <= 2*keys {
								t.Fatalf("window %d, %d tokens at %d: block %d split %d has %d tiles, the early path takes 2", w.window, tokens, pos0, x, z, ntiles)
							}
							continue // larger key blocks (BRIEF_VERIFY_KEY_BLOCK): the kernel copies everything after the wait
						}
						for kp := kBegin; kp < kBegin+ntiles*keys; kp++ {
							in := kp >= lo && kp < kEnd
							if !in || kp < pos0 { // issued before the wait
								if !in {
									continue
								}
								for j := range tokens {
									if (pos0+j)%cap == kp%cap {
										t.Fatalf("window %d, %d tokens at %d: key %d, copied before the wait, shares slot %d with the step's token %d", w.window, tokens, pos0, kp, kp%cap, pos0+j)
									}
								}
								continue
							}
							if kp >= pos0+tokens {
								t.Fatalf("window %d, %d tokens at %d: key %d copied after the wait is past the step's last", w.window, tokens, pos0, kp)
							}
						}
					}
				}
			}
		}
	}
}
