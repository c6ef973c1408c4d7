package cuda

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/briefapp/brief/inference"
)

// The network as kernel launches: one step's forward pass, the profile that
// times it kernel by kernel, and the launch shapes of its kernels.

// logitsMode says which tokens of a step get logits and a greedy id.
type logitsMode int

const (
	logitsAll   logitsMode = iota // every token (verify)
	logitsLast                    // the last token (the last prefill chunk)
	logitsNone                    // none (a prefill chunk before the last)
	logitsChain                   // one token, whose greedy id becomes the next step's (greedy.go)
)

// forward queues the network for T tokens at positions e.n.. (params staged).
func (e *Engine) forward(T int, mode logitsMode) error {
	c := &e.cfg
	d := e.d
	hid, H, KV, D := c.Hidden, c.Heads, c.KVHeads, c.HeadDim
	eps := float32(c.RMSNormEps)
	norm, normRows := e.normPlan(T)
	if e.permX(T) {
		norm += "_px" // the layers' norms feed q|k|v's and gate|up's GEMMs
	}
	sh := func(f string, a ...any) string { return fmt.Sprintf(f, a...) }

	// The first norm gathers the tokens' embedding rows itself (embed_<norm>).
	if err := d.launch("embed_"+strings.TrimPrefix(norm, "add_"), normRows, sh("tokens %d hidden %d", T, hid),
		e.embed, e.params, e.h, e.layers[0].attnNorm, e.xn, hid, eps); err != nil {
		return err
	}
	ap := e.attnPlan(T)
	for li := range e.layers {
		L := &e.layers[li]
		if err := e.beforeAppend(li); err != nil {
			return err
		}
		if err := e.qkvRope(L, T, li); err != nil {
			return err
		}
		if mode == logitsNone && e.skipDeadTail && li == len(e.layers)-1 {
			// The cache now holds the chunk's keys and values; the rest of
			// the last layer only feeds logits, which this chunk has none of.
			return e.cacheDone(li)
		}
		args := []any{e.qkv, L.k, L.v, e.params, T, H, KV, e.cap, c.SlidingWindow, float32(1 / math.Sqrt(float64(D))), ap.blockKeys,
			e.wsAcc, e.wsML}
		if ap.direct {
			// One split: the kernel writes the output attn_reduce would.
			args = append(args[:len(args)-2], e.attnOut)
		}
		if err := d.launch(ap.kernel, ap.shape, sh("layer %d tokens %d heads %d/%d head_dim %d window %d cache %d splits %d", li, T, H, KV, D, c.SlidingWindow, e.cap, ap.splits),
			args...); err != nil {
			return err
		}
		if !ap.direct {
			if err := d.launch("attn_reduce", launchShape{Grid: [3]uint32{uint32(T * H)}, Block: [3]uint32{uint32(D)}},
				sh("layer %d rows %d splits %d head_dim %d", li, T*H, ap.splits, D),
				e.wsAcc, e.wsML, e.attnOut, T*H, ap.splits, D); err != nil {
				return err
			}
		}
		if err := e.cacheDone(li); err != nil {
			return err
		}
		if err := e.awq(&L.o, e.attnOut, e.proj, T, li, "o_proj"); err != nil {
			return err
		}
		if err := d.launch(norm, normRows, sh("layer %d tokens %d hidden %d", li, T, hid),
			e.h, e.proj, L.mlpNorm, e.xn, hid, eps); err != nil {
			return err
		}
		if err := e.gateUpSilu(L, T, li); err != nil {
			return err
		}
		if err := e.awq(&L.down, e.act, e.proj, T, li, "down_proj"); err != nil {
			return err
		}
		if li+1 < len(e.layers) {
			if err := d.launch(norm, normRows, sh("layer %d tokens %d hidden %d", li, T, hid),
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
	kernel, shape, err := lmHeadPlan(n, c.Vocab, e.lmHeadMMA, e.lmHeadVariant)
	if err != nil {
		return err
	}
	if err := d.launch(kernel, shape,
		sh("tokens %d vocab %d hidden %d", n, c.Vocab, hid), e.lmHead, e.xn, e.logits, n, c.Vocab, hid); err != nil {
		return err
	}
	if mode == logitsChain {
		return d.launch("argmax_chain", launchShape{Grid: [3]uint32{1}, Block: [3]uint32{1024}},
			sh("vocab %d", c.Vocab), e.logits, e.next, c.Vocab, e.params, e.ring.dev, greedySlots)
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
	if T < 1 || T > e.chunk {
		// The activations and the split workspace hold one prefill chunk.
		return nil, fmt.Errorf("profile of %d tokens: a step holds 1 to %d", T, e.chunk)
	}
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

// lmHeadMMA: every logits step runs lm_head on the tensor cores
// (lmhead_mma.cu, NOTES-lmhead.md) instead of the fp32 FMA kernels, for
// engines whose hidden size it takes (lmHeadMMAFits). Either path is
// batch-invariant on its own; mixing them within one engine would not be.
// A replayed step at the reference context, off -> on: 1 token 2.126 ->
// 2.106 ms, 11 tokens 2.644 -> 2.545, 16 tokens 2.927 -> 2.744; lm_head
// itself 0.064 -> 0.068 ms at 1 token and 0.165 -> 0.068 at 11 (H200,
// BenchmarkLMHeadMMA, session 5). BRIEF_LMHEAD_MMA=0 turns it off in test
// runs.
var lmHeadMMA = true

// lmHeadMMAVariant picks the mma kernel's schedule: "" loads the next
// chunk while it multiplies one, "_np" loads then multiplies each chunk
// (fewer registers, more blocks resident). Both run the same mma
// sequence: the logits are the same bits.
var lmHeadMMAVariant = ""

// lmHeadMMAVariants are the schedules lmhead_mma.cu builds.
var lmHeadMMAVariants = []string{"", "_np"}

// lmHeadMMAFits says whether lm_head_mma* takes a hidden size: whole
// 64-wide chunks of k.
func lmHeadMMAFits(hidden int) bool { return hidden > 0 && hidden%lmHeadMMAChunk == 0 }

// lmhead_mma.cu's shape: kLMMChunk, kLMMRows vocabulary rows and
// kLMMSlices warps a block, kLMMTokens tokens (mma M).
const (
	lmHeadMMAChunk  = 64
	lmHeadMMARows   = 32
	lmHeadMMAWarps  = 4
	lmHeadMMATokens = 16
)

// lmHeadPlan is the lm_head kernel and launch for n tokens: with mma,
// lm_head_mma<variant> for every n (the tokens are the mma's 16 rows);
// otherwise lm_head_<nt>, nt the next power of two >= n.
func lmHeadPlan(n, vocab int, mma bool, variant string) (string, launchShape, error) {
	if n < 1 || n > lmHeadMMATokens {
		return "", launchShape{}, fmt.Errorf("lm_head of %d tokens: a step holds 1 to %d", n, lmHeadMMATokens)
	}
	if mma {
		if !slices.Contains(lmHeadMMAVariants, variant) {
			return "", launchShape{}, fmt.Errorf("lm_head: no mma variant %q (have %q)", variant, lmHeadMMAVariants)
		}
		return "lm_head_mma" + variant, launchShape{
			Grid:  [3]uint32{uint32((vocab + lmHeadMMARows - 1) / lmHeadMMARows)},
			Block: [3]uint32{32 * lmHeadMMAWarps}}, nil
	}
	nt := 1
	for nt < n {
		nt *= 2
	}
	return fmt.Sprintf("lm_head_%d", nt), lmHeadShape(nt, vocab), nil
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

// skipDeadTail: a prefill chunk before the last (logitsNone) stops after
// the last layer's q|k|v GEMM, which writes the chunk's keys and values to
// the cache. That layer's attention, o_proj and MLP would only feed the
// final norm and lm_head, which such a chunk does not run, and the next
// chunk starts from its own embeddings, so nothing reads them: the
// outputs are the same bits either way (TestSkipDeadTailEngine).
var skipDeadTail = true

// normVT4: the norms after the embedding and inside the layers run
// add_rmsnorm_vt4 where the hidden size allows (normVT4Fits): add_rmsnorm's
// bits with a quarter of its threads, four float4 loads in flight a thread
// (TestAddRMSNormVT4SameBits). Prefill chunks since session 11 (a
// 512-token chunk's norms 0.84 -> 0.65 ms); decode and verify steps since
// session 25: on an H200, greedy 530.0 -> 533.2 tokens/s and an 11-token
// verify step 2.373 -> 2.335 ms (run 216; on an H100 in run 105 it was
// within noise). BRIEF_NORM_VT4=0 turns it off for a test run
// (main_test.go).
var normVT4 = true

// normVT4Fits is whether add_rmsnorm_vt4 computes add_rmsnorm's row of
// hidden: one float4 a thread there (hidden/4 a multiple of 32, at most
// 1024), four here (a multiple of 128).
func normVT4Fits(hidden int) bool { return hidden%4 == 0 && hidden/4 <= 1024 && hidden/4%128 == 0 }

// normPlan is the kernel and launch of a T-token step's norms after the
// embedding and inside the layers (the final norm runs add_rmsnorm).
func (e *Engine) normPlan(T int) (string, launchShape) {
	hid := e.cfg.Hidden
	if e.normVT4 && normVT4Fits(hid) {
		return "add_rmsnorm_vt4", launchShape{Grid: [3]uint32{uint32(T)}, Block: [3]uint32{uint32(hid / 16)}}
	}
	return "add_rmsnorm", launchShape{Grid: [3]uint32{uint32(T)}, Block: [3]uint32{normThreads(hid)}}
}

// qkvRope queues the q|k|v projection, RoPE and the KV-cache append for
// T tokens: the mat-vec or GEMM then rope_append, or, with e.ropeFused,
// the fused-RoPE mat-vec for up to 16 tokens and beyond either the GEMM
// then rope_append_perm (which reads the permuted columns) or, with
// e.gemmEpilogue, the fused-RoPE GEMM.
func (e *Engine) qkvRope(L *layerBufs, T, li int) error {
	c := &e.cfg
	H, KV, D := c.Heads, c.KVHeads, c.HeadDim
	shapes := fmt.Sprintf("layer %d tokens %d heads %d/%d head_dim %d", li, T, H, KV, D)
	if e.ropeFused && (T <= awqGemvMaxTokens || e.gemmEpilogue) {
		var p awqLaunch
		if T <= awqGemvMaxTokens {
			p = awqRopePlan(&L.qkv.p, e.planTokens(&L.qkv.p, T), e.d.cc)
		} else {
			var err error
			p, err = e.pxPlan(e.gemmPlan(awqGemmEpiPlan(&L.qkv.p, T, e.d.cc, epiRope), &L.qkv.p, T), T, "q|k|v")
			if err != nil {
				return fmt.Errorf("layer %d %w", li, err)
			}
		}
		if p.Kernel == "" {
			return fmt.Errorf("layer %d q|k|v: no fused-RoPE kernel for in %d out %d group %d tokens %d", li, L.qkv.p.In, L.qkv.p.Out, L.qkv.p.Group, T)
		}
		e.d.tag = "q|k|v" // the kernel name tells the fused one apart
		defer func() { e.d.tag = "" }()
		return e.d.launch(p.Kernel, launchShape{Grid: p.Grid, Block: p.Block, Shared: p.Shared},
			fmt.Sprintf("%s in %d out %d cache %d", shapes, L.qkv.p.In, L.qkv.p.Out, e.cap),
			L.qkv.ptr, e.xn, e.qkv, L.k, L.v, e.params, T, L.qkv.p.In, L.qkv.p.Out, H, KV, D, e.cap, float32(c.RopeTheta))
	}
	if err := e.awq(&L.qkv, e.xn, e.qkv, T, li, "q|k|v"); err != nil {
		return err
	}
	rope := "rope_append"
	if e.ropeFused {
		rope = "rope_append_perm"
	}
	return e.d.launch(rope, launchShape{Grid: [3]uint32{uint32(T), uint32(H + KV)}, Block: [3]uint32{uint32(D / 2)}},
		shapes, e.qkv, L.k, L.v, e.params, H, KV, D, e.cap, float32(c.RopeTheta))
}

// gateUpSilu queues the gate|up projection and the SiLU gate for T tokens,
// leaving silu(gate) * up in e.act: the mat-vec or GEMM into e.gu then
// silu_mul, or, with e.siluFused, the fused-SiLU mat-vec straight into
// e.act for up to 16 tokens and beyond either the GEMM then silu_mul_perm
// (which reads the permuted columns) or, with e.gemmEpilogue, the
// fused-SiLU GEMM straight into e.act.
func (e *Engine) gateUpSilu(L *layerBufs, T, li int) error {
	I := e.cfg.Intermediate
	if e.siluFused && T <= awqGemvMaxTokens {
		return e.awqWith(awqSiluPlan, &L.gu, e.xn, e.act, T, li, "gate|up")
	}
	if e.siluFused && e.gemmEpilogue {
		plan := func(p *awqPacked, tokens, cc int) awqLaunch { return awqGemmEpiPlan(p, tokens, cc, epiSilu) }
		return e.awqWith(plan, &L.gu, e.xn, e.act, T, li, "gate|up")
	}
	if err := e.awq(&L.gu, e.xn, e.gu, T, li, "gate|up"); err != nil {
		return err
	}
	silu := "silu_mul"
	if e.siluFused {
		silu = "silu_mul_perm"
	}
	return e.d.launch(silu, launchShape{Grid: [3]uint32{uint32((I + 255) / 256), uint32(T)}, Block: [3]uint32{256}},
		fmt.Sprintf("layer %d tokens %d intermediate %d", li, T, I), e.gu, e.act, I)
}

// planTokens is the token count a T-token step's AWQ plan is made for (see
// awq): MaxVerify for every verify step where the mat-vec kernels for 1..8
// and 9..16 tokens would split p's sums differently, else T.
func (e *Engine) planTokens(p *awqPacked, T int) int {
	if T <= inference.MaxVerify && !gemvTokenInvariant(p) {
		return inference.MaxVerify
	}
	return T
}

// awq queues y = x W for T tokens through the AWQ launch plan. A verify
// step's tokens must get the same sums whatever the step's size, or prompt
// lookup would stop giving greedy decoding's output at a near-tie. Where the
// 1..8 and 9..16-token mat-vec kernels split the input among warps
// differently (groups 32 and 64), every verify step uses the plan for
// MaxVerify tokens (the kernel skips the missing ones); with group 128 they
// split it the same way (gemvTokenInvariant) and each step takes its own.
func (e *Engine) awq(l *awqDev, x, y devPtr, T, layer int, what string) error {
	return e.awqWith(awqPlan, l, x, y, T, layer, what)
}

// gemmPlan is base, or, for a GEMM step with e.gemmWgmma, base moved to
// the wgmma kernel (awqWgmmaPlan, or awqXpPlan with e.gemmXP).
func (e *Engine) gemmPlan(base awqLaunch, p *awqPacked, T int) awqLaunch {
	if !e.gemmWgmma || T <= awqGemvMaxTokens {
		return base
	}
	if e.gemmXP {
		return awqXpPlan(base, p, T, e.d.sms)
	}
	l := awqWgmmaPlan(base, p, T)
	if e.gemmWg12 {
		l = awqWg12Plan(l, p, T, e.d.sms)
	}
	return l
}

// permX is whether a T-token step stores the x-producer GEMMs' inputs
// permuted (e.xpPerm; not the mat-vecs' steps).
func (e *Engine) permX(T int) bool { return e.xpPerm && T > awqGemvMaxTokens }

// pxPlan moves p to its kernel for permuted inputs where the step stores
// them so (every input but o_proj's).
func (e *Engine) pxPlan(p awqLaunch, T int, what string) (awqLaunch, error) {
	if what == "o_proj" || !e.permX(T) {
		return p, nil
	}
	if !strings.HasPrefix(p.Kernel, "awq_gemm_xp_") {
		return p, fmt.Errorf("%s: %d tokens of permuted input for %s, which reads it in order", what, T, p.Kernel)
	}
	p.Kernel += "_px"
	return p, nil
}

// awqWith is awq with the launch plan of plan (awqPlan, or awqSiluPlan for
// the fused-SiLU mat-vec, whose y is the activations).
func (e *Engine) awqWith(plan func(*awqPacked, int, int) awqLaunch, l *awqDev, x, y devPtr, T, layer int, what string) error {
	p, err := e.pxPlan(e.gemmPlan(plan(&l.p, e.planTokens(&l.p, T), e.d.cc), &l.p, T), T, what)
	if err != nil {
		return fmt.Errorf("layer %d %w", layer, err)
	}
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
