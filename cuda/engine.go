// Package cuda is Brief's GPU engine: kernels compiled ahead into embedded
// fatbins (make -C cuda), plus Hopper-only ones embedded as PTX that the
// driver compiles on first use (the wgmma prefill GEMM), the NVIDIA driver
// opened at run time with dlopen (nothing CUDA is needed to build), and an
// inference.Engine that runs a 4-bit AWQ Llama/Mistral model with decode
// and verify steps replayed as CUDA graphs, and greedy steps queued back to
// back on the device (inference.Pipelined, greedy.go).
package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/briefapp/brief/inference"
)

// Options tune the engine; the zero value is the fast path.
type Options struct {
	Device     int  // GPU ordinal
	Chunk      int  // prefill chunk in tokens (default 512): bounds activation memory (two chunks' with the pipelined prefill)
	MaxContext int  // longest sequence accepted (0: the model's max positions)
	NoGraphs   bool // run verify and greedy steps kernel by kernel instead of replaying graphs
	SyncEach   bool // wait after every kernel so a failure names it (slow; for debugging)
}

const defaultChunk = 512

// Engine runs one sequence on one GPU. All device work happens inside
// e.w.do, one call at a time, on a locked thread with the context current;
// the methods may be called from any one goroutine.
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

	acts          // the current step's buffers
	logits devPtr // (MaxVerify, vocab) fp32
	next   devPtr // (MaxVerify) int32 greedy ids
	wsRows int64  // splits x rows the attention workspace holds
	// pipe is the pipelined prefill's second set of buffers and its
	// events (prefill.go); nil when the prefill runs one chunk at a time.
	pipe *pipeline

	// ropeFused: q|k|v is packed in ropeOrder; steps of up to 16 tokens run
	// the fused-RoPE mat-vec, longer ones the GEMM and rope_append_perm
	// (awq.go: ropeFused, the package knob it follows).
	ropeFused bool
	// siluFused: gate|up is packed in siluOrder; steps of up to 16 tokens
	// run the fused-SiLU mat-vec into act, longer ones the GEMM and
	// silu_mul_perm (awq.go: siluFused, the package knob it follows).
	siluFused bool
	// gemmEpilogue: steps of more than 16 tokens run the fused-epilogue
	// GEMM (awq_gemm*_g128_silu / _rope) where siluFused / ropeFused packed
	// the weights for it, instead of the GEMM and silu_mul_perm /
	// rope_append_perm (awq.go: gemmEpilogue, the package knob it follows).
	gemmEpilogue bool
	// lmHeadMMA: every logits step runs lm_head_mma* (forward.go:
	// lmHeadMMA, the package knob it follows).
	lmHeadMMA     bool
	lmHeadVariant string // lmHeadMMAVariant when the engine was made
	// prefillDirect: prefill chunks planned with one key split run the
	// direct attention kernel and no attn_reduce (attnplan.go:
	// prefillDirect, the package knob it follows).
	prefillDirect bool
	// normVT4: the norms before each layer's attention and MLP run add_rmsnorm_vt4 (forward.go: normVT4).
	normVT4 bool
	// skipDeadTail: prefill chunks without logits skip the last layer
	// after its q|k|v (forward.go: skipDeadTail).
	skipDeadTail bool
	// attnWg: prefill chunks' attention runs attn_prefill_wg where
	// prefillKernel is attn_prefill2 (attnplan.go: attnWgmma, prefillFamily).
	attnWg bool
	// gemmWgmma: prefill GEMMs run the wgmma kernels (awq.go: gemmWgmma,
	// the package knob it follows; sm_90, group 128, the driver compiled
	// them). jitErr says why the driver could not, where it could not.
	gemmWgmma bool
	jitErr    error
	// gemmWg12: q|k|v's fused-RoPE GEMM may run in blocks of 12 stripes
	// (awq.go: gemmWg12, the package knob it follows).
	gemmWg12 bool
	// gemmXP: prefill GEMMs run the x-producer wgmma kernels (awq.go:
	// gemmXP, the package knob it follows).
	gemmXP bool
	// xpPerm: steps of more than 16 tokens store the x-producer GEMMs'
	// inputs in their stages' order (awq.go: xpPerm, the package knob it
	// follows).
	xpPerm bool

	graphs   [inference.MaxVerify + 1]*graph
	chain    *graph     // Greedy's one-token step, ending in argmax_chain (greedy.go)
	ring     greedyRing // Greedy's page-locked ids
	lastRows int        // logits rows the last step wrote (LastLogits reads the last)
	hostIDs  []byte
}

// acts are the buffers one chunk's forward pass writes and reads.
type acts struct {
	params  devPtr // int32: [0] position of the step's first token, [4+t] token ids
	h       devPtr // (chunk, hidden) fp32 residual stream
	xn      devPtr // (chunk, hidden) fp16 normalized input of the next linear
	qkv     devPtr // (chunk, (heads+2*kv_heads)*head_dim) fp16
	attnOut devPtr // (chunk, heads*head_dim) fp16
	proj    devPtr // (chunk, hidden) fp16 output of o_proj / down_proj
	gu      devPtr // (chunk, 2*intermediate) fp16; 0 when siluFused and gemmEpilogue
	act     devPtr // (chunk, intermediate) fp16
	wsAcc   devPtr // attention split partials, (splits, rows, head_dim) fp32
	wsML    devPtr // (splits, rows, 2) fp32
	awqWS   devPtr // AWQ kernels' scratch (0 when none needs it)
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
		e.w.ctx = d.ctx // do holds the lock
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
// allocates the activations. Runs inside e.w.do.
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
	e.ropeFused = ropeFused && ropeFusable(c.Quant.GroupSize, H, KV, D)
	e.siluFused = siluFused && siluFusable(c.Quant.GroupSize, I)
	e.gemmEpilogue = gemmEpilogue && (e.ropeFused || e.siluFused)
	e.lmHeadMMA = lmHeadMMA && lmHeadMMAFits(hid)
	e.lmHeadVariant = lmHeadMMAVariant
	e.prefillDirect = prefillDirect
	e.normVT4 = normVT4 && normVT4Fits(hid)
	e.skipDeadTail = skipDeadTail
	if gemmWgmma && d.cc == 90 && c.Quant.GroupSize == 128 {
		// The first lookup has the driver compile the PTX module; where it
		// fails, the mma.sync GEMM stays and the error is kept.
		e.gemmWgmma = d.hasKernel("awq_gemm_wg_g128")
		e.jitErr = d.jitErr
		e.gemmWg12 = gemmWg12 && e.gemmWgmma && d.hasKernel("awq_gemm_wg12_g128_rope")
		e.gemmXP = gemmXP && e.gemmWgmma
		for _, t := range awqXpTiles {
			e.gemmXP = e.gemmXP && d.hasKernel(t.kernel(""))
		}
		// Every GEMM that reads a permuted input must be an x-producer
		// one, and gate|up must write the activations itself.
		e.xpPerm = xpPerm && e.gemmXP && e.siluFused && e.gemmEpilogue && c.Hidden%128 == 0 && c.Intermediate%128 == 0 &&
			d.hasKernel("add_rmsnorm_px")
		for _, t := range awqXpTiles {
			e.xpPerm = e.xpPerm && d.hasKernel(t.kernel("_px"))
		}
	}
	// attn_prefill_wg steps its ring slots a key tile at a time, so the
	// ring must hold a tile (attn_prefill2.cuh: issue_wg).
	if attnWgmma && d.cc == 90 && D == 128 && e.cap >= attnWgKeys {
		e.attnWg = d.hasKernel("attn_prefill_wg_d128") && d.hasKernel("attn_prefill_wg_direct_d128")
		e.jitErr = d.jitErr
	}
	// Everything the engine will allocate, checked against free memory
	// first; the pipelined prefill's second lane only where it fits too.
	need, pipeNeed := e.memoryNeed()
	free, _, err := d.freeMemory()
	if err != nil {
		return err
	}
	if freeMemoryLimit > 0 {
		free = min(free, freeMemoryLimit)
	}
	if need > free {
		return fmt.Errorf("not enough GPU memory: the model needs about %s (weights, %d-position KV cache, activations), %s is free on %s",
			mib(need), e.cap, mib(free), d.name)
	}
	piped := e.pipelines() && need+pipeNeed <= free
	ch := int64(e.chunk)
	guCols := e.guCols()
	wsAcc, wsML := e.attnWorkspace()
	altAcc, altML := e.altWorkspace()

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

	ws := 0
	for _, l := range e.layers[:1] {
		for _, p := range []*awqPacked{&l.qkv.p, &l.o.p, &l.gu.p, &l.down.p} {
			for t := 1; t <= e.chunk; t++ {
				ws = max(ws, awqPlan(p, t, d.cc).Workspace)
			}
		}
	}
	allocActs := func(a *acts, wsAcc, wsML int64) {
		a.params = alloc(int64(4*(4+e.chunk)), "step parameters")
		a.h = alloc(ch*int64(hid)*4, "residual stream")
		a.xn = alloc(ch*int64(hid)*2, "normalized activations")
		a.qkv = alloc(ch*int64(qkvW)*2, "q|k|v")
		a.attnOut = alloc(ch*int64(H*D)*2, "attention output")
		a.proj = alloc(ch*int64(hid)*2, "projection output")
		if guCols > 0 {
			a.gu = alloc(ch*int64(guCols)*2, "gate|up")
		}
		a.act = alloc(ch*int64(I)*2, "mlp activations")
		if wsAcc > 0 {
			a.wsAcc = alloc(wsAcc, "attention workspace")
			a.wsML = alloc(wsML, "attention workspace")
		}
		if ws > 0 {
			a.awqWS = alloc(int64(ws), "AWQ workspace")
		}
	}
	allocActs(&e.acts, wsAcc, wsML)
	e.logits = alloc(int64(inference.MaxVerify)*int64(c.Vocab)*4, "logits")
	e.next = alloc(4*inference.MaxVerify, "greedy ids")
	e.wsRows = wsAcc / (4 * int64(D))
	e.hostIDs = make([]byte, 4*(4+e.chunk))
	if err != nil {
		return err
	}
	if piped {
		e.pipe = &pipeline{}
		allocActs(&e.pipe.alt, altAcc, altML)
		if err != nil {
			return err
		}
		return e.pipe.open(d, c.Layers)
	}
	return nil
}

func (e *Engine) uploadLayer(i int, l *inference.Layer) error {
	c := &e.cfg
	d := e.d
	lb := &e.layers[i]
	var err error
	up := func(dst *awqDev, what string, order []int, ls ...inference.AWQLinear) {
		if err != nil {
			return
		}
		var p awqPacked
		if p, err = packAWQOrder(order, ls...); err != nil {
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
	var qkvOrder []int // one packed copy either way: the permutation costs no memory
	if e.ropeFused {
		qkvOrder = ropeOrder(c.Heads, c.KVHeads, c.HeadDim)
	}
	up(&lb.qkv, "q|k|v", qkvOrder, l.Q, l.K, l.V)
	up(&lb.o, "o_proj", nil, l.O)
	var guOrder []int // likewise one packed copy
	if e.siluFused {
		if l.Gate.Out != c.Intermediate || l.Up.Out != c.Intermediate {
			return fmt.Errorf("layer %d gate|up: gate has %d columns and up %d, want the intermediate size %d each", i, l.Gate.Out, l.Up.Out, c.Intermediate)
		}
		guOrder = siluOrder(c.Intermediate)
	}
	up(&lb.gu, "gate|up", guOrder, l.Gate, l.Up)
	up(&lb.down, "down_proj", nil, l.Down)
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

// Name is "CUDA: <GPU name>".
func (e *Engine) Name() string { return "CUDA: " + e.d.name }

// DeviceName is the GPU's name as the driver reports it.
func (e *Engine) DeviceName() string { return e.d.name }

// ComputeCapability is e.g. 90 for an H100.
func (e *Engine) ComputeCapability() int { return e.d.cc }

// JITError is why the driver could not compile the engine's PTX kernels
// (the wgmma GEMM), or nil; prefill then runs the mma.sync GEMM.
func (e *Engine) JITError() error { return e.jitErr }

// PrefillGEMM names the kernels of the engine's prefill linears, and why
// not the fastest where the driver could not compile them.
func (e *Engine) PrefillGEMM() string {
	if e.gemmXP && e.xpPerm {
		return "wgmma with an x-producer warpgroup, x stored in its stages' order (sm_90a PTX compiled by the driver)"
	}
	if e.gemmXP {
		return "wgmma with an x-producer warpgroup (sm_90a PTX compiled by the driver)"
	}
	return e.wgmmaName(e.gemmWgmma)
}

// wgmmaName names a family of prefill kernels: wgmma where the engine took
// it, else mma.sync, with why where the driver could not compile wgmma.
func (e *Engine) wgmmaName(wg bool) string {
	switch {
	case wg:
		return "wgmma (sm_90a PTX compiled by the driver)"
	case e.jitErr != nil:
		return fmt.Sprintf("mma.sync (the driver could not compile the wgmma kernels: %v)", e.jitErr)
	}
	return "mma.sync"
}

// PrefillAttention names the kernels of the engine's prefill chunks'
// attention, and why not wgmma where the driver could not compile them.
func (e *Engine) PrefillAttention() string { return e.wgmmaName(e.attnWg) }

// PrefillChunks says how a long prompt's chunks run, for reports.
func (e *Engine) PrefillChunks() string {
	if e.pipe != nil {
		return fmt.Sprintf("%d tokens, two in flight on two streams", e.chunk)
	}
	return fmt.Sprintf("%d tokens, one at a time", e.chunk)
}

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
	if e.w == nil {
		return inference.Memory{}
	}
	return inference.Memory{Current: e.d.mem.cur.Load(), Peak: e.d.mem.peak.Load()}
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
		if e.chain != nil {
			e.chain.destroy()
			e.chain = nil
		}
		e.freeGreedy()
		e.pipe.close()
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
