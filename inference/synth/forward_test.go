package synth

import (
	"math"
	"os"
	"strconv"
	"testing"

	"github.com/briefapp/brief/inference"
)

// TestActivationScale runs a plain float32 Llama/Mistral forward pass (for
// statistics only; the CPU engine is the exact reference) over a written
// checkpoint with 32 layers and checks the claim of random.go: the residual
// stream stays within fp16's comfortable range through every layer and the
// logits have a spread. BRIEF_SYNTH_HIDDEN=4096 runs the full OpenHermes width.
func TestActivationScale(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a 32-layer forward pass")
	}
	s := Shapes["openhermes"]
	s.Hidden, s.Heads, s.KVHeads, s.HeadDim, s.Intermediate = 512, 8, 2, 64, 1792
	if h, err := strconv.Atoi(os.Getenv("BRIEF_SYNTH_HIDDEN")); err == nil && h == 4096 {
		s = Shapes["openhermes"]
	}
	dir := t.TempDir()
	if _, err := Write(dir, s, Options{Seed: 11}); err != nil {
		t.Fatal(err)
	}
	m, err := inference.OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := m.Config
	tokens := []int{1, 32001, 1587, 13, 1976, 460, 5465, 28705, 17, 5744, 28723, 32000, 13, 32001, 13892, 13}
	n, d := len(tokens), c.HeadDim
	embed := inference.DequantizeDense(m.Weights.Embed)
	h := make([][]float32, n)
	for i, tok := range tokens {
		h[i] = append([]float32(nil), embed[tok*c.Hidden:(tok+1)*c.Hidden]...)
	}
	norm := func(x []float32, w inference.Dense) []float32 {
		wf := inference.DequantizeDense(w)
		var ss float64
		for _, v := range x {
			ss += float64(v) * float64(v)
		}
		r := float32(1 / math.Sqrt(ss/float64(len(x))+c.RMSNormEps))
		y := make([]float32, len(x))
		for i := range x {
			y[i] = x[i] * r * wf[i]
		}
		return y
	}
	lin := func(xs [][]float32, l inference.AWQLinear) [][]float32 {
		w := inference.DequantizeAWQ(l)
		ys := make([][]float32, len(xs))
		for t, x := range xs {
			ys[t] = matvec(x, w, l.Out)
		}
		return ys
	}
	rope := func(v []float32, pos int) {
		for hd := 0; hd < len(v)/d; hd++ {
			x := v[hd*d : (hd+1)*d]
			for i := 0; i < d/2; i++ {
				a := float64(pos) * math.Pow(c.RopeTheta, -2*float64(i)/float64(d))
				sn, cs := math.Sincos(a)
				x0, x1 := float64(x[i]), float64(x[i+d/2])
				x[i], x[i+d/2] = float32(x0*cs-x1*sn), float32(x1*cs+x0*sn)
			}
		}
	}
	var maxAbs float64
	for li, L := range m.Weights.Layers {
		xs := make([][]float32, n)
		for i := range h {
			xs[i] = norm(h[i], L.AttnNorm)
		}
		q, k, v := lin(xs, L.Q), lin(xs, L.K), lin(xs, L.V)
		att := make([][]float32, n)
		for i := 0; i < n; i++ {
			rope(q[i], i)
			rope(k[i], i)
		}
		group := c.Heads / c.KVHeads
		for i := 0; i < n; i++ {
			att[i] = make([]float32, c.Heads*d)
			for hd := 0; hd < c.Heads; hd++ {
				kv := hd / group
				lo := 0
				if c.SlidingWindow > 0 {
					lo = max(0, i-c.SlidingWindow+1)
				}
				sc := make([]float64, i+1)
				mx := math.Inf(-1)
				for j := lo; j <= i; j++ {
					var dot float64
					for e := 0; e < d; e++ {
						dot += float64(q[i][hd*d+e]) * float64(k[j][kv*d+e])
					}
					sc[j] = dot / math.Sqrt(float64(d))
					mx = math.Max(mx, sc[j])
				}
				var sum float64
				for j := lo; j <= i; j++ {
					sc[j] = math.Exp(sc[j] - mx)
					sum += sc[j]
				}
				for j := lo; j <= i; j++ {
					p := float32(sc[j] / sum)
					for e := 0; e < d; e++ {
						att[i][hd*d+e] += p * v[j][kv*d+e]
					}
				}
			}
		}
		o := lin(att, L.O)
		for i := range h {
			for e := range h[i] {
				h[i][e] += o[i][e]
			}
			xs[i] = norm(h[i], L.MLPNorm)
		}
		g, u := lin(xs, L.Gate), lin(xs, L.Up)
		for i := range g {
			for e, x := range g[i] {
				g[i][e] = x / (1 + float32(math.Exp(float64(-x)))) * u[i][e]
			}
		}
		dn := lin(g, L.Down)
		var ss float64
		for i := range h {
			for e := range h[i] {
				h[i][e] += dn[i][e]
				ss += float64(h[i][e]) * float64(h[i][e])
				maxAbs = math.Max(maxAbs, math.Abs(float64(h[i][e])))
			}
		}
		r := math.Sqrt(ss / float64(n*c.Hidden))
		t.Logf("layer %2d: residual RMS %.2f (attention out %.2f, MLP out %.2f)", li, r, rms(o[n-1]), rms(dn[n-1]))
		if r < 0.5 || r > 30 {
			t.Errorf("layer %d: residual RMS %.2f outside 0.5..30", li, r)
		}
	}
	t.Logf("largest residual value %.1f (fp16 max 65504)", maxAbs)
	if maxAbs > 1000 {
		t.Errorf("residual reaches %.1f", maxAbs)
	}
	last := norm(h[n-1], m.Weights.Norm)
	head := inference.DequantizeDense(m.Weights.LMHead)
	logits := make([]float32, c.Vocab)
	best, second := float32(math.Inf(-1)), float32(math.Inf(-1))
	for id := range logits {
		for e, x := range last {
			logits[id] += x * head[id*c.Hidden+e]
		}
		if l := logits[id]; l > best {
			best, second = l, best
		} else if l > second {
			second = l
		}
	}
	t.Logf("logits: standard deviation %.2f, top %.2f, top-2 margin %.3f", rms(logits), best, best-second)
	if sd := rms(logits); sd < 2 || sd > 8 {
		t.Errorf("logit standard deviation %.2f outside 2..8", sd)
	}
}
