package cuda

import (
	"fmt"

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

// attnHeadDims are the head sizes attention.cu is instantiated for (8, 16,
// 32 on the CUDA cores, 64 and 128 on the tensor cores).
var attnHeadDims = map[int]bool{8: true, 16: true, 32: true, 64: true, 128: true}

// attnPlan is how attention runs for a step of tokens.
type attnPlan struct {
	rw, tiles, splits int
	blockKeys         int // absolute key blocks per split (0: even shares)
	kernel            string
	shape             launchShape
}

func (e *Engine) attnPlan(tokens int) attnPlan {
	sms := 108 // an A100's count, for sizing before the device is open
	if e.d != nil {
		sms = e.d.sms
	}
	c := &e.cfg
	return planAttention(tokens, c.Heads, c.KVHeads, c.HeadDim, sms, e.keyRange())
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
// arithmetic, so the choice changes speed, never a logit.
var verifyVariant = "_sync"

// planAttention picks the kernel instance and grid for a step of tokens.
// Head dims 64 and 128 (the 7B's) run on the tensor cores (attn_prefill*,
// 64 rows of token x query head per block) for every step size; other head
// dims on the CUDA cores (attn_d*_r*, 4 to 64 rows per block).
// Verify steps (tokens <= MaxVerify) split the keys into absolute blocks,
// which makes each token's result independent of the step's size (see
// attention.cu); enough blocks cover keyRange keys at any alignment. Prefill
// chunks share each tile's keys evenly among enough splits to fill the GPU.
func planAttention(tokens, heads, kvHeads, headDim, sms, keyRange int) attnPlan {
	rows := tokens * (heads / kvHeads)
	rw := 1
	for rw < 16 && attnWarps*rw < rows {
		rw *= 2
	}
	tiles := (rows + attnWarps*rw - 1) / (attnWarps * rw)
	p := attnPlan{rw: rw, tiles: tiles, kernel: fmt.Sprintf("attn_d%d_r%d", headDim, rw)}
	shared := attnSmem(headDim, rw)
	if headDim == 64 || headDim == 128 {
		// Tensor cores: 64 rows per block, static shared memory.
		p.tiles = (rows + 63) / 64
		variant := prefillVariant
		if tokens <= inference.MaxVerify {
			variant = verifyVariant
		}
		p.kernel, shared = fmt.Sprintf("attn_prefill%s_d%d", variant, headDim), 0
	}
	if tokens <= inference.MaxVerify {
		p.blockKeys = verifyBlockKeys
		for (keyRange+p.blockKeys-1)/p.blockKeys+1 > 128 {
			p.blockKeys *= 2
		}
		p.splits = (keyRange+p.blockKeys-1)/p.blockKeys + 1
	} else {
		// Two blocks per multiprocessor; splits past the visible keys exit at once.
		p.splits = min(max((2*sms+p.tiles*kvHeads-1)/(p.tiles*kvHeads), 1), 64)
	}
	p.shape = launchShape{
		Grid:   [3]uint32{uint32(p.tiles), uint32(kvHeads), uint32(p.splits)},
		Block:  [3]uint32{attnWarps * 32, 1, 1},
		Shared: uint32(shared),
	}
	return p
}

// attnWorkspace is the largest split workspace any step needs.
func (e *Engine) attnWorkspace() (acc, ml int64) {
	c := &e.cfg
	// Every step size: the largest splits x tokens need not fall on a
	// multiple of 64 (a last prefill chunk of 416 tokens on 108
	// multiprocessors needs more than 384 or 448 do).
	for t := 1; t <= e.chunk; t++ {
		p := e.attnPlan(t)
		rows := int64(p.splits) * int64(t) * int64(c.Heads)
		acc = max(acc, rows*int64(c.HeadDim)*4)
		ml = max(ml, rows*2*4)
	}
	return acc, ml
}
