// Package cuda is Brief's GPU engine: kernels compiled ahead into embedded
// fatbins (make -C cuda), the NVIDIA driver opened at run time with dlopen
// (nothing CUDA is needed to build), and an inference.Engine that runs a
// 4-bit AWQ Llama/Mistral model with decode and verify steps replayed as
// CUDA graphs.
package cuda

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/briefapp/brief/inference"
)

// Options tune the engine; the zero value is the fast path.
type Options struct {
	Device     int  // GPU ordinal
	Chunk      int  // prefill chunk in tokens (default 512): bounds activation memory
	MaxContext int  // longest sequence accepted (0: the model's max positions)
	NoGraphs   bool // run verify steps kernel by kernel instead of replaying graphs
	SyncEach   bool // wait after every kernel so a failure names it (slow; for debugging)
}

const defaultChunk = 512

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

// Engine runs one sequence on one GPU. All device work happens on the
// worker's locked thread; the methods may be called from any one goroutine.
type Engine struct {
	w    *worker
	d    *device
	cfg  inference.Config
	opts Options

	chunk  int // prefill chunk tokens
	cap    int // KV slots per layer and KV head (a ring when the model has a window)
	maxCtx int // longest sequence
	n      int // positions held
	// rollbackMax is how far the cache may move back: under a window, the
	// ring keeps only cap-window positions beyond those the next query needs.
	rollbackMax int

	layers    []layerBufs
	embed     devPtr // (vocab, hidden) fp16
	lmHead    devPtr // (vocab, hidden) fp16
	finalNorm devPtr // (hidden) fp16

	params  devPtr // int32: [0] position of the step's first token, [4+t] token ids
	h       devPtr // (chunk, hidden) fp32 residual stream
	xn      devPtr // (chunk, hidden) fp16 normalized input of the next linear
	qkv     devPtr // (chunk, (heads+2*kv_heads)*head_dim) fp16
	attnOut devPtr // (chunk, heads*head_dim) fp16
	proj    devPtr // (chunk, hidden) fp16 output of o_proj / down_proj
	gu      devPtr // (chunk, 2*intermediate) fp16
	act     devPtr // (chunk, intermediate) fp16
	logits  devPtr // (MaxVerify, vocab) fp32
	next    devPtr // (MaxVerify) int32 greedy ids
	wsAcc   devPtr // attention split partials, (splits, rows, head_dim) fp32
	wsML    devPtr // (splits, rows, 2) fp32
	wsRows  int64  // splits x rows the workspace holds
	awqWS   devPtr // AWQ kernels' scratch (0 when none needs it)

	graphs   [inference.MaxVerify + 1]*graph
	lastRows int // logits rows the last step wrote (LastLogits reads the last)
	hostIDs  []byte
}

// layerBufs are one decoder block's weights and cache on the device.
type layerBufs struct {
	attnNorm, mlpNorm devPtr // (hidden) fp16
	qkv, o, gu, down  awqDev
	k, v              devPtr // (kv_heads, cap, head_dim) fp16
}

// awqDev is a packed AWQ linear on the device.
type awqDev struct {
	p   awqPacked // Bytes dropped after upload
	ptr devPtr
}

// New opens the engine on GPU opts.Device for an open model folder.
func New(m *inference.Model, opts Options) (*Engine, error) {
	if m == nil || m.Weights == nil {
		return nil, fmt.Errorf("cuda engine: no model")
	}
	e, err := NewFromWeights(&m.Config, m.Weights, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Dir, err)
	}
	return e, nil
}

// NewFromWeights uploads a model's weights to the GPU and allocates
// everything the engine will use, so nothing is allocated while it runs.
func NewFromWeights(cfg *inference.Config, w *inference.Weights, opts Options) (*Engine, error) {
	if err := checkConfig(cfg, w); err != nil {
		return nil, err
	}
	e := &Engine{cfg: *cfg, opts: opts, w: newWorker()}
	err := e.w.do(func() error {
		d, err := openDevice(opts.Device)
		if err != nil {
			return err
		}
		e.d = d
		d.syncEach = opts.SyncEach
		return e.setup(w)
	})
	if err != nil {
		e.w.do(func() error {
			if e.d != nil {
				e.d.close()
			}
			return nil
		})
		e.w.stop()
		return nil, err
	}
	return e, nil
}

// checkConfig refuses shapes the kernels do not handle, before touching the GPU.
func checkConfig(c *inference.Config, w *inference.Weights) error {
	switch {
	case c.Heads <= 0 || c.KVHeads <= 0 || c.Heads%c.KVHeads != 0:
		return fmt.Errorf("cuda engine: %d query heads do not group over %d KV heads", c.Heads, c.KVHeads)
	case !attnHeadDims[c.HeadDim]:
		return fmt.Errorf("cuda engine: head_dim %d is not supported (8, 16, 32, 64 or 128)", c.HeadDim)
	case c.Hidden%8 != 0 || c.Hidden > 16384:
		return fmt.Errorf("cuda engine: hidden size %d is not a multiple of 8 up to 16384", c.Hidden)
	case w == nil || len(w.Layers) != c.Layers:
		return fmt.Errorf("cuda engine: weights hold %d layers, the config says %d", lenLayers(w), c.Layers)
	case c.Vocab <= 0 || len(w.Embed.Data) != c.Vocab*c.Hidden || len(w.LMHead.Data) != c.Vocab*c.Hidden:
		return fmt.Errorf("cuda engine: embedding or lm_head is not (%d, %d)", c.Vocab, c.Hidden)
	case len(w.Norm.Data) != c.Hidden:
		return fmt.Errorf("cuda engine: final norm is not (%d)", c.Hidden)
	}
	return nil
}

func lenLayers(w *inference.Weights) int {
	if w == nil {
		return 0
	}
	return len(w.Layers)
}

func u16bytes(s []uint16) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 2*len(s))
}

// awqBytes estimates a linear's packed size for the up-front memory check.
func awqBytes(in, out, group int) int64 {
	g := int64((in + group - 1) / group)
	return int64(in)*int64(out)/2 + g*int64(out)*4 + 4096
}

// setup sizes the cache, checks free memory, uploads the weights and
// allocates the activations. Runs on the worker.
func (e *Engine) setup(w *inference.Weights) error {
	c := &e.cfg
	d := e.d
	e.chunk = e.opts.Chunk
	if e.chunk <= 0 {
		e.chunk = defaultChunk
	}
	// At least a verify step; at most what one parameter upload carries.
	e.chunk = min(max(e.chunk, inference.MaxVerify), 4096)
	e.maxCtx = c.MaxPositions
	if e.opts.MaxContext > 0 && (e.maxCtx <= 0 || e.opts.MaxContext < e.maxCtx) {
		e.maxCtx = e.opts.MaxContext
	}
	if e.maxCtx <= 0 {
		return fmt.Errorf("cuda engine: the config gives no max_position_embeddings; set a maximum context")
	}
	// A ring under a window: a chunk's queries read every key they see from
	// the cache, so it must hold the window plus a whole chunk.
	e.cap = e.maxCtx
	if c.SlidingWindow > 0 {
		e.cap = min(e.maxCtx, c.SlidingWindow+e.chunk+1)
		e.rollbackMax = e.cap - c.SlidingWindow
	}
	e.chunk = min(e.chunk, e.cap)
	if e.rollbackMax == 0 || e.cap == e.maxCtx {
		e.rollbackMax = e.maxCtx
	}

	hid, H, KV, D, I := c.Hidden, c.Heads, c.KVHeads, c.HeadDim, c.Intermediate
	qkvW := (H + 2*KV) * D
	// Everything the engine will allocate, checked against free memory first.
	var need int64
	for range c.Layers {
		need += awqBytes(hid, qkvW, c.Quant.GroupSize) + awqBytes(H*D, hid, c.Quant.GroupSize) +
			awqBytes(hid, 2*I, c.Quant.GroupSize) + awqBytes(I, hid, c.Quant.GroupSize) + 4*int64(hid)
		need += 2 * 2 * int64(KV) * int64(e.cap) * int64(D)
	}
	need += 2 * 2 * int64(c.Vocab) * int64(hid)
	ch := int64(e.chunk)
	acts := ch*int64(hid)*(4+2+2) + ch*int64(qkvW)*2 + ch*int64(H*D)*2 + ch*int64(3*I)*2 +
		int64(inference.MaxVerify)*int64(c.Vocab)*4
	wsAcc, wsML := e.attnWorkspace()
	need += acts + wsAcc + wsML
	free, _, err := d.freeMemory()
	if err != nil {
		return err
	}
	if need > free {
		return fmt.Errorf("not enough GPU memory: the model needs about %s (weights, %d-position KV cache, activations), %s is free on %s",
			mib(need), e.cap, mib(free), d.name)
	}

	var alloc = func(bytes int64, what string) devPtr {
		if err != nil {
			return 0
		}
		var p devPtr
		p, err = d.alloc(bytes, what)
		return p
	}
	var upload = func(b []byte, what string) devPtr {
		p := alloc(int64(len(b)), what)
		if err == nil {
			err = d.upload(p, b)
		}
		return p
	}
	e.embed = upload(u16bytes(w.Embed.Data), "embed_tokens")
	e.lmHead = e.embed
	if &w.LMHead.Data[0] != &w.Embed.Data[0] {
		e.lmHead = upload(u16bytes(w.LMHead.Data), "lm_head")
	}
	e.finalNorm = upload(u16bytes(w.Norm.Data), "norm")
	if err != nil {
		return err
	}
	e.layers = make([]layerBufs, c.Layers)
	for i := range w.Layers {
		if err := e.uploadLayer(i, &w.Layers[i]); err != nil {
			return err
		}
	}

	e.params = alloc(int64(4*(4+e.chunk)), "step parameters")
	e.h = alloc(ch*int64(hid)*4, "residual stream")
	e.xn = alloc(ch*int64(hid)*2, "normalized activations")
	e.qkv = alloc(ch*int64(qkvW)*2, "q|k|v")
	e.attnOut = alloc(ch*int64(H*D)*2, "attention output")
	e.proj = alloc(ch*int64(hid)*2, "projection output")
	e.gu = alloc(ch*int64(2*I)*2, "gate|up")
	e.act = alloc(ch*int64(I)*2, "mlp activations")
	e.logits = alloc(int64(inference.MaxVerify)*int64(c.Vocab)*4, "logits")
	e.next = alloc(4*inference.MaxVerify, "greedy ids")
	e.wsAcc = alloc(wsAcc, "attention workspace")
	e.wsRows = wsAcc / (4 * int64(D))
	e.wsML = alloc(wsML, "attention workspace")
	if err != nil {
		return err
	}
	ws := 0
	for _, l := range e.layers[:1] {
		for _, p := range []*awqPacked{&l.qkv.p, &l.o.p, &l.gu.p, &l.down.p} {
			for t := 1; t <= e.chunk; t++ {
				ws = max(ws, awqPlan(p, t, d.cc).Workspace)
			}
		}
	}
	if ws > 0 {
		e.awqWS = alloc(int64(ws), "AWQ workspace")
	}
	e.hostIDs = make([]byte, 4*(4+e.chunk))
	return err
}

func (e *Engine) uploadLayer(i int, l *inference.Layer) error {
	c := &e.cfg
	d := e.d
	lb := &e.layers[i]
	var err error
	up := func(dst *awqDev, what string, ls ...inference.AWQLinear) {
		if err != nil {
			return
		}
		var p awqPacked
		if p, err = packAWQ(ls...); err != nil {
			err = fmt.Errorf("layer %d %s: %w", i, what, err)
			return
		}
		if dst.ptr, err = d.alloc(int64(len(p.Bytes)), fmt.Sprintf("layer %d %s", i, what)); err != nil {
			return
		}
		if err = d.upload(dst.ptr, p.Bytes); err != nil {
			return
		}
		p.Bytes = nil
		dst.p = p
	}
	up(&lb.qkv, "q|k|v", l.Q, l.K, l.V)
	up(&lb.o, "o_proj", l.O)
	up(&lb.gu, "gate|up", l.Gate, l.Up)
	up(&lb.down, "down_proj", l.Down)
	if err != nil {
		return err
	}
	dense := func(v inference.Dense, what string) devPtr {
		if err != nil {
			return 0
		}
		if len(v.Data) != c.Hidden {
			err = fmt.Errorf("layer %d %s: %d values, want %d", i, what, len(v.Data), c.Hidden)
			return 0
		}
		var p devPtr
		if p, err = d.alloc(int64(2*len(v.Data)), fmt.Sprintf("layer %d %s", i, what)); err == nil {
			err = d.upload(p, u16bytes(v.Data))
		}
		return p
	}
	lb.attnNorm = dense(l.AttnNorm, "input_layernorm")
	lb.mlpNorm = dense(l.MLPNorm, "post_attention_layernorm")
	if err != nil {
		return err
	}
	kvBytes := 2 * int64(c.KVHeads) * int64(e.cap) * int64(c.HeadDim)
	if lb.k, err = d.alloc(kvBytes, fmt.Sprintf("layer %d K cache", i)); err != nil {
		return err
	}
	lb.v, err = d.alloc(kvBytes, fmt.Sprintf("layer %d V cache", i))
	return err
}

// attnPlan is how attention runs for a step of tokens.
type attnPlan struct {
	rw, tiles, splits int
	blockKeys         int // absolute key blocks per split (0: even shares)
	kernel            string
	shape             launchShape
}

func (e *Engine) attnPlan(tokens int) attnPlan {
	c := &e.cfg
	p := planAttention(tokens, c.Heads, c.KVHeads, c.HeadDim, e.sms(), e.keyRange())
	// The workspace is sized for the prefill kernel chosen when the engine
	// opened; another one chosen since (benchmarks) gets the splits it
	// holds. Any count of even shares computes the same attention (verify
	// steps' absolute key blocks are always sized for).
	rows := int64(tokens) * int64(c.Heads)
	if tokens > inference.MaxVerify && e.wsRows > 0 && int64(p.splits)*rows > e.wsRows {
		p.splits = int(max(1, e.wsRows/rows))
		p.shape.Grid[2] = uint32(p.splits)
	}
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
// arithmetic, so the choice changes speed, never a logit.
var verifyVariant = "_sync"

// verifyKernel is "" to run attn_prefill%s_d* (verifyVariant) for verify
// steps, or a verifyKernels name to run attn_verify.cu's kernel, which
// computes only the m-tiles holding real rows and keeps a whole key block in
// flight. "" stays the default until a GPU run has passed every test with
// the new kernel (BRIEF_VERIFY_KERNEL in TestMain) and a benchmark
// (BenchmarkVerifyKernels) shows it faster.
var verifyKernel = ""

// prefillKernel selects the prefill chunks' (tokens > MaxVerify) attention
// for head dims 64 and 128: "" for attn_prefill{prefillVariant}_d* (64 rows
// per block), or a kernel of attn_prefill.cu (prefill2Kernels: 128 rows per
// block, cp.async double-buffered key tiles, ldmatrix). All compute the same
// function into the same partials; benchmarks compare them.
var prefillKernel = ""

// prefill2Rows is attn_prefill.cu's kP2Rows, the rows of every block.
const prefill2Rows = 128

// prefill2Shape is the launch shape of one attn_prefill.cu kernel family.
type prefill2Shape struct {
	threads  int  // 32 x warps
	keys     int  // key tile (splits are whole tiles)
	resident int  // blocks a multiprocessor runs at once (registers decide)
	qShared  bool // Q rows staged in shared memory
}

// prefill2Kernels are attn_prefill.cu's instances (ATTN_PREFILL2): 8 warps
// x 16 rows with 64-key tiles (199 registers at head dim 128), and 4 warps x
// 32 rows with Q in shared memory and 32-key tiles (255 registers, no
// spills).
var prefill2Kernels = map[string]prefill2Shape{
	"attn_prefill2":  {threads: 256, keys: 64, resident: 1},
	"attn_prefill2q": {threads: 128, keys: 32, resident: 2, qShared: true},
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
			p.splits = prefill2Splits(p.tiles*kvHeads, k.resident*sms, (keyRange+prefill2Rows+k.keys-1)/k.keys)
			if prefill2SplitsOverride > 0 {
				p.splits = prefill2SplitsOverride
			}
			threads = k.threads
		}
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
	c := &e.cfg
	// Every step size: the largest splits x tokens need not fall on a
	// multiple of the row tile (a last prefill chunk of 416 tokens on 108
	// multiprocessors needs more than 384 or 448 do).
	for t := 1; t <= e.chunk; t++ {
		p := planAttention(t, c.Heads, c.KVHeads, c.HeadDim, e.sms(), e.keyRange())
		rows := int64(p.splits) * int64(t) * int64(c.Heads)
		acc = max(acc, rows*int64(c.HeadDim)*4)
		ml = max(ml, rows*2*4)
	}
	return acc, ml
}

// Name is "CUDA: <GPU name>".
func (e *Engine) Name() string { return "CUDA: " + e.d.name }

// DeviceName is the GPU's name as the driver reports it.
func (e *Engine) DeviceName() string { return e.d.name }

// ComputeCapability is e.g. 90 for an H100.
func (e *Engine) ComputeCapability() int { return e.d.cc }

// MaxContext is the longest sequence the engine accepts.
func (e *Engine) MaxContext() int { return e.maxCtx }

// Len is the number of positions in the cache.
func (e *Engine) Len() int { return e.n }

// Reset empties the cache.
func (e *Engine) Reset() { e.n, e.lastRows = 0, 0 }

// Rollback truncates the cache to its first n positions. Under a sliding
// window the ring keeps cap-window positions of slack, so at most that many
// can be undone (always more than one verify step).
func (e *Engine) Rollback(n int) error {
	if n < 0 || n > e.n {
		return fmt.Errorf("rollback to %d: the cache holds %d positions", n, e.n)
	}
	if e.n-n > e.rollbackMax {
		return fmt.Errorf("rollback by %d positions: the KV ring keeps at most %d", e.n-n, e.rollbackMax)
	}
	e.n = n
	e.lastRows = 0
	return nil
}

// Memory reports the device memory the engine allocated.
func (e *Engine) Memory() inference.Memory {
	var m inference.Memory
	if e.w == nil {
		return m
	}
	e.w.do(func() error {
		m = inference.Memory{Current: e.d.mem.cur, Peak: e.d.mem.peak}
		return nil
	})
	return m
}

// Close frees all device memory and the context.
func (e *Engine) Close() error {
	if e.w == nil {
		return nil
	}
	e.w.do(func() error {
		for i, g := range e.graphs {
			if g != nil {
				g.destroy()
				e.graphs[i] = nil
			}
		}
		e.d.close()
		return nil
	})
	e.w.stop()
	e.w = nil
	return nil
}

func (e *Engine) checkTokens(tokens []int) error {
	if len(tokens) == 0 {
		return fmt.Errorf("no tokens")
	}
	if e.n+len(tokens) > e.maxCtx {
		return fmt.Errorf("%d tokens after %d would pass the maximum context of %d", len(tokens), e.n, e.maxCtx)
	}
	for i, t := range tokens {
		if t < 0 || t >= e.cfg.Vocab {
			return fmt.Errorf("token %d at %d is outside the vocabulary (%d)", t, i, e.cfg.Vocab)
		}
	}
	return nil
}

// stageParams queues the step's position and ids for the kernels to read.
func (e *Engine) stageParams(tokens []int) error {
	b := e.hostIDs[:4*(4+len(tokens))]
	clear(b[:16])
	binary.LittleEndian.PutUint32(b, uint32(e.n))
	for i, t := range tokens {
		binary.LittleEndian.PutUint32(b[4*(4+i):], uint32(t))
	}
	return e.d.uploadAsync(e.params, b)
}

// Prefill runs the prompt in chunks and returns the greedy token after it.
func (e *Engine) Prefill(ctx context.Context, tokens []int) (int, error) {
	if err := e.checkTokens(tokens); err != nil {
		return 0, fmt.Errorf("prefill: %w", err)
	}
	next := 0
	for start := 0; start < len(tokens); start += e.chunk {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		part := tokens[start:min(start+e.chunk, len(tokens))]
		last := start+len(part) == len(tokens)
		mode := logitsNone
		if last {
			mode = logitsLast
		}
		err := e.w.do(func() error {
			if err := e.stageParams(part); err != nil {
				return err
			}
			if err := e.forward(len(part), mode); err != nil {
				return fmt.Errorf("prefill of %d tokens at position %d: %w", len(part), e.n, err)
			}
			if !last {
				if err := e.d.sync(fmt.Sprintf("prefill of %d tokens at position %d", len(part), e.n)); err != nil {
					return fmt.Errorf("%w%s", err, e.syncHint())
				}
				return nil
			}
			ids, err := e.readNext(1)
			if err != nil {
				return fmt.Errorf("prefill of %d tokens at position %d: %w%s", len(part), e.n, err, e.syncHint())
			}
			next = ids[0]
			return nil
		})
		if err != nil {
			return 0, err
		}
		e.n += len(part)
		e.lastRows = 1
	}
	return next, nil
}

// Verify appends 1..MaxVerify tokens in one step and returns the greedy next
// token after each. Steps replay a graph captured per token count.
func (e *Engine) Verify(tokens []int) ([]int, error) {
	if len(tokens) > inference.MaxVerify {
		return nil, fmt.Errorf("verify: %d tokens, at most %d", len(tokens), inference.MaxVerify)
	}
	if err := e.checkTokens(tokens); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	var ids []int
	T := len(tokens)
	err := e.w.do(func() error {
		if err := e.stageParams(tokens); err != nil {
			return err
		}
		what := fmt.Sprintf("verify step of %d tokens at position %d", T, e.n)
		switch g := e.graphs[T]; {
		case e.opts.NoGraphs || g == nil:
			// The first step of each size runs kernel by kernel (loading every
			// kernel before any capture), then is captured for the next ones.
			if err := e.forward(T, logitsAll); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			if !e.opts.NoGraphs {
				if err := e.d.sync(what); err != nil {
					return err
				}
				g, err := e.d.captureGraph(what, func() error { return e.forward(T, logitsAll) })
				if err != nil {
					return fmt.Errorf("capture %s: %w", what, err)
				}
				e.graphs[T] = g
			}
		default:
			if err := e.d.launchGraph(g, what); err != nil {
				return err
			}
		}
		var err error
		ids, err = e.readNext(T)
		if err != nil {
			return fmt.Errorf("%s: %w%s", what, err, e.syncHint())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.n += T
	e.lastRows = T
	return ids, nil
}

// syncHint tells how to find the failing kernel when a failure surfaced at
// a synchronization (kernels run asynchronously, so the driver reports it
// late and without a name).
func (e *Engine) syncHint() string {
	if e.opts.SyncEach {
		return ""
	}
	return " (open the engine with Options.SyncEach to name the failing kernel and its shapes)"
}

// readNext waits for the step and copies its greedy ids back.
func (e *Engine) readNext(n int) ([]int, error) {
	b := make([]byte, 4*n)
	if err := e.d.download(b, e.next); err != nil {
		return nil, err
	}
	ids := make([]int, n)
	for i := range ids {
		ids[i] = int(int32(binary.LittleEndian.Uint32(b[4*i:])))
	}
	return ids, nil
}

// LastLogits returns the logits after the last position of the last step
// (tests and cross-checks; the fast path never copies logits).
func (e *Engine) LastLogits() ([]float32, error) {
	if e.lastRows == 0 {
		return nil, fmt.Errorf("no step has run since the last reset or rollback")
	}
	V := e.cfg.Vocab
	out := make([]float32, V)
	err := e.w.do(func() error {
		b := make([]byte, 4*V)
		if err := e.d.download(b, e.logits.at((e.lastRows-1)*V*4)); err != nil {
			return err
		}
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return nil
	})
	return out, err
}

// logitsMode says which tokens of a step get logits and a greedy id.
type logitsMode int

const (
	logitsAll  logitsMode = iota // every token (verify)
	logitsLast                   // the last token (the last prefill chunk)
	logitsNone                   // none (a prefill chunk before the last)
)

// forward queues the network for T tokens at positions e.n.. (params staged).
func (e *Engine) forward(T int, mode logitsMode) error {
	c := &e.cfg
	d := e.d
	hid, H, KV, D, I := c.Hidden, c.Heads, c.KVHeads, c.HeadDim, c.Intermediate
	eps := float32(c.RMSNormEps)
	rows := launchShape{Grid: [3]uint32{uint32(T)}, Block: [3]uint32{normThreads(hid)}}
	sh := func(f string, a ...any) string { return fmt.Sprintf(f, a...) }

	if err := d.launch("embed_gather", rows, sh("tokens %d hidden %d", T, hid), e.embed, e.params, e.h, hid); err != nil {
		return err
	}
	if err := d.launch("add_rmsnorm", rows, sh("tokens %d hidden %d", T, hid),
		e.h, devPtr(0), e.layers[0].attnNorm, e.xn, hid, eps); err != nil {
		return err
	}
	ap := e.attnPlan(T)
	for li := range e.layers {
		L := &e.layers[li]
		if err := e.awq(&L.qkv, e.xn, e.qkv, T, li, "q|k|v"); err != nil {
			return err
		}
		if err := d.launch("rope_append", launchShape{Grid: [3]uint32{uint32(T), uint32(H + KV)}, Block: [3]uint32{uint32(D / 2)}},
			sh("layer %d tokens %d heads %d/%d head_dim %d", li, T, H, KV, D),
			e.qkv, L.k, L.v, e.params, H, KV, D, e.cap, float32(c.RopeTheta)); err != nil {
			return err
		}
		if err := d.launch(ap.kernel, ap.shape, sh("layer %d tokens %d heads %d/%d head_dim %d window %d cache %d splits %d", li, T, H, KV, D, c.SlidingWindow, e.cap, ap.splits),
			e.qkv, L.k, L.v, e.params, T, H, KV, e.cap, c.SlidingWindow, float32(1/math.Sqrt(float64(D))), ap.blockKeys,
			e.wsAcc, e.wsML); err != nil {
			return err
		}
		if err := d.launch("attn_reduce", launchShape{Grid: [3]uint32{uint32(T * H)}, Block: [3]uint32{uint32(D)}},
			sh("layer %d rows %d splits %d head_dim %d", li, T*H, ap.splits, D),
			e.wsAcc, e.wsML, e.attnOut, T*H, ap.splits, D); err != nil {
			return err
		}
		if err := e.awq(&L.o, e.attnOut, e.proj, T, li, "o_proj"); err != nil {
			return err
		}
		if err := d.launch("add_rmsnorm", rows, sh("layer %d tokens %d hidden %d", li, T, hid),
			e.h, e.proj, L.mlpNorm, e.xn, hid, eps); err != nil {
			return err
		}
		if err := e.awq(&L.gu, e.xn, e.gu, T, li, "gate|up"); err != nil {
			return err
		}
		if err := d.launch("silu_mul", launchShape{Grid: [3]uint32{uint32((I + 255) / 256), uint32(T)}, Block: [3]uint32{256}},
			sh("layer %d tokens %d intermediate %d", li, T, I), e.gu, e.act, I); err != nil {
			return err
		}
		if err := e.awq(&L.down, e.act, e.proj, T, li, "down_proj"); err != nil {
			return err
		}
		if li+1 < len(e.layers) {
			if err := d.launch("add_rmsnorm", rows, sh("layer %d tokens %d hidden %d", li, T, hid),
				e.h, e.proj, e.layers[li+1].attnNorm, e.xn, hid, eps); err != nil {
				return err
			}
		}
	}
	if mode == logitsNone {
		return nil
	}
	// Final norm and lm_head: every token of a verify step, or the last token
	// of a prefill (written to row 0 of xn).
	n, first := T, 0
	if mode == logitsLast {
		n, first = 1, T-1
	}
	if err := d.launch("add_rmsnorm", launchShape{Grid: [3]uint32{uint32(n)}, Block: [3]uint32{normThreads(hid)}}, sh("final norm tokens %d hidden %d", n, hid),
		e.h.at(first*hid*4), e.proj.at(first*hid*2), e.finalNorm, e.xn, hid, eps); err != nil {
		return err
	}
	nt := 1
	for nt < n {
		nt *= 2
	}
	if err := d.launch(fmt.Sprintf("lm_head_%d", nt), lmHeadShape(nt, c.Vocab),
		sh("tokens %d vocab %d hidden %d", n, c.Vocab, hid), e.lmHead, e.xn, e.logits, n, c.Vocab, hid); err != nil {
		return err
	}
	return d.launch("argmax_rows", launchShape{Grid: [3]uint32{uint32(n)}, Block: [3]uint32{1024}},
		sh("tokens %d vocab %d", n, c.Vocab), e.logits, e.next, c.Vocab)
}

// Profile runs steps eager steps of T tokens at the current position (rolled
// back after each) with every kernel timed by events, and returns the mean
// device milliseconds per step of each kernel (AWQ kernels tagged with the
// linear they compute). Kernel-by-kernel timing has no graph, so the sum is
// a little above a replayed step's time.
func (e *Engine) Profile(T, steps int) (map[string]float64, error) {
	toks := make([]int, T)
	for i := range toks {
		toks[i] = i % e.cfg.Vocab
	}
	if err := e.checkTokens(toks); err != nil {
		return nil, err
	}
	sums := map[string]float64{}
	err := e.w.do(func() error {
		p := &profiler{}
		e.d.prof = p
		defer func() { e.d.prof = nil; p.destroy() }()
		for range steps {
			if err := e.stageParams(toks); err != nil {
				return err
			}
			mode := logitsAll
			if T > inference.MaxVerify {
				mode = logitsLast
			}
			if err := e.forward(T, mode); err != nil {
				return err
			}
			if err := p.collect(sums); err != nil {
				return err
			}
		}
		return nil
	})
	for k := range sums {
		sums[k] /= float64(steps)
	}
	return sums, err
}

// lmHeadRows is the vocabulary rows each warp of lm_head_<nt> takes
// (lmhead.cu's LM_HEAD instances): more tokens, more rows per x load.
func lmHeadRows(nt int) int {
	switch {
	case nt >= 8:
		return 4
	case nt == 4:
		return 2
	}
	return 1
}

// lmHeadShape is lm_head_<nt>'s launch: 8 warps a block.
func lmHeadShape(nt, vocab int) launchShape {
	rows := 8 * lmHeadRows(nt)
	return launchShape{Grid: [3]uint32{uint32((vocab + rows - 1) / rows)}, Block: [3]uint32{256}}
}

// normThreads is add_rmsnorm's block: a float4 per thread, up to 1024.
func normThreads(hidden int) uint32 {
	n := (hidden/4 + 31) / 32 * 32
	return uint32(min(max(n, 32), 1024))
}

// awq queues y = x W for T tokens through the AWQ launch plan. A verify
// step's tokens must get the same sums whatever the step's size, or prompt
// lookup would stop giving greedy decoding's output at a near-tie. Where the
// 1..8 and 9..16-token mat-vec kernels split the input among warps
// differently (groups 32 and 64), every verify step uses the plan for
// MaxVerify tokens (the kernel skips the missing ones); with group 128 they
// split it the same way (gemvTokenInvariant) and each step takes its own.
func (e *Engine) awq(l *awqDev, x, y devPtr, T, layer int, what string) error {
	planT := T
	if T <= inference.MaxVerify && !gemvTokenInvariant(&l.p) {
		planT = inference.MaxVerify
	}
	p := awqPlan(&l.p, planT, e.d.cc)
	if p.Kernel == "" {
		return fmt.Errorf("layer %d %s: no AWQ kernel for in %d out %d group %d tokens %d", layer, what, l.p.In, l.p.Out, l.p.Group, T)
	}
	ws := devPtr(0)
	if p.Workspace > 0 {
		ws = e.awqWS
	}
	e.d.tag = what
	defer func() { e.d.tag = "" }()
	return e.d.launch(p.Kernel, launchShape{Grid: p.Grid, Block: p.Block, Shared: p.Shared},
		fmt.Sprintf("layer %d %s tokens %d in %d out %d group %d", layer, what, T, l.p.In, l.p.Out, l.p.Group),
		l.ptr, x, y, ws, T, l.p.In, l.p.Out)
}
