package inference

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Config holds the hyperparameters of a Llama/Mistral checkpoint, read from
// config.json (and the quantization config beside it).
type Config struct {
	Architecture  string  // "MistralForCausalLM" or "LlamaForCausalLM"
	Hidden        int     // hidden_size
	Layers        int     // num_hidden_layers
	Heads         int     // num_attention_heads
	KVHeads       int     // num_key_value_heads
	HeadDim       int     // head_dim, or hidden/heads
	Intermediate  int     // intermediate_size
	Vocab         int     // vocab_size
	RMSNormEps    float64 // rms_norm_eps
	RopeTheta     float64 // rope_parameters.rope_theta or rope_theta
	SlidingWindow int     // 0: none. Query i sees keys j with i-W < j <= i.
	MaxPositions  int     // max_position_embeddings
	TieEmbeddings bool    // tie_word_embeddings
	BOS           int     // bos_token_id, -1 if absent
	EOS           []int   // eos_token_id (one or several)
	Quant         Quant
	NameOrPath    string // _name_or_path, "" if absent
}

// Quant describes AWQ quantization.
type Quant struct {
	Method    string // "awq"
	Bits      int    // 4
	GroupSize int    // 32, 64 or 128
	ZeroPoint bool
	Version   string // "gemm"
}

// GenerationConfig is generation_config.json; zero values mean absent.
type GenerationConfig struct {
	BOS int
	EOS []int
}

// Files of a model folder.
const (
	ConfigFile           = "config.json"
	QuantConfigFile      = "quant_config.json"
	GenerationConfigFile = "generation_config.json"
)

// maxConfigSize caps the JSON files read here; real ones are a few kB.
const maxConfigSize = 4 << 20

// Caps on hyperparameters, far above any real Llama/Mistral, so that a
// hostile config cannot make an engine size buffers in terabytes.
const (
	maxHidden       = 1 << 16
	maxLayers       = 1024
	maxHeads        = 1024
	maxHeadDim      = 1024
	maxIntermediate = 1 << 18
	maxVocab        = 1 << 22
	maxPositions    = 1 << 24
)

// LoadConfig reads dir/config.json and the quantization config (config.json's
// quantization_config or dir/quant_config.json) and checks that Brief can run
// the model: a 4-bit AWQ (GEMM) Llama or Mistral with default RoPE.
func LoadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, ConfigFile)
	data, err := readSmall(path)
	if err != nil {
		return Config{}, err
	}
	// quant_config.json matters only where config.json has no
	// quantization_config (older AutoAWQ folders).
	qpath := filepath.Join(dir, QuantConfigFile)
	var qdata []byte
	var probe struct {
		Q json.RawMessage `json:"quantization_config"`
	}
	if json.Unmarshal(data, &probe) != nil || isNull(probe.Q) {
		qdata, err = readSmall(qpath)
		if errors.Is(err, fs.ErrNotExist) {
			qdata, err = nil, nil
		}
		if err != nil {
			return Config{}, err
		}
	}
	return parseConfig(path, data, qpath, qdata)
}

// LoadGenerationConfig reads dir/generation_config.json; a folder without one
// yields the zero GenerationConfig.
func LoadGenerationConfig(dir string) (GenerationConfig, error) {
	path := filepath.Join(dir, GenerationConfigFile)
	data, err := readSmall(path)
	if errors.Is(err, fs.ErrNotExist) {
		return GenerationConfig{}, nil
	}
	if err != nil {
		return GenerationConfig{}, err
	}
	return parseGenerationConfig(path, data)
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("%s: larger than %d bytes, not a model config", path, maxConfigSize)
	}
	return b, nil
}

// rawConfig is config.json; pointers tell absent from zero.
type rawConfig struct {
	Architectures      []string        `json:"architectures"`
	ModelType          string          `json:"model_type"`
	NameOrPath         string          `json:"_name_or_path"`
	Hidden             *int            `json:"hidden_size"`
	Layers             *int            `json:"num_hidden_layers"`
	Heads              *int            `json:"num_attention_heads"`
	KVHeads            *int            `json:"num_key_value_heads"`
	HeadDim            *int            `json:"head_dim"`
	Intermediate       *int            `json:"intermediate_size"`
	Vocab              *int            `json:"vocab_size"`
	RMSNormEps         *float64        `json:"rms_norm_eps"`
	RopeTheta          *float64        `json:"rope_theta"`
	RopeParameters     json.RawMessage `json:"rope_parameters"`
	RopeScaling        json.RawMessage `json:"rope_scaling"`
	SlidingWindow      *int            `json:"sliding_window"`
	MaxPositions       *int            `json:"max_position_embeddings"`
	TieEmbeddings      bool            `json:"tie_word_embeddings"`
	BOS                *int            `json:"bos_token_id"`
	EOS                json.RawMessage `json:"eos_token_id"`
	HiddenAct          string          `json:"hidden_act"`
	AttentionBias      bool            `json:"attention_bias"`
	MLPBias            bool            `json:"mlp_bias"`
	QuantizationConfig json.RawMessage `json:"quantization_config"`
}

// rope is rope_parameters (transformers 5) or rope_scaling (older).
type rope struct {
	Theta    *float64 `json:"rope_theta"`
	RopeType *string  `json:"rope_type"`
	Type     *string  `json:"type"`
}

var architectures = map[string]string{
	"MistralForCausalLM": "mistral",
	"LlamaForCausalLM":   "llama",
}

// hasKey reports whether the JSON object data has the top-level key (null
// or not), which transformers tells apart from an absent key.
func hasKey(data []byte, key string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return false
	}
	_, ok := m[key]
	return ok
}

func isNull(m json.RawMessage) bool {
	t := bytes.TrimSpace(m)
	return len(t) == 0 || string(t) == "null"
}

func parseConfig(path string, data []byte, qpath string, qdata []byte) (Config, error) {
	fail := func(format string, a ...any) (Config, error) {
		return Config{}, fmt.Errorf("%s: "+format, append([]any{path}, a...)...)
	}
	var r rawConfig
	if err := json.Unmarshal(data, &r); err != nil {
		return fail("not a valid model config: %v", err)
	}
	c := Config{NameOrPath: r.NameOrPath, TieEmbeddings: r.TieEmbeddings}

	// Architecture: architectures names it; model_type must agree.
	switch len(r.Architectures) {
	case 0:
		for a, mt := range architectures {
			if r.ModelType == mt {
				c.Architecture = a
			}
		}
		if c.Architecture == "" {
			return fail("unsupported model_type %q and no architectures (Brief runs MistralForCausalLM and LlamaForCausalLM)", r.ModelType)
		}
	case 1:
		c.Architecture = r.Architectures[0]
		mt, ok := architectures[c.Architecture]
		if !ok {
			return fail("unsupported architecture %q (Brief runs MistralForCausalLM and LlamaForCausalLM)", c.Architecture)
		}
		if r.ModelType != "" && r.ModelType != mt {
			return fail("architecture %s does not match model_type %q (want %q)", c.Architecture, r.ModelType, mt)
		}
	default:
		return fail("architectures %q: expected exactly one of MistralForCausalLM or LlamaForCausalLM", r.Architectures)
	}
	if r.HiddenAct != "" && r.HiddenAct != "silu" {
		return fail("hidden_act %q is not supported (only silu)", r.HiddenAct)
	}
	if r.AttentionBias || r.MLPBias {
		return fail("attention_bias/mlp_bias are not supported (Llama/Mistral checkpoints have no biases)")
	}

	// Sizes.
	req := func(p *int, name string, max int, dst *int) error {
		if p == nil {
			return fmt.Errorf("%s: %s is missing", path, name)
		}
		if *p <= 0 || *p > max {
			return fmt.Errorf("%s: %s = %d is out of range (1..%d)", path, name, *p, max)
		}
		*dst = *p
		return nil
	}
	for _, f := range []struct {
		p    *int
		name string
		max  int
		dst  *int
	}{
		{r.Hidden, "hidden_size", maxHidden, &c.Hidden},
		{r.Layers, "num_hidden_layers", maxLayers, &c.Layers},
		{r.Heads, "num_attention_heads", maxHeads, &c.Heads},
		{r.Intermediate, "intermediate_size", maxIntermediate, &c.Intermediate},
		{r.Vocab, "vocab_size", maxVocab, &c.Vocab},
	} {
		if err := req(f.p, f.name, f.max, f.dst); err != nil {
			return Config{}, err
		}
	}
	// Absent keys take transformers' defaults for the architecture, so that
	// we run the network transformers would build from the same file.
	mistral := c.Architecture == "MistralForCausalLM"
	c.MaxPositions = 2048
	if mistral {
		c.MaxPositions = 4096 * 32
	}
	if r.MaxPositions != nil {
		if err := req(r.MaxPositions, "max_position_embeddings", maxPositions, &c.MaxPositions); err != nil {
			return Config{}, err
		}
	}
	c.KVHeads = c.Heads
	if mistral && !hasKey(data, "num_key_value_heads") {
		c.KVHeads = 8 // MistralConfig's default; an explicit null means heads
	}
	if r.KVHeads != nil {
		if err := req(r.KVHeads, "num_key_value_heads", maxHeads, &c.KVHeads); err != nil {
			return Config{}, err
		}
	}
	if c.Heads%c.KVHeads != 0 {
		return fail("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.Heads, c.KVHeads)
	}
	if r.HeadDim != nil {
		if err := req(r.HeadDim, "head_dim", maxHeadDim, &c.HeadDim); err != nil {
			return Config{}, err
		}
	} else {
		if c.Hidden%c.Heads != 0 {
			return fail("hidden_size %d is not a multiple of num_attention_heads %d and head_dim is not given", c.Hidden, c.Heads)
		}
		c.HeadDim = c.Hidden / c.Heads
		if c.HeadDim > maxHeadDim {
			return fail("head dimension %d is out of range (1..%d)", c.HeadDim, maxHeadDim)
		}
	}
	if c.HeadDim%2 != 0 {
		return fail("head_dim %d must be even for rotary embeddings", c.HeadDim)
	}
	c.RMSNormEps = 1e-6 // transformers' default for both
	if r.RMSNormEps != nil {
		c.RMSNormEps = *r.RMSNormEps
	}
	if e := c.RMSNormEps; !(e > 0 && e < 1) {
		return fail("rms_norm_eps = %v is out of range (0..1)", e)
	}

	// RoPE.
	theta := r.RopeTheta
	for _, src := range []struct {
		name string
		raw  json.RawMessage
	}{{"rope_parameters", r.RopeParameters}, {"rope_scaling", r.RopeScaling}} {
		if isNull(src.raw) {
			continue
		}
		var rp rope
		if err := json.Unmarshal(src.raw, &rp); err != nil {
			return fail("%s: %v", src.name, err)
		}
		for _, ty := range []*string{rp.RopeType, rp.Type} {
			if ty != nil && *ty != "default" {
				return fail("%s: RoPE type %q is not supported (only default RoPE)", src.name, *ty)
			}
		}
		if rp.Theta != nil {
			theta = rp.Theta
		}
	}
	if theta == nil {
		c.RopeTheta = 10000 // transformers' default for Llama and Mistral
	} else {
		c.RopeTheta = *theta
	}
	if !(c.RopeTheta > 1 && c.RopeTheta < 1e12) {
		return fail("rope_theta = %v is out of range", c.RopeTheta)
	}

	// Sliding window: Mistral only. An explicit null means none; an absent
	// key means MistralConfig's default of 4096, as in transformers.
	if mistral {
		if !hasKey(data, "sliding_window") {
			c.SlidingWindow = 4096
		} else if r.SlidingWindow != nil {
			if *r.SlidingWindow < 0 {
				return fail("sliding_window = %d is negative", *r.SlidingWindow)
			}
			c.SlidingWindow = *r.SlidingWindow
		}
	}

	// Special tokens.
	c.BOS = -1
	if r.BOS != nil {
		if *r.BOS < 0 || *r.BOS >= c.Vocab {
			return fail("bos_token_id %d is outside the vocabulary (%d)", *r.BOS, c.Vocab)
		}
		c.BOS = *r.BOS
	}
	eos, err := parseIDs(r.EOS, c.Vocab)
	if err != nil {
		return fail("eos_token_id: %v", err)
	}
	c.EOS = eos

	// Quantization.
	if !isNull(r.QuantizationConfig) {
		c.Quant, err = parseQuant(path, "quantization_config", r.QuantizationConfig, false)
	} else if qdata != nil {
		c.Quant, err = parseQuant(qpath, "", qdata, true)
	} else {
		return fail("not an AWQ checkpoint: no quantization_config and no %s beside it", QuantConfigFile)
	}
	if err != nil {
		return Config{}, err
	}

	// Shapes the AWQ kernels need: every linear's input a multiple of the
	// group, every output a multiple of 8 (one packed int32).
	g := c.Quant.GroupSize
	qDim, kvDim := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	for _, d := range []struct {
		name string
		n    int
	}{{"hidden_size", c.Hidden}, {"num_attention_heads*head_dim", qDim}, {"intermediate_size", c.Intermediate}} {
		if d.n%g != 0 {
			return fail("%s %d is not a multiple of the AWQ group size %d", d.name, d.n, g)
		}
	}
	if kvDim%8 != 0 {
		return fail("num_key_value_heads*head_dim %d is not a multiple of 8 (AWQ packs 8 columns per int32)", kvDim)
	}
	return c, nil
}

// parseIDs reads a token id or list of ids (absent or null: none).
func parseIDs(raw json.RawMessage, vocab int) ([]int, error) {
	if isNull(raw) {
		return nil, nil
	}
	var one int
	var ids []int
	if err := json.Unmarshal(raw, &one); err == nil {
		ids = []int{one}
	} else if err := json.Unmarshal(raw, &ids); err != nil {
		return nil, fmt.Errorf("%s is neither an id nor a list of ids", raw)
	}
	if len(ids) > 1024 {
		return nil, fmt.Errorf("%d ids is too many", len(ids))
	}
	for _, id := range ids {
		if id < 0 || (vocab > 0 && id >= vocab) {
			return nil, fmt.Errorf("id %d is outside the vocabulary (%d)", id, vocab)
		}
	}
	return ids, nil
}

// parseQuant reads config.json's quantization_config (keys quant_method,
// bits, group_size) or quant_config.json (w_bit, q_group_size).
func parseQuant(path, key string, raw []byte, legacy bool) (Quant, error) {
	where := path
	if key != "" {
		where = path + ": " + key
	}
	fail := func(format string, a ...any) (Quant, error) {
		return Quant{}, fmt.Errorf("%s: "+format, append([]any{where}, a...)...)
	}
	var r struct {
		Method     *string         `json:"quant_method"`
		Bits       *int            `json:"bits"`
		WBit       *int            `json:"w_bit"`
		Group      *int            `json:"group_size"`
		QGroup     *int            `json:"q_group_size"`
		ZeroPoint  *bool           `json:"zero_point"`
		Version    *string         `json:"version"`
		NotConvert json.RawMessage `json:"modules_to_not_convert"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fail("not a valid quantization config: %v", err)
	}
	q := Quant{Method: "awq"}
	if r.Method != nil {
		q.Method = strings.ToLower(*r.Method)
	} else if !legacy {
		return fail("quant_method is missing")
	}
	if q.Method != "awq" {
		return fail("quant_method %q is not supported (only 4-bit AWQ)", q.Method)
	}
	bits, group := r.Bits, r.Group
	if bits == nil {
		bits = r.WBit
	}
	if group == nil {
		group = r.QGroup
	}
	if bits == nil {
		return fail("bits (w_bit) is missing")
	}
	if *bits != 4 {
		return fail("%d-bit quantization is not supported (only 4-bit AWQ)", *bits)
	}
	q.Bits = 4
	if group == nil {
		return fail("group_size (q_group_size) is missing")
	}
	switch *group {
	case 32, 64, 128:
		q.GroupSize = *group
	default:
		return fail("group size %d is not supported (32, 64 or 128)", *group)
	}
	if r.ZeroPoint == nil || !*r.ZeroPoint {
		return fail("zero_point must be true (AWQ with zero points)")
	}
	q.ZeroPoint = true
	q.Version = "gemm"
	if r.Version != nil {
		q.Version = strings.ToLower(*r.Version)
	}
	if q.Version != "gemm" {
		return fail("AWQ version %q is not supported (only GEMM packing)", q.Version)
	}
	if !isNull(r.NotConvert) {
		var mods []string
		if err := json.Unmarshal(r.NotConvert, &mods); err != nil || len(mods) > 0 {
			return fail("modules_to_not_convert %s: every linear layer must be quantized", r.NotConvert)
		}
	}
	return q, nil
}

func parseGenerationConfig(path string, data []byte) (GenerationConfig, error) {
	var r struct {
		BOS *int            `json:"bos_token_id"`
		EOS json.RawMessage `json:"eos_token_id"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return GenerationConfig{}, fmt.Errorf("%s: %v", path, err)
	}
	var g GenerationConfig
	if r.BOS != nil {
		if *r.BOS < 0 || *r.BOS > maxVocab {
			return GenerationConfig{}, fmt.Errorf("%s: bos_token_id %d is out of range", path, *r.BOS)
		}
		g.BOS = *r.BOS
	}
	eos, err := parseIDs(r.EOS, maxVocab)
	if err != nil {
		return GenerationConfig{}, fmt.Errorf("%s: eos_token_id: %v", path, err)
	}
	g.EOS = eos
	return g, nil
}
