package cpu

import (
	"math"
	"sync"
)

// pool splits loops over output rows across goroutines.
type pool struct {
	threads int
}

// minWork is the multiply-adds below which a loop runs on the calling
// goroutine: starting goroutines costs more than the work.
const minWork = 1 << 15

// rows runs f over [0,n) in contiguous chunks, in parallel when each row
// costs cost multiply-adds and the total is worth it. f's first argument
// numbers the chunk (below p.threads), for per-worker scratch.
func (p pool) rows(n, cost int, f func(worker, lo, hi int)) {
	workers := min(p.threads, n)
	if workers <= 1 || n*cost < minWork {
		f(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for w, lo := 0, 0; lo < n; w, lo = w+1, lo+chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(w, lo, hi)
		}()
	}
	wg.Wait()
}

// matmul sets y[t] = W x[t] for t < tokens: x is (tokens, in), w is
// (out, in), y is (tokens, out). Each weight row is read once for all
// tokens.
func (p pool) matmul(y, x, w []float32, tokens, in, out int) {
	p.rows(out, tokens*in, func(_, lo, hi int) {
		for o := lo; o < hi; o++ {
			wr := w[o*in : (o+1)*in]
			for t := 0; t < tokens; t++ {
				y[t*out+o] = dot(wr, x[t*in:(t+1)*in])
			}
		}
	})
}

// dot is a float32 dot product with eight partial sums, the way a SIMD
// BLAS accumulates.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= len(a); i += 8 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
		s4 += a[i+4] * b[i+4]
		s5 += a[i+5] * b[i+5]
		s6 += a[i+6] * b[i+6]
		s7 += a[i+7] * b[i+7]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))
}

// rmsNorm sets y = x / sqrt(mean(x²) + eps) * weight, as LlamaRMSNorm does
// in float32 (the mean accumulated in float64).
func rmsNorm(y, x, weight []float32, eps float64) {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	r := float32(1 / math.Sqrt(ss/float64(len(x))+eps))
	for i, v := range x {
		y[i] = weight[i] * (v * r)
	}
}

// rope holds the rotary tables: invFreq[j] = theta^(-2j/d), in float32 as
// transformers computes them.
type rope struct {
	invFreq []float32 // (head_dim/2)
}

func newRope(headDim int, theta float64) rope {
	r := rope{invFreq: make([]float32, headDim/2)}
	for j := range r.invFreq {
		e := float32(2*j) / float32(headDim)
		r.invFreq[j] = 1 / float32(math.Pow(theta, float64(e))) // two float32 roundings, as torch
	}
	return r
}

// apply rotates one head vector at position pos in the rotate-half layout:
// element j pairs with element j+d/2.
func (r rope) apply(v []float32, pos int) {
	half := len(r.invFreq)
	for j, f := range r.invFreq {
		angle := f * float32(pos) // float32, like transformers' freqs
		c := float32(math.Cos(float64(angle)))
		s := float32(math.Sin(float64(angle)))
		a, b := v[j], v[j+half]
		v[j] = a*c - b*s
		v[j+half] = b*c + a*s
	}
}

// silu is x * sigmoid(x).
func silu(x float32) float32 {
	return x / (1 + float32(math.Exp(float64(-x))))
}

// argmax returns the index of the largest value, the lowest index on ties
// (as torch.argmax).
func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// attend computes one head's attention output for a query at position pos
// over cached keys and values (stride floats apart, this head's slice at
// offset off), seeing positions j with pos-window < j <= pos (window 0: all
// j <= pos). scores is scratch of at least pos+1 floats.
func attend(out, q, keys, values []float32, stride, off, pos, window int, scores []float32) {
	d := len(q)
	lo := 0
	if window > 0 {
		lo = max(0, pos-window+1)
	}
	scale := float32(1 / math.Sqrt(float64(d)))
	m := float32(math.Inf(-1))
	for j := lo; j <= pos; j++ {
		s := dot(q, keys[j*stride+off:j*stride+off+d]) * scale
		scores[j] = s
		m = max(m, s)
	}
	var sum float32
	for j := lo; j <= pos; j++ {
		e := float32(math.Exp(float64(scores[j] - m)))
		scores[j] = e
		sum += e
	}
	for i := range out {
		out[i] = 0
	}
	inv := 1 / sum
	for j := lo; j <= pos; j++ {
		p := scores[j] * inv
		vj := values[j*stride+off : j*stride+off+d]
		for i := range out {
			out[i] += p * vj[i]
		}
	}
}
