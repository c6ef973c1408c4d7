// Package synth writes synthetic AWQ checkpoints: a Llama or Mistral folder
// of any shape with deterministic random weights, the OpenHermes config and
// tokenizer, so every size can be tested and full-size GPU runs need no
// download. The weights are random but of realistic magnitudes (see
// random.go): activations keep an RMS near 1-6 through every layer and the
// logits have a spread of about 4.
package synth

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/briefapp/brief/assets"
	"github.com/briefapp/brief/inference"
	"github.com/briefapp/brief/inference/f16"
	"github.com/briefapp/brief/inference/safetensors"
)

// Options tune Write.
type Options struct {
	Seed    uint64
	Workers int // goroutines generating tensors; 0: GOMAXPROCS
	// AllowEOS keeps lm_head's rows for the EOS ids random. By default they
	// are zero, so their logit is 0 while the best of 32,002 random logits
	// is near +16: a random model then always runs to max new tokens, which
	// benchmarks need.
	AllowEOS bool
}

type kind int

const (
	kQWeight kind = iota
	kQZeros
	kScales
	kNorm
	kEmbed
	kHead
)

type tensor struct {
	spec     safetensors.Spec
	kind     kind
	param    float32      // base scale (kScales) or standard deviation
	rowLen   int          // kHead: elements per row
	zeroRows map[int]bool // kHead: rows written as zeros
}

func (t *tensor) elems() int {
	n := 1
	for _, d := range t.spec.Shape {
		n *= d
	}
	return n
}

// plan lists a shape's tensors as DESIGN.md names them.
func plan(s Shape) []*tensor {
	f16t := func(name string, k kind, param float32, shape ...int) *tensor {
		return &tensor{spec: safetensors.Spec{Name: name, DType: safetensors.F16, Shape: shape}, kind: k, param: param}
	}
	var ts []*tensor
	ts = append(ts, f16t("model.embed_tokens.weight", kEmbed, embedStd, s.Vocab, s.Hidden))
	if !s.TieEmbeddings {
		h := f16t("lm_head.weight", kHead, headStd(s.Hidden), s.Vocab, s.Hidden)
		h.rowLen = s.Hidden
		ts = append(ts, h)
	}
	ts = append(ts, f16t("model.norm.weight", kNorm, 0, s.Hidden))
	g := s.GroupSize
	q, kv := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	for i := 0; i < s.Layers; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		ts = append(ts, f16t(p+"input_layernorm.weight", kNorm, 0, s.Hidden), f16t(p+"post_attention_layernorm.weight", kNorm, 0, s.Hidden))
		for _, l := range []struct {
			name    string
			in, out int
		}{
			{"self_attn.q_proj", s.Hidden, q}, {"self_attn.k_proj", s.Hidden, kv}, {"self_attn.v_proj", s.Hidden, kv},
			{"self_attn.o_proj", q, s.Hidden}, {"mlp.gate_proj", s.Hidden, s.Intermediate},
			{"mlp.up_proj", s.Hidden, s.Intermediate}, {"mlp.down_proj", s.Intermediate, s.Hidden},
		} {
			n := p + l.name
			ts = append(ts,
				&tensor{spec: safetensors.Spec{Name: n + ".qweight", DType: safetensors.I32, Shape: []int{l.in, l.out / 8}}, kind: kQWeight},
				&tensor{spec: safetensors.Spec{Name: n + ".qzeros", DType: safetensors.I32, Shape: []int{l.in / g, l.out / 8}}, kind: kQZeros},
				f16t(n+".scales", kScales, scaleFor(l.in), l.in/g, l.out))
		}
	}
	return ts
}

// fill writes chunk c of t (little-endian) into dst and returns the bytes
// written.
func (t *tensor) fill(seed uint64, c int, dst []byte) int {
	r := stream(seed, t.spec.Name, c)
	lo := c * chunkElems
	n := min(lo+chunkElems, t.elems()) - lo
	switch t.kind {
	case kQWeight, kQZeros:
		word := qWord
		if t.kind == kQZeros {
			word = zWord
		}
		dst = dst[:4*n]
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint32(dst[4*i:], packAWQ(word(&r)))
		}
		return 4 * n
	}
	dst = dst[:2*n]
	put := func(i int, v float32) { binary.LittleEndian.PutUint16(dst[2*i:], f16.Float32ToHalf(v)) }
	switch t.kind {
	case kScales:
		for i := 0; i < n; i++ {
			put(i, scale(&r, t.param))
		}
	case kNorm:
		for i := 0; i < n; i++ {
			put(i, normWeight(&r))
		}
	case kEmbed:
		for i := 0; i < n; i++ {
			put(i, r.normal()*t.param)
		}
	case kHead:
		for i := 0; i < n; i++ {
			v := r.normal() * t.param
			if t.zeroRows[(lo+i)/t.rowLen] {
				v = 0
			}
			put(i, v)
		}
	}
	return 2 * n
}

// Write creates dir (if needed) and writes a checkpoint of shape s into it:
// config.json, quant_config.json, generation_config.json, the OpenHermes
// tokenizer files and model.safetensors. It returns the weight file's size.
// The same shape and seed always give the same bytes.
func Write(dir string, s Shape, o Options) (int64, error) {
	if err := s.Check(); err != nil {
		return 0, err
	}
	if err := checkTarget(dir); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	if err := writeFolderFiles(dir, s, o.Seed); err != nil {
		return 0, err
	}
	gen, err := inference.LoadGenerationConfig(dir)
	if err != nil {
		return 0, err
	}
	cfg, err := inference.LoadConfig(dir)
	if err != nil {
		return 0, fmt.Errorf("synth wrote a config the loader refuses: %w", err)
	}
	ts := plan(s)
	if !o.AllowEOS {
		zero := map[int]bool{}
		for _, id := range append(append([]int(nil), gen.EOS...), cfg.EOS...) {
			zero[id] = true
		}
		for _, t := range ts {
			if t.kind == kHead {
				t.zeroRows = zero
			}
		}
	}
	specs := make([]safetensors.Spec, len(ts))
	byName := map[string]*tensor{}
	for i, t := range ts {
		specs[i] = t.spec
		byName[t.spec.Name] = t
	}
	layout, err := safetensors.NewLayout(specs, map[string]string{"format": "pt"})
	if err != nil {
		return 0, err
	}
	final := filepath.Join(dir, "model.safetensors")
	tmp := final + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp) // a no-op once renamed
	if err := f.Truncate(layout.Size); err != nil {
		f.Close()
		return 0, err
	}
	if _, err := f.WriteAt(layout.Header, 0); err != nil {
		f.Close()
		return 0, err
	}

	type job struct {
		t     *tensor
		chunk int
		off   int64
	}
	jobs := make(chan job)
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var werr error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4*chunkElems)
			for j := range jobs {
				n := j.t.fill(o.Seed, j.chunk, buf)
				if _, err := f.WriteAt(buf[:n], j.off); err != nil {
					mu.Lock()
					werr = err
					mu.Unlock()
				}
			}
		}()
	}
	for i, sp := range layout.Specs {
		t := byName[sp.Name]
		esize := int64(sp.DType.Size())
		for c := 0; c*chunkElems < t.elems(); c++ {
			jobs <- job{t, c, layout.Offsets[i] + int64(c)*chunkElems*esize}
		}
	}
	close(jobs)
	wg.Wait()
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		return 0, fmt.Errorf("%s: %w", tmp, werr)
	}
	if err := os.Rename(tmp, final); err != nil {
		return 0, err
	}
	return layout.Size, nil
}

// checkTarget refuses a folder that holds a checkpoint synth did not write,
// so that a mistyped --out never overwrites real weights, and one with shards
// the loader would prefer to the file written here.
func checkTarget(dir string) error {
	shards, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	for _, p := range shards {
		if filepath.Base(p) != "model.safetensors" {
			return fmt.Errorf("%s: holds %s; write the synthetic checkpoint to another folder", dir, filepath.Base(p))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors.index.json")); err == nil {
		return fmt.Errorf("%s: holds a sharded checkpoint; write the synthetic checkpoint to another folder", dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, inference.ConfigFile))
	if errors.Is(err, fs.ErrNotExist) {
		if len(shards) > 0 {
			return fmt.Errorf("%s: holds model.safetensors without a config; write the synthetic checkpoint to another folder", dir)
		}
		return nil
	}
	if err != nil {
		return err
	}
	var c struct {
		Synthetic json.RawMessage `json:"brief_synthetic"`
	}
	if json.Unmarshal(b, &c) != nil || len(c.Synthetic) == 0 {
		return fmt.Errorf("%s: holds a model that summarize synth did not write; refusing to overwrite it", dir)
	}
	return nil
}

// writeFolderFiles writes the configs and copies the OpenHermes tokenizer.
func writeFolderFiles(dir string, s Shape, seed uint64) error {
	base, err := fs.ReadFile(assets.OpenHermes, "openhermes/config.json")
	if err != nil {
		return err
	}
	var c map[string]any
	if err := json.Unmarshal(base, &c); err != nil {
		return err
	}
	llama := s.Architecture == "LlamaForCausalLM"
	c["architectures"] = []string{s.Architecture}
	c["model_type"] = map[bool]string{true: "llama", false: "mistral"}[llama]
	c["_name_or_path"] = fmt.Sprintf("brief-synth-seed%d", seed)
	c["hidden_size"] = s.Hidden
	c["num_hidden_layers"] = s.Layers
	c["num_attention_heads"] = s.Heads
	c["num_key_value_heads"] = s.KVHeads
	c["head_dim"] = s.HeadDim
	c["intermediate_size"] = s.Intermediate
	c["vocab_size"] = s.Vocab
	c["max_position_embeddings"] = s.MaxPositions
	c["rms_norm_eps"] = s.RMSNormEps
	c["rope_theta"] = s.RopeTheta
	c["tie_word_embeddings"] = s.TieEmbeddings
	switch {
	case llama:
		delete(c, "sliding_window")
	case s.SlidingWindow == 0:
		c["sliding_window"] = nil
	default:
		c["sliding_window"] = s.SlidingWindow
	}
	c["quantization_config"] = map[string]any{"quant_method": "awq", "zero_point": true, "group_size": s.GroupSize, "bits": 4, "version": "gemm"}
	c["brief_synthetic"] = map[string]any{"seed": seed, "note": "random weights written by summarize synth"}
	out, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, inference.ConfigFile), append(out, '\n'), 0o644); err != nil {
		return err
	}
	q, _ := json.Marshal(map[string]any{"zero_point": true, "q_group_size": s.GroupSize, "w_bit": 4, "version": "GEMM"})
	if err := os.WriteFile(filepath.Join(dir, inference.QuantConfigFile), append(q, '\n'), 0o644); err != nil {
		return err
	}
	for _, name := range []string{"generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"} {
		b, err := fs.ReadFile(assets.OpenHermes, "openhermes/"+name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// LinearValues regenerates, without packing, the weights Write gives the
// linear layer named prefix (e.g. "model.layers.0.mlp.up_proj"): q and z as
// row-major 4-bit values ([in][out] and [in/group][out]) and the fp16 scales
// ([in/group][out]). Tests compare them with what the loader unpacks.
func LinearValues(seed uint64, prefix string, in, out, group int) (q, z []uint8, s []uint16) {
	q = make([]uint8, in*out)
	z = make([]uint8, in/group*out)
	s = make([]uint16, in/group*out)
	unpack := func(name string, words int, dst []uint8, word func(*rng) uint32) {
		for c := 0; c*chunkElems < words; c++ {
			r := stream(seed, name, c)
			for e := c * chunkElems; e < min((c+1)*chunkElems, words); e++ {
				w := word(&r)
				for k := 0; k < 8; k++ {
					dst[8*e+k] = uint8(w >> (4 * k) & 15) // logical order: nibble k is column 8c+k
				}
			}
		}
	}
	unpack(prefix+".qweight", in*out/8, q, qWord)
	unpack(prefix+".qzeros", in/group*out/8, z, zWord)
	base := scaleFor(in)
	for c := 0; c*chunkElems < len(s); c++ {
		r := stream(seed, prefix+".scales", c)
		for e := c * chunkElems; e < min((c+1)*chunkElems, len(s)); e++ {
			s[e] = f16.Float32ToHalf(scale(&r, base))
		}
	}
	return q, z, s
}
