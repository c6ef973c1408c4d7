package cpu

import (
	"fmt"

	"github.com/briefapp/brief/inference"
)

// weights are the network in float32, laid out for the forward pass:
// every matrix is (out, in) row-major, so each output is one contiguous dot
// product and output rows split cleanly across goroutines.
type weights struct {
	embed  []float32 // (vocab, hidden)
	norm   []float32 // (hidden)
	lmHead []float32 // (vocab, hidden)
	layers []layer
}

type layer struct {
	attnNorm []float32 // (hidden)
	mlpNorm  []float32 // (hidden)
	qkv      []float32 // (heads*head_dim + 2*kv_heads*head_dim, hidden): q, k, v stacked
	o        []float32 // (hidden, heads*head_dim)
	gateUp   []float32 // (2*intermediate, hidden): gate, up stacked
	down     []float32 // (hidden, intermediate)
}

// weightBytes is the float32 size of a model of shape cfg.
func weightBytes(cfg *inference.Config) int64 {
	h, v := int64(cfg.Hidden), int64(cfg.Vocab)
	qd, kvd, in := int64(cfg.Heads*cfg.HeadDim), int64(cfg.KVHeads*cfg.HeadDim), int64(cfg.Intermediate)
	perLayer := 2*h + (qd+2*kvd)*h + h*qd + 3*in*h
	return 4 * (2*v*h + h + int64(cfg.Layers)*perLayer)
}

// loadWeights dequantizes a checkpoint into float32.
func loadWeights(cfg *inference.Config, w *inference.Weights) (*weights, error) {
	h, qd, kvd := cfg.Hidden, cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	if len(w.Layers) != cfg.Layers {
		return nil, fmt.Errorf("weights have %d layers, config says %d", len(w.Layers), cfg.Layers)
	}
	var err error
	out := &weights{layers: make([]layer, cfg.Layers)}
	if out.embed, err = dense(w.Embed, cfg.Vocab*h, "embed_tokens"); err != nil {
		return nil, err
	}
	if out.norm, err = dense(w.Norm, h, "norm"); err != nil {
		return nil, err
	}
	if out.lmHead, err = dense(w.LMHead, cfg.Vocab*h, "lm_head"); err != nil {
		return nil, err
	}
	for i, l := range w.Layers {
		d := &out.layers[i]
		name := func(s string) string { return fmt.Sprintf("layers.%d.%s", i, s) }
		if d.attnNorm, err = dense(l.AttnNorm, h, name("input_layernorm")); err != nil {
			return nil, err
		}
		if d.mlpNorm, err = dense(l.MLPNorm, h, name("post_attention_layernorm")); err != nil {
			return nil, err
		}
		if d.qkv, err = stack(name("self_attn.qkv"), h, []awq{{l.Q, qd, "q_proj"}, {l.K, kvd, "k_proj"}, {l.V, kvd, "v_proj"}}); err != nil {
			return nil, err
		}
		if d.o, err = stack(name("self_attn"), qd, []awq{{l.O, h, "o_proj"}}); err != nil {
			return nil, err
		}
		if d.gateUp, err = stack(name("mlp"), h, []awq{{l.Gate, cfg.Intermediate, "gate_proj"}, {l.Up, cfg.Intermediate, "up_proj"}}); err != nil {
			return nil, err
		}
		if d.down, err = stack(name("mlp"), cfg.Intermediate, []awq{{l.Down, h, "down_proj"}}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func dense(d inference.Dense, n int, name string) ([]float32, error) {
	if len(d.Data) != n {
		return nil, fmt.Errorf("%s: %d values, want %d", name, len(d.Data), n)
	}
	return inference.DequantizeDense(d), nil
}

type awq struct {
	l    inference.AWQLinear
	out  int
	name string
}

// stack dequantizes AWQ linears sharing their input into one (out, in)
// matrix, their outputs one after the other.
func stack(prefix string, in int, ls []awq) ([]float32, error) {
	total := 0
	for _, a := range ls {
		total += a.out
	}
	m := make([]float32, total*in)
	row := 0
	for _, a := range ls {
		if err := dequantize(a.l, in, a.out, m[row*in:]); err != nil {
			return nil, fmt.Errorf("%s.%s: %w", prefix, a.name, err)
		}
		row += a.out
	}
	return m, nil
}

// dequantize writes W^T, W = (q - z) * s as inference.DequantizeAWQ
// computes it, into dst as (out, in).
func dequantize(l inference.AWQLinear, in, out int, dst []float32) error {
	g := l.GroupSize
	switch {
	case l.In != in || l.Out != out:
		return fmt.Errorf("shape %dx%d, want %dx%d", l.In, l.Out, in, out)
	case g <= 0 || in%g != 0 || out%8 != 0:
		return fmt.Errorf("group size %d does not divide %d inputs, or %d outputs not a multiple of 8", g, in, out)
	case len(l.QWeight) != in*out/8 || len(l.QZeros) != in/g*out/8 || len(l.Scales) != in/g*out:
		return fmt.Errorf("qweight/qzeros/scales hold %d/%d/%d values, want %d/%d/%d",
			len(l.QWeight), len(l.QZeros), len(l.Scales), in*out/8, in/g*out/8, in/g*out)
	}
	w := inference.DequantizeAWQ(l) // (in, out)
	for i := 0; i < in; i++ {
		for o, v := range w[i*out : (i+1)*out] {
			dst[o*in+i] = v
		}
	}
	return nil
}
