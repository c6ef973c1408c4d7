// Package cpu is Brief's reference engine: a plain float32 Llama/Mistral
// forward pass on the dequantized AWQ weights, spread over all cores. It is
// exact to transformers' float32 model on the same weights (up to float
// summation order) and is what the CUDA engine is checked against. It is
// meant for small models: a 7B model would need 28 GB in float32.
package cpu

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/briefapp/brief/inference"
)

// Options tune an Engine; zero values pick defaults.
type Options struct {
	Threads        int   // goroutines for matrix rows; default runtime.NumCPU()
	MaxWeightBytes int64 // refuse models whose float32 weights exceed this; default DefaultMaxWeightBytes
	MaxContext     int   // cap on the sequence length; default the model's max positions
	PrefillChunk   int   // tokens per prefill chunk; default 64
}

// DefaultMaxWeightBytes caps the float32 weights of a CPU model (4 GiB: a
// 1B-parameter model).
const DefaultMaxWeightBytes = 4 << 30

// Engine is the CPU engine. Not safe for concurrent use.
type Engine struct {
	cfg     inference.Config
	w       *weights
	p       pool
	rope    rope
	maxCtx  int
	chunk   int
	wBytes  int64
	mem     inference.Memory
	kvDim   int         // kv_heads * head_dim
	k, v    [][]float32 // (layers)(positions, kv_heads*head_dim)
	n       int         // positions in the cache
	logits  []float32   // (vocab): last position of the last step
	hasLast bool
	s       scratch
}

// scratch holds the activations of one step, sized once for the largest
// step (a prefill chunk or a verify of MaxVerify tokens).
type scratch struct {
	x      []float32   // (tokens, hidden): the residual stream
	xn     []float32   // (tokens, hidden): normed
	qkv    []float32   // (tokens, heads*head_dim + 2*kv_dim)
	att    []float32   // (tokens, heads*head_dim)
	proj   []float32   // (tokens, hidden)
	gu     []float32   // (tokens, 2*intermediate)
	act    []float32   // (tokens, intermediate)
	logits []float32   // (tokens, vocab)
	scores [][]float32 // (threads, max context): attention weights per worker
}

func newScratch(c *inference.Config, tokens, threads, maxCtx int) scratch {
	qd, kvd := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	s := scratch{
		x: make([]float32, tokens*c.Hidden), xn: make([]float32, tokens*c.Hidden),
		qkv: make([]float32, tokens*(qd+2*kvd)), att: make([]float32, tokens*qd),
		proj: make([]float32, tokens*c.Hidden), gu: make([]float32, tokens*2*c.Intermediate),
		act: make([]float32, tokens*c.Intermediate), logits: make([]float32, tokens*c.Vocab),
		scores: make([][]float32, threads),
	}
	for i := range s.scores {
		s.scores[i] = make([]float32, maxCtx)
	}
	return s
}

func (s *scratch) bytes() int64 {
	n := len(s.x) + len(s.xn) + len(s.qkv) + len(s.att) + len(s.proj) + len(s.gu) + len(s.act) + len(s.logits)
	for _, v := range s.scores {
		n += len(v)
	}
	return 4 * int64(n)
}

// NewFromWeights dequantizes w into float32 and returns an engine on it.
// w may be released afterwards.
func NewFromWeights(cfg *inference.Config, w *inference.Weights, opts Options) (*Engine, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	if opts.MaxWeightBytes <= 0 {
		opts.MaxWeightBytes = DefaultMaxWeightBytes
	}
	if need := weightBytes(cfg); need > opts.MaxWeightBytes {
		return nil, fmt.Errorf("cpu engine: the model needs %.1f GB of float32 weights, over the CPU engine's cap of %.1f GB: use the CUDA engine for models this size",
			float64(need)/1e9, float64(opts.MaxWeightBytes)/1e9)
	}
	fw, err := loadWeights(cfg, w)
	if err != nil {
		return nil, fmt.Errorf("cpu engine: %w", err)
	}
	return newEngine(cfg, fw, opts), nil
}

func checkConfig(cfg *inference.Config) error {
	switch {
	case cfg.Hidden <= 0 || cfg.Layers <= 0 || cfg.Heads <= 0 || cfg.KVHeads <= 0 || cfg.HeadDim <= 0 || cfg.Vocab <= 0 || cfg.Intermediate <= 0:
		return fmt.Errorf("cpu engine: config has a non-positive dimension: %+v", *cfg)
	case cfg.Heads%cfg.KVHeads != 0:
		return fmt.Errorf("cpu engine: %d attention heads are not a multiple of %d key/value heads", cfg.Heads, cfg.KVHeads)
	case cfg.HeadDim%2 != 0:
		return fmt.Errorf("cpu engine: head dim %d is odd; RoPE needs pairs", cfg.HeadDim)
	case cfg.MaxPositions <= 0:
		return fmt.Errorf("cpu engine: max positions %d", cfg.MaxPositions)
	}
	return nil
}

func newEngine(cfg *inference.Config, w *weights, opts Options) *Engine {
	e := &Engine{cfg: *cfg, w: w}
	e.p.threads = opts.Threads
	if e.p.threads <= 0 {
		e.p.threads = runtime.NumCPU()
	}
	e.maxCtx = cfg.MaxPositions
	if opts.MaxContext > 0 {
		e.maxCtx = min(e.maxCtx, opts.MaxContext)
	}
	e.chunk = opts.PrefillChunk
	if e.chunk <= 0 {
		e.chunk = 64
	}
	e.rope = newRope(cfg.HeadDim, cfg.RopeTheta)
	e.kvDim = cfg.KVHeads * cfg.HeadDim
	e.k = make([][]float32, cfg.Layers)
	e.v = make([][]float32, cfg.Layers)
	e.logits = make([]float32, cfg.Vocab)
	e.s = newScratch(cfg, max(e.chunk, inference.MaxVerify), e.p.threads, e.maxCtx)
	e.wBytes = 4*int64(len(w.embed)+len(w.norm)+len(w.lmHead)+len(e.logits)) + e.s.bytes()
	for _, l := range w.layers {
		e.wBytes += 4 * int64(len(l.attnNorm)+len(l.mlpNorm)+len(l.qkv)+len(l.o)+len(l.gateUp)+len(l.down))
	}
	e.account()
	return e
}

// Name implements inference.Engine.
func (e *Engine) Name() string { return fmt.Sprintf("CPU (%d threads)", e.p.threads) }

// MaxContext implements inference.Engine.
func (e *Engine) MaxContext() int { return e.maxCtx }

// Len implements inference.Engine.
func (e *Engine) Len() int { return e.n }

// Reset implements inference.Engine; the cache's memory is kept for reuse.
func (e *Engine) Reset() { e.n, e.hasLast = 0, false }

// Rollback implements inference.Engine. The CPU cache keeps every
// position, so any n <= Len() works.
func (e *Engine) Rollback(n int) error {
	if n < 0 || n > e.n {
		return fmt.Errorf("cpu engine: rollback to %d of %d positions", n, e.n)
	}
	e.n = n
	return nil
}

// Memory implements inference.Engine: weights, KV cache and logits.
func (e *Engine) Memory() inference.Memory { return e.mem }

// Close implements inference.Engine.
func (e *Engine) Close() error {
	e.w, e.k, e.v = nil, nil, nil
	e.mem.Current = 0
	return nil
}

// LastLogits implements inference.LogitsReader: the logits after the last
// token of the last Prefill or Verify.
func (e *Engine) LastLogits() ([]float32, error) {
	if !e.hasLast {
		return nil, errors.New("cpu engine: no step has run")
	}
	return append([]float32(nil), e.logits...), nil
}

// Prefill implements inference.Engine.
func (e *Engine) Prefill(ctx context.Context, tokens []int) (int, error) {
	if len(tokens) == 0 {
		return 0, errors.New("cpu engine: prefill of no tokens")
	}
	if err := e.check(tokens); err != nil {
		return 0, err
	}
	var next []int
	for lo := 0; lo < len(tokens); lo += e.chunk {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		hi := min(lo+e.chunk, len(tokens))
		want := 0
		if hi == len(tokens) {
			want = 1 // only the last position's next token
		}
		next = e.forward(tokens[lo:hi], want)
	}
	return next[len(next)-1], nil
}

// Verify implements inference.Engine.
func (e *Engine) Verify(tokens []int) ([]int, error) {
	if len(tokens) < 1 || len(tokens) > inference.MaxVerify {
		return nil, fmt.Errorf("cpu engine: verify of %d tokens, want 1..%d", len(tokens), inference.MaxVerify)
	}
	if err := e.check(tokens); err != nil {
		return nil, err
	}
	return e.forward(tokens, len(tokens)), nil
}

func (e *Engine) check(tokens []int) error {
	if e.w == nil {
		return errors.New("cpu engine: closed")
	}
	if e.n+len(tokens) > e.maxCtx {
		return fmt.Errorf("cpu engine: %d + %d tokens exceed the context of %d", e.n, len(tokens), e.maxCtx)
	}
	for i, t := range tokens {
		if t < 0 || t >= e.cfg.Vocab {
			return fmt.Errorf("cpu engine: token %d (at %d) outside the vocabulary of %d", t, i, e.cfg.Vocab)
		}
	}
	return nil
}

// account updates memory figures after the cache grew.
func (e *Engine) account() {
	cur := e.wBytes
	for l := range e.k {
		cur += 4 * int64(cap(e.k[l])+cap(e.v[l]))
	}
	e.mem.Current = cur
	e.mem.Peak = max(e.mem.Peak, cur)
}

// forward runs tokens at positions Len().. through the network, appends
// their keys and values to the cache and returns the greedy next token
// after each of the last want tokens (logits of the last kept for
// LastLogits).
func (e *Engine) forward(tokens []int, want int) []int {
	c := &e.cfg
	T, H, hd := len(tokens), c.Hidden, c.HeadDim
	qd, kvd, inter := c.Heads*hd, e.kvDim, c.Intermediate
	p0 := e.n

	s := &e.s
	x, xn, qkv, att := s.x[:T*H], s.xn[:T*H], s.qkv[:T*(qd+2*kvd)], s.att[:T*qd]
	proj, gu, act := s.proj[:T*H], s.gu[:T*2*inter], s.act[:T*inter]

	for t, id := range tokens {
		copy(x[t*H:(t+1)*H], e.w.embed[id*H:(id+1)*H])
	}
	grew := false
	for li := range e.w.layers {
		l := &e.w.layers[li]
		for t := 0; t < T; t++ {
			rmsNorm(xn[t*H:(t+1)*H], x[t*H:(t+1)*H], l.attnNorm, c.RMSNormEps)
		}
		e.p.matmul(qkv, xn, l.qkv, T, H, qd+2*kvd)
		// RoPE on q and k, then keys and values into the cache.
		need := (p0 + T) * kvd
		if cap(e.k[li]) < need {
			grew = true
		}
		e.k[li] = growTo(e.k[li], need, e.maxCtx*kvd)
		e.v[li] = growTo(e.v[li], need, e.maxCtx*kvd)
		for t := 0; t < T; t++ {
			row := qkv[t*(qd+2*kvd) : (t+1)*(qd+2*kvd)]
			pos := p0 + t
			for h := 0; h < c.Heads; h++ {
				e.rope.apply(row[h*hd:(h+1)*hd], pos)
			}
			for h := 0; h < c.KVHeads; h++ {
				e.rope.apply(row[qd+h*hd:qd+(h+1)*hd], pos)
			}
			copy(e.k[li][pos*kvd:(pos+1)*kvd], row[qd:qd+kvd])
			copy(e.v[li][pos*kvd:(pos+1)*kvd], row[qd+kvd:qd+2*kvd])
		}
		group := c.Heads / c.KVHeads
		e.p.rows(T*c.Heads, (p0+T)*hd, func(w, lo, hi int) {
			scores := s.scores[w]
			for th := lo; th < hi; th++ {
				t, h := th/c.Heads, th%c.Heads
				q := qkv[t*(qd+2*kvd)+h*hd : t*(qd+2*kvd)+(h+1)*hd]
				attend(att[t*qd+h*hd:t*qd+(h+1)*hd], q, e.k[li], e.v[li], kvd, (h/group)*hd, p0+t, c.SlidingWindow, scores)
			}
		})
		e.p.matmul(proj, att, l.o, T, qd, H)
		add(x, proj)
		for t := 0; t < T; t++ {
			rmsNorm(xn[t*H:(t+1)*H], x[t*H:(t+1)*H], l.mlpNorm, c.RMSNormEps)
		}
		e.p.matmul(gu, xn, l.gateUp, T, H, 2*inter)
		for t := 0; t < T; t++ {
			g, u, a := gu[t*2*inter:t*2*inter+inter], gu[t*2*inter+inter:(t+1)*2*inter], act[t*inter:(t+1)*inter]
			for i := range a {
				a[i] = silu(g[i]) * u[i]
			}
		}
		e.p.matmul(proj, act, l.down, T, inter, H)
		add(x, proj)
	}
	e.n = p0 + T
	if grew {
		e.account()
	}
	if want == 0 {
		return nil
	}
	next := make([]int, want)
	logits := s.logits[:want*c.Vocab]
	for i := 0; i < want; i++ {
		t := T - want + i
		rmsNorm(xn[i*H:(i+1)*H], x[t*H:(t+1)*H], e.w.norm, c.RMSNormEps)
	}
	e.p.matmul(logits, xn, e.w.lmHead, want, H, c.Vocab)
	for i := range next {
		next[i] = argmax(logits[i*c.Vocab : (i+1)*c.Vocab])
	}
	copy(e.logits, logits[(want-1)*c.Vocab:])
	e.hasLast = true
	return next
}

// growTo returns s with length n, growing capacity by doubling (up to
// limit) so the cache is not copied on every step.
func growTo(s []float32, n, limit int) []float32 {
	if n <= cap(s) {
		return s[:n]
	}
	ns := make([]float32, n, max(n, min(2*cap(s), limit)))
	copy(ns, s)
	return ns
}

func add(x, y []float32) {
	for i := range x {
		x[i] += y[i]
	}
}
