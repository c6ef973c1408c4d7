package inference

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/briefapp/brief/inference/safetensors"
)

// Model is an open model folder: its configs and views of its weights.
type Model struct {
	Dir        string
	Config     Config
	Generation GenerationConfig
	Weights    *Weights // views of the mapped files, valid until Close

	tensors *safetensors.Set
	size    int64
}

// OpenModel opens a checkpoint folder: config.json (and quant_config.json),
// the optional generation_config.json, and the safetensors weights, checking
// every tensor the config implies for presence, dtype and shape.
func OpenModel(dir string) (*Model, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	gen, err := LoadGenerationConfig(dir)
	if err != nil {
		return nil, err
	}
	for _, id := range append([]int{gen.BOS}, gen.EOS...) {
		if id >= cfg.Vocab {
			return nil, fmt.Errorf("%s: token id %d is outside the vocabulary (%d)", filepath.Join(dir, GenerationConfigFile), id, cfg.Vocab)
		}
	}
	set, err := safetensors.OpenFolder(dir)
	if err != nil {
		return nil, err
	}
	b := binder{set: set, cfg: cfg, seen: map[string]bool{}}
	b.where = dir
	if files := set.Files(); len(files) == 1 {
		b.where = files[0]
	}
	w := b.weights()
	if b.err != nil {
		set.Close()
		return nil, b.err
	}
	return &Model{Dir: dir, Config: cfg, Generation: gen, Weights: w, tensors: set, size: b.size}, nil
}

// Close unmaps the weights; the Weights views become invalid.
func (m *Model) Close() error {
	if m.tensors == nil {
		return nil
	}
	err := m.tensors.Close()
	m.tensors, m.Weights = nil, nil
	return err
}

// SizeBytes is the size of the weights the model uses (each tensor once).
func (m *Model) SizeBytes() int64 { return m.size }

// Name is the folder's base name, or config.json's _name_or_path when the
// folder name says nothing.
func (m *Model) Name() string {
	abs, err := filepath.Abs(m.Dir)
	if err != nil {
		abs = m.Dir
	}
	base := filepath.Base(abs)
	if (base == "." || base == string(filepath.Separator) || base == "") && m.Config.NameOrPath != "" {
		return m.Config.NameOrPath
	}
	return base
}

// BOS is the beginning-of-sequence id from generation_config.json or else
// config.json; -1 if neither gives one.
func (m *Model) BOS() int {
	if m.Generation.BOS > 0 {
		return m.Generation.BOS
	}
	return m.Config.BOS
}

// EOS lists the ids that end generation: generation_config.json's, or else
// config.json's.
func (m *Model) EOS() []int {
	if len(m.Generation.EOS) > 0 {
		return m.Generation.EOS
	}
	return m.Config.EOS
}

// binder looks tensors up and checks them, keeping the first error.
type binder struct {
	set   *safetensors.Set
	cfg   Config
	where string // the file (or folder of shards) named in errors
	err   error
	seen  map[string]bool
	size  int64
}

func (b *binder) fail(format string, a ...any) {
	if b.err == nil {
		b.err = fmt.Errorf("%s: "+format, append([]any{b.where}, a...)...)
	}
}

// tensor returns the named tensor if it has the dtype and shape wanted.
func (b *binder) tensor(name string, dt safetensors.DType, shape ...int) *safetensors.Tensor {
	if b.err != nil {
		return nil
	}
	t, ok := b.set.Tensor(name)
	if !ok {
		b.fail("tensor %q is missing (%s %v expected)", name, dt, shape)
		return nil
	}
	if t.DType != dt {
		b.fail("tensor %q is %s, want %s", name, t.DType, dt)
		return nil
	}
	if !slices.Equal(t.Shape, shape) {
		b.fail("tensor %q has shape %v, want %v", name, t.Shape, shape)
		return nil
	}
	if !b.seen[name] {
		b.seen[name] = true
		b.size += int64(len(t.Bytes))
	}
	return t
}

func (b *binder) dense(name string, shape ...int) Dense {
	t := b.tensor(name, safetensors.F16, shape...)
	if t == nil {
		return Dense{}
	}
	d, err := t.Uint16s()
	if err != nil {
		b.fail("%v", err)
		return Dense{}
	}
	return Dense{Shape: t.Shape, Data: d}
}

func (b *binder) int32s(name string, shape ...int) []int32 {
	t := b.tensor(name, safetensors.I32, shape...)
	if t == nil {
		return nil
	}
	d, err := t.Int32s()
	if err != nil {
		b.fail("%v", err)
	}
	return d
}

func (b *binder) awq(prefix string, in, out int) AWQLinear {
	g := b.cfg.Quant.GroupSize
	l := AWQLinear{In: in, Out: out, GroupSize: g}
	l.QWeight = b.int32s(prefix+".qweight", in, out/8)
	l.QZeros = b.int32s(prefix+".qzeros", in/g, out/8)
	l.Scales = b.dense(prefix+".scales", in/g, out).Data
	return l
}

func (b *binder) weights() *Weights {
	c := b.cfg
	w := &Weights{}
	w.Embed = b.dense("model.embed_tokens.weight", c.Vocab, c.Hidden)
	w.Norm = b.dense("model.norm.weight", c.Hidden)
	if c.TieEmbeddings {
		w.LMHead = w.Embed
	} else {
		w.LMHead = b.dense("lm_head.weight", c.Vocab, c.Hidden)
	}
	q, kv := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	w.Layers = make([]Layer, c.Layers)
	for i := range w.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		w.Layers[i] = Layer{
			AttnNorm: b.dense(p+"input_layernorm.weight", c.Hidden),
			MLPNorm:  b.dense(p+"post_attention_layernorm.weight", c.Hidden),
			Q:        b.awq(p+"self_attn.q_proj", c.Hidden, q),
			K:        b.awq(p+"self_attn.k_proj", c.Hidden, kv),
			V:        b.awq(p+"self_attn.v_proj", c.Hidden, kv),
			O:        b.awq(p+"self_attn.o_proj", q, c.Hidden),
			Gate:     b.awq(p+"mlp.gate_proj", c.Hidden, c.Intermediate),
			Up:       b.awq(p+"mlp.up_proj", c.Hidden, c.Intermediate),
			Down:     b.awq(p+"mlp.down_proj", c.Intermediate, c.Hidden),
		}
	}
	if b.err != nil {
		return nil
	}
	// Tensors the network would need but this loader does not read would be
	// silently ignored; refuse the ones that change the result.
	for _, n := range b.set.Names() {
		if strings.HasPrefix(n, "model.layers.") && strings.HasSuffix(n, ".bias") {
			b.fail("tensor %q: linear biases are not supported", n)
			return nil
		}
		if strings.HasPrefix(n, fmt.Sprintf("model.layers.%d.", c.Layers)) {
			b.fail("tensor %q: the config has only %d layers", n, c.Layers)
			return nil
		}
	}
	return w
}
