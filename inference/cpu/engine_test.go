package cpu

import (
	"context"
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/briefapp/brief/inference"
	"github.com/briefapp/brief/inference/f16"
)

// tinyConfig is a small Llama/Mistral shape for tests on random weights.
func tinyConfig(window int) inference.Config {
	return inference.Config{
		Architecture: "MistralForCausalLM", Hidden: 32, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8,
		Intermediate: 48, Vocab: 64, RMSNormEps: 1e-5, RopeTheta: 10000, SlidingWindow: window, MaxPositions: 128,
	}
}

func randVec(rng *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64()) * scale
	}
	return v
}

func randWeights(cfg inference.Config, seed int64) *weights {
	rng := rand.New(rand.NewSource(seed))
	H, qd, kvd, in := cfg.Hidden, cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim, cfg.Intermediate
	w := &weights{
		embed:  randVec(rng, cfg.Vocab*H, 1),
		norm:   randVec(rng, H, 1),
		lmHead: randVec(rng, cfg.Vocab*H, 0.3),
	}
	for range cfg.Layers {
		w.layers = append(w.layers, layer{
			attnNorm: randVec(rng, H, 1), mlpNorm: randVec(rng, H, 1),
			qkv: randVec(rng, (qd+2*kvd)*H, 0.4), o: randVec(rng, H*qd, 0.2),
			gateUp: randVec(rng, 2*in*H, 0.2), down: randVec(rng, H*in, 0.2),
		})
	}
	return w
}

// naiveLogits is the textbook forward pass over a whole sequence at once:
// no cache, an explicit mask (j <= i and, with a window W, j > i-W), RoPE
// as a rotation by pos*theta^(-2j/d) in float64. It returns each
// position's logits.
func naiveLogits(cfg inference.Config, w *weights, tokens []int) [][]float32 {
	n, H, hd := len(tokens), cfg.Hidden, cfg.HeadDim
	qd, kvd := cfg.Heads*hd, cfg.KVHeads*hd
	x := make([][]float64, n)
	for i, id := range tokens {
		x[i] = make([]float64, H)
		for j := range H {
			x[i][j] = float64(w.embed[id*H+j])
		}
	}
	norm := func(v []float64, wt []float32) []float64 {
		var ss float64
		for _, a := range v {
			ss += a * a
		}
		r := 1 / math.Sqrt(ss/float64(len(v))+cfg.RMSNormEps)
		out := make([]float64, len(v))
		for i := range v {
			out[i] = v[i] * r * float64(wt[i])
		}
		return out
	}
	mul := func(m []float32, v []float64, out int) []float64 {
		y := make([]float64, out)
		for o := range out {
			for i := range v {
				y[o] += float64(m[o*len(v)+i]) * v[i]
			}
		}
		return y
	}
	rot := func(v []float64, pos int) {
		half := hd / 2
		for j := 0; j < half; j++ {
			a := float64(pos) * math.Pow(cfg.RopeTheta, -2*float64(j)/float64(hd))
			c, s := math.Cos(a), math.Sin(a)
			v[j], v[j+half] = v[j]*c-v[j+half]*s, v[j+half]*c+v[j]*s
		}
	}
	visible := func(i, j int) bool {
		return j <= i && (cfg.SlidingWindow == 0 || j > i-cfg.SlidingWindow)
	}
	for _, l := range w.layers {
		q, k, v := make([][]float64, n), make([][]float64, n), make([][]float64, n)
		for i := range n {
			y := mul(l.qkv, norm(x[i], l.attnNorm), qd+2*kvd)
			q[i], k[i], v[i] = y[:qd], y[qd:qd+kvd], y[qd+kvd:]
			for h := 0; h < cfg.Heads; h++ {
				rot(q[i][h*hd:(h+1)*hd], i)
			}
			for h := 0; h < cfg.KVHeads; h++ {
				rot(k[i][h*hd:(h+1)*hd], i)
			}
		}
		for i := range n {
			att := make([]float64, qd)
			for h := 0; h < cfg.Heads; h++ {
				kh := h / (cfg.Heads / cfg.KVHeads)
				p := make([]float64, n)
				var m = math.Inf(-1)
				for j := range n {
					p[j] = math.Inf(-1)
					if visible(i, j) {
						var s float64
						for d := range hd {
							s += q[i][h*hd+d] * k[j][kh*hd+d]
						}
						p[j] = s / math.Sqrt(float64(hd))
						m = max(m, p[j])
					}
				}
				var sum float64
				for j := range p {
					p[j] = math.Exp(p[j] - m)
					sum += p[j]
				}
				for j := range n {
					for d := range hd {
						att[h*hd+d] += p[j] / sum * v[j][kh*hd+d]
					}
				}
			}
			o := mul(l.o, att, H)
			for j := range H {
				x[i][j] += o[j]
			}
			gu := mul(l.gateUp, norm(x[i], l.mlpNorm), 2*cfg.Intermediate)
			a := make([]float64, cfg.Intermediate)
			for j := range a {
				g := gu[j]
				a[j] = g / (1 + math.Exp(-g)) * gu[cfg.Intermediate+j]
			}
			d := mul(l.down, a, H)
			for j := range H {
				x[i][j] += d[j]
			}
		}
	}
	out := make([][]float32, n)
	for i := range n {
		lg := mul(w.lmHead, norm(x[i], w.norm), cfg.Vocab)
		out[i] = make([]float32, cfg.Vocab)
		for j := range lg {
			out[i][j] = float32(lg[j])
		}
	}
	return out
}

func randTokens(rng *rand.Rand, n, vocab int) []int {
	t := make([]int, n)
	for i := range t {
		t[i] = rng.Intn(vocab)
	}
	return t
}

func maxDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// TestAgainstNaive checks the cached, chunked forward pass against the
// naive one, with and without a sliding window small enough to matter.
func TestAgainstNaive(t *testing.T) {
	for _, window := range []int{0, 1, 3, 7} {
		cfg := tinyConfig(window)
		w := randWeights(cfg, int64(window)+1)
		rng := rand.New(rand.NewSource(int64(window)))
		tokens := randTokens(rng, 40, cfg.Vocab)
		want := naiveLogits(cfg, w, tokens)
		// Prefill in chunks of 5, then verify steps of varied sizes.
		e := newEngine(&cfg, w, Options{PrefillChunk: 5, Threads: 3})
		if _, err := e.Prefill(context.Background(), tokens[:17]); err != nil {
			t.Fatal(err)
		}
		got, _ := e.LastLogits()
		if d := maxDiff(got, want[16]); d > 1e-3 {
			t.Errorf("window %d: prefill logits differ by %g", window, d)
		}
		for pos, k := 17, 1; pos < len(tokens); pos, k = pos+k, k%4+1 {
			k = min(k, len(tokens)-pos)
			next, err := e.Verify(tokens[pos : pos+k])
			if err != nil {
				t.Fatal(err)
			}
			for i, id := range next {
				if wantID := argmax(want[pos+i]); id != wantID {
					t.Errorf("window %d pos %d: next %d, naive %d", window, pos+i, id, wantID)
				}
			}
			got, _ := e.LastLogits()
			if d := maxDiff(got, want[pos+k-1]); d > 1e-3 {
				t.Errorf("window %d pos %d: logits differ by %g", window, pos+k-1, d)
			}
		}
	}
}

// TestVerifyEqualsSteps: verifying k tokens at once gives the argmaxes of
// k single steps, and after a rollback the same tokens verify the same.
func TestVerifyEqualsSteps(t *testing.T) {
	cfg := tinyConfig(5)
	w := randWeights(cfg, 9)
	rng := rand.New(rand.NewSource(3))
	prompt := randTokens(rng, 12, cfg.Vocab)
	batch := randTokens(rng, inference.MaxVerify, cfg.Vocab)

	single := newEngine(&cfg, w, Options{})
	single.Prefill(context.Background(), prompt)
	var want []int
	for _, tok := range batch {
		n, err := single.Verify([]int{tok})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, n[0])
	}
	e := newEngine(&cfg, w, Options{})
	e.Prefill(context.Background(), prompt)
	got, err := e.Verify(batch)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("verify %v, single steps %v", got, want)
	}
	// Roll back half the batch and verify a different continuation, then
	// the original one: the answers must be the fresh engine's.
	if err := e.Rollback(len(prompt) + 7); err != nil {
		t.Fatal(err)
	}
	other := randTokens(rng, 5, cfg.Vocab)
	gotOther, _ := e.Verify(other)
	ref := newEngine(&cfg, w, Options{})
	ref.Prefill(context.Background(), append(slices.Clone(prompt), batch[:7]...))
	wantOther, _ := ref.Verify(other)
	if !slices.Equal(gotOther, wantOther) {
		t.Errorf("after rollback: %v, want %v", gotOther, wantOther)
	}
	e.Rollback(len(prompt) + 7)
	again, _ := e.Verify(batch[7:])
	if !slices.Equal(again, want[7:]) {
		t.Errorf("re-verify after rollback: %v, want %v", again, want[7:])
	}
	if e.Len() != len(prompt)+len(batch) {
		t.Errorf("Len %d, want %d", e.Len(), len(prompt)+len(batch))
	}
}

func TestErrors(t *testing.T) {
	cfg := tinyConfig(0)
	cfg.MaxPositions = 10
	e := newEngine(&cfg, randWeights(cfg, 1), Options{})
	if _, err := e.LastLogits(); err == nil {
		t.Error("LastLogits before any step: no error")
	}
	if _, err := e.Prefill(context.Background(), make([]int, 11)); err == nil || !strings.Contains(err.Error(), "exceed the context of 10") {
		t.Errorf("too long prefill: %v", err)
	}
	if _, err := e.Prefill(context.Background(), []int{64}); err == nil || !strings.Contains(err.Error(), "outside the vocabulary") {
		t.Errorf("bad token: %v", err)
	}
	if _, err := e.Verify(make([]int, inference.MaxVerify+1)); err == nil {
		t.Error("verify of 17 tokens: no error")
	}
	if err := e.Rollback(1); err == nil {
		t.Error("rollback past the end: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Prefill(ctx, []int{1, 2}); err != context.Canceled {
		t.Errorf("cancelled prefill: %v", err)
	}
	big := inference.Config{Hidden: 4096, Layers: 32, Heads: 32, KVHeads: 8, HeadDim: 128, Intermediate: 14336, Vocab: 32002, MaxPositions: 32768}
	if _, err := NewFromWeights(&big, &inference.Weights{}, Options{}); err == nil || !strings.Contains(err.Error(), "CUDA engine") {
		t.Errorf("7B model: %v", err)
	}
}

func TestMemory(t *testing.T) {
	cfg := tinyConfig(0)
	e := newEngine(&cfg, randWeights(cfg, 1), Options{})
	before := e.Memory()
	e.Prefill(context.Background(), make([]int, 50))
	after := e.Memory()
	wantKV := int64(2 * cfg.Layers * 50 * cfg.KVHeads * cfg.HeadDim * 4)
	if after.Current-before.Current < wantKV || after.Peak < after.Current {
		t.Errorf("memory %+v -> %+v, want the cache's %d bytes more", before, after, wantKV)
	}
}

func TestRMSNorm(t *testing.T) {
	y := make([]float32, 2)
	rmsNorm(y, []float32{3, 4}, []float32{1, 2}, 0)
	// rms = sqrt((9+16)/2) = 3.5355
	want := []float32{3 / 3.5355339, 8 / 3.5355339}
	if maxDiff(y, want) > 1e-6 {
		t.Errorf("rmsNorm = %v, want %v", y, want)
	}
}

func TestRope(t *testing.T) {
	r := newRope(8, 10000)
	rng := rand.New(rand.NewSource(1))
	q, k := randVec(rng, 8, 1), randVec(rng, 8, 1)
	// Position 0 is the identity; the score depends only on the distance.
	q0 := slices.Clone(q)
	r.apply(q0, 0)
	if maxDiff(q0, q) != 0 {
		t.Errorf("rope at 0 changed %v to %v", q, q0)
	}
	score := func(m, n int) float32 {
		a, b := slices.Clone(q), slices.Clone(k)
		r.apply(a, m)
		r.apply(b, n)
		return dot(a, b)
	}
	if d := math.Abs(float64(score(7, 3) - score(107, 103))); d > 1e-4 {
		t.Errorf("rope scores at the same distance differ by %g", d)
	}
	// Rotate-half pairs element j with j+d/2: at pos 1, element 0 turns by 1 radian.
	v := []float32{1, 0, 0, 0, 0, 0, 0, 0}
	r.apply(v, 1)
	if math.Abs(float64(v[0])-math.Cos(1)) > 1e-6 || math.Abs(float64(v[4])-math.Sin(1)) > 1e-6 {
		t.Errorf("rope pairs: %v", v)
	}
}

func TestArgmaxTies(t *testing.T) {
	if got := argmax([]float32{1, 3, 3, 2}); got != 1 {
		t.Errorf("argmax = %d, want the lowest of the tied ids, 1", got)
	}
}

// packAWQ writes W[in][out] = (q - z) * s as AWQ GEMM tensors.
func packAWQ(q, z [][]int, s [][]uint16, group int) inference.AWQLinear {
	in, out := len(q), len(q[0])
	l := inference.AWQLinear{In: in, Out: out, GroupSize: group,
		QWeight: make([]int32, in*out/8), QZeros: make([]int32, in/group*out/8), Scales: make([]uint16, in/group*out)}
	for i := range in {
		for c := 0; c < out/8; c++ {
			var w uint32
			for n, col := range inference.AWQOrder {
				w |= uint32(q[i][8*c+col]) << (4 * n)
			}
			l.QWeight[i*out/8+c] = int32(w)
		}
	}
	for g := range in / group {
		for c := 0; c < out/8; c++ {
			var w uint32
			for n, col := range inference.AWQOrder {
				w |= uint32(z[g][8*c+col]) << (4 * n)
			}
			l.QZeros[g*out/8+c] = int32(w)
		}
		for o := range out {
			l.Scales[g*out+o] = s[g][o]
		}
	}
	return l
}

func TestDequantize(t *testing.T) {
	const in, out, group = 8, 16, 4
	rng := rand.New(rand.NewSource(5))
	q, z, s := make([][]int, in), make([][]int, in/group), make([][]uint16, in/group)
	for i := range q {
		q[i] = make([]int, out)
		for o := range q[i] {
			q[i][o] = rng.Intn(16)
		}
	}
	halves := []uint16{0x3c00, 0x3800, 0xb400, 0x2e66} // 1, 0.5, -0.25, ~0.1
	for g := range z {
		z[g], s[g] = make([]int, out), make([]uint16, out)
		for o := range out {
			z[g][o], s[g][o] = rng.Intn(16), halves[rng.Intn(len(halves))]
		}
	}
	dst := make([]float32, in*out)
	if err := dequantize(packAWQ(q, z, s, group), in, out, dst); err != nil {
		t.Fatal(err)
	}
	for i := range in {
		for o := range out {
			want := float32(q[i][o]-z[i/group][o]) * f16.HalfToFloat32(s[i/group][o])
			if dst[o*in+i] != want {
				t.Fatalf("W[%d][%d] = %v, want %v", i, o, dst[o*in+i], want)
			}
		}
	}
	bad := packAWQ(q, z, s, group)
	bad.Scales = bad.Scales[1:]
	if err := dequantize(bad, in, out, dst); err == nil {
		t.Error("short scales: no error")
	}
}
