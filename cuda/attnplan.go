package cuda

import (
	"fmt"
	"strings"

	"github.com/briefapp/brief/inference"
)

// attention launch constants; attention.cu's kAttnWarps and kKeyTile.
const (
	attnWarps   = 4
	attnKeyTile = 32
)

// attnSmem is attention.cu's attn_smem(D, RW).
func attnSmem(d, rw int) int {
	return attnWarps*rw*d*4 + attnWarps*rw*attnKeyTile*4 + 2*attnKeyTile*(d+2)*2
}

// verifySmem is attn_verify.cu's verify_smem(D, KW, solo): each of the 4
// warps' K and V tiles of kw keys (rows of d+8 halves), then, unless the
// block computes one m-tile with one key tile a warp (solo: the partials go
// to the K tiles), the O, m and l partials of warps 1..3.
func verifySmem(d, kw int, solo bool) int {
	n := attnWarps * 2 * kw * (d + 8) * 2
	if !solo {
		n += (attnWarps-1)*(d/8)*32*16 + (attnWarps-1)*32*16
	}
	return n
}

// verifyKernels are attn_verify.cu's kernel families for verify steps and
// the keys each warp takes (a split's key block is a multiple of 4 times
// that).
var verifyKernels = map[string]int{"attn_verify": 32, "attn_verify_k64": 64}

// attnHeadDims are the head sizes attention.cu is instantiated for (8, 16,
// 32 on the CUDA cores, 64 and 128 on the tensor cores).
var attnHeadDims = map[int]bool{8: true, 16: true, 32: true, 64: true, 128: true}

// attnPlan is how attention runs for a step of tokens.
type attnPlan struct {
	rw, tiles, splits int
	blockKeys         int // absolute key blocks per split (0: even shares)
	kernel            string
	shape             launchShape
	// prefill2 is the attn_prefill2* family of a prefill chunk's kernel
	// ("" for other kernels).
	prefill2 string
	// direct: kernel is an attn_prefill2*_direct_d* instance (directPlan),
	// which writes the attention output itself; no attn_reduce follows and
	// its arguments end with the output in place of the split workspace.
	direct bool
}

func (e *Engine) attnPlan(tokens int) attnPlan {
	c := &e.cfg
	p := planAttentionWith(e.prefillFamily(), tokens, c.Heads, c.KVHeads, c.HeadDim, e.sms(), e.keyRange())
	// The workspace is sized for the prefill kernel chosen when the engine
	// opened; another one chosen since (benchmarks) gets the splits it
	// holds. Any count of even shares computes the same attention (verify
	// steps' absolute key blocks are always sized for).
	rows := int64(tokens) * int64(c.Heads)
	if tokens > inference.MaxVerify && e.wsRows > 0 && int64(p.splits)*rows > e.wsRows {
		p.splits = int(max(1, e.wsRows/rows))
		p.shape.Grid[2] = uint32(p.splits)
	}
	if e.prefillDirect {
		p = directPlan(p, tokens)
	}
	return p
}

// prefillDirect lets prefill chunks planned with one key split run the
// direct instance of their attn_prefill2* kernel (attn_prefill_direct.cu),
// which writes the attention output as attn_reduce would from the
// partials, with the same operations on the same values: no attn_reduce
// launch, no partials through memory, the same bits
// (NOTES-attn-prefill.md). An engine takes it when it opens. The
// 6,435-token prefill 409.0 -> 406.4 and 410.5 -> 403.5 ms (H200,
// BenchmarkPrefillDirect, session 5): the direct kernel is 0.3 ms slower
// than attn_prefill2 a chunk (236 registers on sm_90), attn_reduce's 0.76
// ms is gone. BRIEF_PREFILL_DIRECT=0 turns it off in test runs.
var prefillDirect = true

// directPlan is p running the direct instance of its attn_prefill2*
// kernel where that computes the same: a prefill chunk (more than
// MaxVerify tokens) on an attn_prefill2* kernel with one key split, whose
// partials attn_reduce would only normalize. Every other plan (verify
// steps, several splits, other kernels) comes back unchanged.
func directPlan(p attnPlan, tokens int) attnPlan {
	if tokens <= inference.MaxVerify || p.prefill2 == "" || p.splits != 1 || p.shape.Grid[2] != 1 || p.blockKeys != 0 {
		return p
	}
	p.direct = true
	p.kernel = p.prefill2 + "_direct" + strings.TrimPrefix(p.kernel, p.prefill2)
	return p
}

// sms is the device's multiprocessor count (an A100's 108 before the device
// is open, for sizing).
func (e *Engine) sms() int {
	if e.d != nil {
		return e.d.sms
	}
	return 108
}

// keyRange is the most keys one verify step's row tile can see.
func (e *Engine) keyRange() int {
	if w := e.cfg.SlidingWindow; w > 0 {
		return min(w+inference.MaxVerify-1, e.cap)
	}
	return e.cap
}

// prefillVariant selects attn_prefill_d* ("", next tile prefetched) or
// attn_prefill_sync_d* ("_sync", 5% faster on an H100: 10.1 against 10.6 ms
// per 512-token chunk at position 6435, BenchmarkOpenHermes); benchmarks
// compare the two.
var prefillVariant = "_sync"

// verifyBlockKeys is the keys of one attention split in verify steps, a
// multiple of 64 (plans double it while more than 128 splits would be
// needed). Smaller blocks put more blocks and loads in flight; larger ones
// leave attn_reduce fewer splits to combine. Benchmarks compare sizes.
var verifyBlockKeys = 128

// verifyVariant is prefillVariant for verify steps (1..MaxVerify tokens),
// where each block walks only a few key tiles. Both variants do the same
// arithmetic, so the choice changes speed, never a logit. Since warps of
// padding rows skip the arithmetic, the prefetching one is faster at every
// step size (H200, BenchmarkVerifyVariants: 2.298 against 2.343 ms for 1
// token, 2.891 against 2.949 for 11); before, it lost at 1 token.
var verifyVariant = ""

// verifyKernel is "" to run attn_prefill%s_d* (verifyVariant) for verify
// steps, or a verifyKernels name to run attn_verify.cu's kernel, which
// computes only the m-tiles holding real rows and keeps a whole key block in
// flight. It passes every test on an H200 (BRIEF_VERIFY_KERNEL in TestMain)
// but stays off: a 1-token step gains (2.296 against 2.486 ms,
// BenchmarkVerifyKernels) and an 11-token step loses (3.143 against 2.976
// ms), and every verify size must run the same kernel.
var verifyKernel = ""

// verifyEarly runs verify steps (1..MaxVerify tokens, head dims 64 and
// 128) through attn_prefill.cu's attn_verify2_d*: attn_prefill2's body with
// 64-row blocks, both 64-key tiles of a 128-key block requested at once by
// cp.async, and the keys of earlier steps requested before the kernel
// waits for its predecessor. Each row's arithmetic is attn_prefill_body's
// (same mma operands in the same order, same softmax), so its logits are
// the default's bit for bit (TestAttentionVariantsAgree). A replayed step
// at the reference context: 2.135 against 2.344 ms for 1 token, 2.699
// against 2.939 for 11 (H200, BenchmarkVerifyVariants, session 5).
// BRIEF_VERIFY_EARLY=0 turns it off in test runs.
var verifyEarly = true

// verify2Keys is attn_verify2's key tile; a block's keys beyond two tiles
// are copied after the wait, tile by tile.
const verify2Keys = 64

// prefillKernel selects the prefill chunks' (tokens > MaxVerify) attention
// for head dims 64 and 128: "" for attn_prefill{prefillVariant}_d* (64 rows
// per block), or a kernel of attn_prefill.cu (prefill2Kernels: 128 rows per
// block, cp.async double-buffered key tiles, ldmatrix). All compute the same
// function into the same partials; benchmarks compare them. attn_prefill2:
// 5.5 against 10.2 ms for a 512-token chunk at position 6435, prefill of the
// 6,435-token prompt 413 against 450 ms (H200, BenchmarkOpenHermes).
var prefillKernel = "attn_prefill2"

// prefill2Rows is attn_prefill.cu's kP2Rows, the rows of every block.
const prefill2Rows = 128

// prefill2Shape is the launch shape of one attn_prefill.cu kernel family.
type prefill2Shape struct {
	threads  int  // 32 x warps
	keys     int  // key tile (splits are whole tiles)
	resident int  // blocks a multiprocessor runs at once (registers decide)
	qShared  bool // Q rows staged in shared memory
	wg       bool // wgmma (attn_prefill_wg.sm90a.cu: sm_90 PTX, tiles unpadded)
}

// prefill2Kernels are attn_prefill.cu's instances (ATTN_PREFILL2): 8 warps
// x 16 rows with 64-key tiles (199 registers at head dim 128), and 4 warps x
// 32 rows with Q in shared memory and 32-key tiles (255 registers, no
// spills).
//
// attn_prefill_wg is attn_prefill2 on wgmma (sm_90 only, the same grid and
// bits); engines take it in attn_prefill2's place (prefillFamily).
var prefill2Kernels = map[string]prefill2Shape{
	"attn_prefill2":   {threads: 256, keys: 64, resident: 1},
	"attn_prefill2q":  {threads: 128, keys: 32, resident: 2, qShared: true},
	"attn_prefill_wg": {threads: 256, keys: 64, resident: 1, wg: true},
}

// attnWgmma: on an sm_90 GPU whose driver compiled attn_prefill_wg, an
// engine with head dim 128 runs prefill chunks' attention through it where
// prefillKernel is attn_prefill2: the same grid and bits
// (TestAttnPrefillWgSameBits), S and O on wgmma; a 512-token chunk of the
// 7B at the reference context 5.7 -> 3.8 ms, the 6,435-token prefill 311
// -> 298 ms (H100, run 98). BRIEF_ATTN_WG=0 turns it off for a test run
// (main_test.go).
var attnWgmma = true

// attnWgKeys is attn_prefill_wg's key tile (attn_prefill2.cuh: KEYS).
const attnWgKeys = 64

// prefillFamily is the prefill chunks' attention family of this engine:
// prefillKernel, with attn_prefill2 on wgmma where the engine took it.
func (e *Engine) prefillFamily() string {
	if e.attnWg && prefillKernel == "attn_prefill2" {
		return "attn_prefill_wg"
	}
	return prefillKernel
}

// prefill2SplitsOverride, when positive, replaces prefill2Splits' choice
// (benchmarks sweep it; the workspace must hold the result).
var prefill2SplitsOverride = 0

// prefill2Splits picks the key splits of a prefill2 launch of blocks row
// tiles x KV heads on slots resident blocks, each row tile seeing up to
// tiles key tiles: the fewest splits (1..64) that minimize waves x (tiles
// per split + 2), the 2 standing for a block's fixed cost (Q, partials
// written and reduced): one full wave of whole-range blocks beats two waves
// of halves (the 512-token chunk of the 7B on 132 multiprocessors: 1 split
// for attn_prefill2, 2 for attn_prefill2q).
func prefill2Splits(blocks, slots, tiles int) int {
	best, bestCost := 1, 0.0
	for s := 1; s <= 64; s++ {
		waves := (blocks*s + slots - 1) / slots
		cost := float64(waves) * (float64(tiles)/float64(s) + 2)
		if s == 1 || cost < bestCost {
			best, bestCost = s, cost
		}
	}
	return best
}

// prefill2Smem is attn_prefill.cu's prefill2_smem(D, MW, KEYS): two stages
// of a K and a V tile, and the block's Q rows where staged.
func prefill2Smem(k prefill2Shape, d int) int {
	if k.wg {
		// prefill_wg_smem: five stages of unpadded tiles aligned to 1024 bytes.
		return 5*2*k.keys*d*2 + 1024
	}
	rows := 2 * 2 * k.keys
	if k.qShared {
		rows += prefill2Rows
	}
	return rows * (d + 8) * 2
}

// planAttention picks the kernel instance and grid for a step of tokens.
// Head dims 64 and 128 (the 7B's) run on the tensor cores (attn_prefill*,
// 64 rows of token x query head per block, or attn_prefill2* with 128 rows
// for prefill chunks when prefillKernel says so) for every step size; other
// head dims on the CUDA cores (attn_d*_r*, 4 to 64 rows per block).
// Verify steps (tokens <= MaxVerify) split the keys into absolute blocks,
// which makes each token's result independent of the step's size (see
// attention.cu); enough blocks cover keyRange keys at any alignment. Prefill
// chunks share each tile's keys evenly among enough splits to fill the GPU.
func planAttention(tokens, heads, kvHeads, headDim, sms, keyRange int) attnPlan {
	return planAttentionWith(prefillKernel, tokens, heads, kvHeads, headDim, sms, keyRange)
}

// planAttentionWith is planAttention with the prefill kernel given.
func planAttentionWith(prefill string, tokens, heads, kvHeads, headDim, sms, keyRange int) attnPlan {
	rows := tokens * (heads / kvHeads)
	rw := 1
	for rw < 16 && attnWarps*rw < rows {
		rw *= 2
	}
	tiles := (rows + attnWarps*rw - 1) / (attnWarps * rw)
	p := attnPlan{rw: rw, tiles: tiles, kernel: fmt.Sprintf("attn_d%d_r%d", headDim, rw)}
	shared := attnSmem(headDim, rw)
	threads := attnWarps * 32
	if headDim == 64 || headDim == 128 {
		// Tensor cores: 64 rows per block, static shared memory.
		p.tiles = (rows + 63) / 64
		variant := prefillVariant
		if tokens <= inference.MaxVerify {
			variant = verifyVariant
		}
		p.kernel, shared = fmt.Sprintf("attn_prefill%s_d%d", variant, headDim), 0
		if k, ok := prefill2Kernels[prefill]; ok && tokens > inference.MaxVerify {
			p.tiles = (rows + prefill2Rows - 1) / prefill2Rows
			p.kernel, shared = fmt.Sprintf("%s_d%d", prefill, headDim), prefill2Smem(k, headDim)
			p.prefill2 = prefill
			p.splits = prefill2Splits(p.tiles*kvHeads, k.resident*sms, (keyRange+prefill2Rows+k.keys-1)/k.keys)
			if prefill2SplitsOverride > 0 {
				p.splits = prefill2SplitsOverride
			}
			threads = k.threads
		}
	}
	if verifyEarly && verifyKernel == "" && tokens <= inference.MaxVerify && (headDim == 64 || headDim == 128) {
		p.kernel = fmt.Sprintf("attn_verify2_d%d", headDim)
		shared = prefill2Smem(prefill2Shape{keys: verify2Keys}, headDim)
	}
	unit := 64 // key blocks are whole key tiles of the kernel
	kw := verifyKernels[verifyKernel]
	if kw > 0 && tokens <= inference.MaxVerify && (headDim == 64 || headDim == 128) {
		// Same grid as attn_prefill*: 64 rows per block, dynamic shared memory.
		p.kernel = fmt.Sprintf("%s_d%d", verifyKernel, headDim)
		unit = attnWarps * kw
	} else {
		kw = 0
	}
	if tokens <= inference.MaxVerify {
		p.blockKeys = (max(verifyBlockKeys, unit) + unit - 1) / unit * unit
		for (keyRange+p.blockKeys-1)/p.blockKeys+1 > 128 {
			p.blockKeys *= 2
		}
		p.splits = (keyRange+p.blockKeys-1)/p.blockKeys + 1
		if kw > 0 {
			shared = verifySmem(headDim, kw, rows <= 16 && p.blockKeys == unit)
		}
	} else if p.splits == 0 {
		// Two blocks per multiprocessor; splits past the visible keys exit at once.
		p.splits = min(max((2*sms+p.tiles*kvHeads-1)/(p.tiles*kvHeads), 1), 64)
	}
	p.shape = launchShape{
		Grid:   [3]uint32{uint32(p.tiles), uint32(kvHeads), uint32(p.splits)},
		Block:  [3]uint32{uint32(threads), 1, 1},
		Shared: uint32(shared),
	}
	return p
}

// attnWorkspace is the largest split workspace any step needs with the
// current prefillKernel (attnPlan caps the splits of another one chosen
// later to what it holds).
func (e *Engine) attnWorkspace() (acc, ml int64) {
	// Every step size: the largest splits x tokens need not fall on a
	// multiple of the row tile (a last prefill chunk of 416 tokens on 108
	// multiprocessors needs more than 384 or 448 do).
	for t := 1; t <= e.chunk; t++ {
		a, m := e.attnWorkspaceFor(t)
		acc, ml = max(acc, a), max(ml, m)
	}
	return acc, ml
}

// attnWorkspaceFor is the split workspace a step of t tokens plans.
func (e *Engine) attnWorkspaceFor(t int) (acc, ml int64) {
	c := &e.cfg
	p := planAttentionWith(e.prefillFamily(), t, c.Heads, c.KVHeads, c.HeadDim, e.sms(), e.keyRange())
	rows := int64(p.splits) * int64(t) * int64(c.Heads)
	return rows * int64(c.HeadDim) * 4, rows * 2 * 4
}
