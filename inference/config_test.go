package inference

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/briefapp/brief/internal/testdata"
)

// mistral is a valid OpenHermes-like config; cases edit a copy of it.
const mistral = `{
  "_name_or_path": "teknium/OpenHermes-2.5-Mistral-7B",
  "architectures": ["MistralForCausalLM"], "model_type": "mistral",
  "bos_token_id": 1, "eos_token_id": 32000, "hidden_act": "silu",
  "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 32768,
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
  "tie_word_embeddings": false, "vocab_size": 32002,
  "quantization_config": {"quant_method": "awq", "zero_point": true, "group_size": 128, "bits": 4, "version": "gemm"}
}`

// edit returns mistral with keys set (nil deletes a key).
func edit(t *testing.T, set map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(mistral), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseConfigOpenHermes(t *testing.T) {
	c, err := parseConfig("config.json", []byte(mistral), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Architecture: "MistralForCausalLM", Hidden: 4096, Layers: 32, Heads: 32, KVHeads: 8, HeadDim: 128,
		Intermediate: 14336, Vocab: 32002, RMSNormEps: 1e-5, RopeTheta: 10000, SlidingWindow: 4096, MaxPositions: 32768,
		BOS: 1, EOS: []int{32000}, Quant: Quant{"awq", 4, 128, true, "gemm"}, NameOrPath: "teknium/OpenHermes-2.5-Mistral-7B"}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

func TestLoadConfigRealFolders(t *testing.T) {
	dir := testdata.Path(t, "openhermes-2.5-mistral-7b-awq")
	c, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Hidden != 4096 || c.SlidingWindow != 4096 || c.Quant.GroupSize != 128 || c.Vocab != 32002 || c.HeadDim != 128 {
		t.Errorf("OpenHermes config: %+v", c)
	}
	g, err := LoadGenerationConfig(dir)
	if err != nil || g.BOS != 1 || !reflect.DeepEqual(g.EOS, []int{32000}) {
		t.Errorf("generation config %+v, %v", g, err)
	}
}

func TestParseConfigVariants(t *testing.T) {
	tests := []struct {
		name  string
		set   map[string]any
		check func(Config) bool
	}{
		{"llama ignores sliding_window", map[string]any{"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama"},
			func(c Config) bool { return c.Architecture == "LlamaForCausalLM" && c.SlidingWindow == 0 }},
		{"null window", map[string]any{"sliding_window": json.RawMessage("null")}, func(c Config) bool { return c.SlidingWindow == 0 }},
		{"absent window is transformers' 4096", map[string]any{"sliding_window": nil}, func(c Config) bool { return c.SlidingWindow == 4096 }},
		{"window 0", map[string]any{"sliding_window": 0}, func(c Config) bool { return c.SlidingWindow == 0 }},
		{"absent eps is 1e-6", map[string]any{"rms_norm_eps": nil}, func(c Config) bool { return c.RMSNormEps == 1e-6 }},
		{"absent positions", map[string]any{"max_position_embeddings": nil}, func(c Config) bool { return c.MaxPositions == 131072 }},
		{"llama absent positions", map[string]any{"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama", "max_position_embeddings": nil},
			func(c Config) bool { return c.MaxPositions == 2048 }},
		{"llama no kv heads", map[string]any{"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama", "num_key_value_heads": nil},
			func(c Config) bool { return c.KVHeads == 32 }},
		{"null kv heads", map[string]any{"num_key_value_heads": json.RawMessage("null")}, func(c Config) bool { return c.KVHeads == 32 }},
		{"rope_parameters", map[string]any{"rope_theta": nil, "rope_parameters": map[string]any{"rope_theta": 1e6, "rope_type": "default"}},
			func(c Config) bool { return c.RopeTheta == 1e6 }},
		{"rope_parameters wins", map[string]any{"rope_theta": 5.0, "rope_parameters": map[string]any{"rope_theta": 500000.0}},
			func(c Config) bool { return c.RopeTheta == 500000 }},
		{"default rope_scaling", map[string]any{"rope_scaling": map[string]any{"type": "default"}}, func(c Config) bool { return c.RopeTheta == 10000 }},
		{"no theta", map[string]any{"rope_theta": nil}, func(c Config) bool { return c.RopeTheta == 10000 }},
		{"head_dim given", map[string]any{"head_dim": 64, "num_attention_heads": 16, "num_key_value_heads": 4},
			func(c Config) bool { return c.HeadDim == 64 && c.Heads == 16 }},
		{"eos list", map[string]any{"eos_token_id": []int{2, 32000}}, func(c Config) bool { return reflect.DeepEqual(c.EOS, []int{2, 32000}) }},
		{"no bos", map[string]any{"bos_token_id": nil}, func(c Config) bool { return c.BOS == -1 }},
		{"mistral no kv heads is transformers' 8", map[string]any{"num_key_value_heads": nil}, func(c Config) bool { return c.KVHeads == 8 }},
		{"group 32", map[string]any{"quantization_config": map[string]any{"quant_method": "AWQ", "zero_point": true, "group_size": 32, "bits": 4, "version": "GEMM"}},
			func(c Config) bool { return c.Quant.GroupSize == 32 }},
		{"tied", map[string]any{"tie_word_embeddings": true}, func(c Config) bool { return c.TieEmbeddings }},
		{"model_type only", map[string]any{"architectures": nil}, func(c Config) bool { return c.Architecture == "MistralForCausalLM" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig("config.json", edit(t, tt.set), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("config %+v", c)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	awq := func(kv ...any) map[string]any {
		q := map[string]any{"quant_method": "awq", "zero_point": true, "group_size": 128, "bits": 4, "version": "gemm"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(q, kv[i].(string))
			} else {
				q[kv[i].(string)] = kv[i+1]
			}
		}
		return map[string]any{"quantization_config": q}
	}
	tests := []struct {
		name string
		set  map[string]any
		want string
	}{
		{"unknown architecture", map[string]any{"architectures": []string{"Qwen2ForCausalLM"}, "model_type": "qwen2"}, `unsupported architecture "Qwen2ForCausalLM"`},
		{"mismatched model_type", map[string]any{"model_type": "llama"}, `does not match model_type "llama"`},
		{"unknown model_type", map[string]any{"architectures": nil, "model_type": "gpt2"}, `unsupported model_type "gpt2"`},
		{"two architectures", map[string]any{"architectures": []string{"MistralForCausalLM", "LlamaForCausalLM"}}, "exactly one"},
		{"rope yarn", map[string]any{"rope_parameters": map[string]any{"rope_theta": 1e4, "rope_type": "yarn"}}, `rope_parameters: RoPE type "yarn" is not supported`},
		{"rope_scaling linear", map[string]any{"rope_scaling": map[string]any{"type": "linear", "factor": 2}}, `rope_scaling: RoPE type "linear"`},
		{"rope_scaling llama3", map[string]any{"rope_scaling": map[string]any{"rope_type": "llama3"}}, `RoPE type "llama3"`},
		{"bits 8", awq("bits", 8), "8-bit quantization is not supported"},
		{"group 96", awq("group_size", 96), "group size 96 is not supported"},
		{"gemv", awq("version", "gemv"), `AWQ version "gemv" is not supported`},
		{"no zero point", awq("zero_point", false), "zero_point must be true"},
		{"gptq", awq("quant_method", "gptq"), `quant_method "gptq" is not supported`},
		{"unconverted modules", awq("modules_to_not_convert", []string{"lm_head", "mlp"}), "modules_to_not_convert"},
		{"no quantization", map[string]any{"quantization_config": nil}, "not an AWQ checkpoint"},
		{"missing hidden", map[string]any{"hidden_size": nil}, "hidden_size is missing"},
		{"zero layers", map[string]any{"num_hidden_layers": 0}, "num_hidden_layers = 0 is out of range"},
		{"huge vocab", map[string]any{"vocab_size": 1 << 40}, "vocab_size = 1099511627776 is out of range"},
		{"huge positions", map[string]any{"max_position_embeddings": 1 << 30}, "max_position_embeddings"},
		{"negative hidden", map[string]any{"hidden_size": -4096}, "hidden_size = -4096"},
		{"gqa mismatch", map[string]any{"num_key_value_heads": 5}, "not a multiple of num_key_value_heads 5"},
		{"hidden not divisible by heads", map[string]any{"hidden_size": 4100}, "not a multiple of num_attention_heads"},
		{"odd head dim", map[string]any{"head_dim": 127}, "must be even"},
		{"intermediate vs group", map[string]any{"intermediate_size": 14300}, "intermediate_size 14300 is not a multiple of the AWQ group size 128"},
		{"bad eps", map[string]any{"rms_norm_eps": 0}, "rms_norm_eps = 0"},
		{"bad theta", map[string]any{"rope_theta": -1}, "rope_theta = -1"},
		{"eos outside vocab", map[string]any{"eos_token_id": 40000}, "eos_token_id: id 40000 is outside the vocabulary"},
		{"bos outside vocab", map[string]any{"bos_token_id": -3}, "bos_token_id -3"},
		{"eos string", map[string]any{"eos_token_id": "</s>"}, "neither an id nor a list"},
		{"gelu", map[string]any{"hidden_act": "gelu"}, `hidden_act "gelu"`},
		{"biases", map[string]any{"attention_bias": true}, "attention_bias"},
		{"negative window", map[string]any{"sliding_window": -1}, "sliding_window = -1"},
		{"string size", map[string]any{"hidden_size": "4096"}, "not a valid model config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("/m/config.json", edit(t, tt.set), "/m/quant_config.json", nil)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), "/m/config.json: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q: want the file and %q", err, tt.want)
			}
		})
	}
	if _, err := parseConfig("/m/config.json", []byte("{"), "", nil); err == nil || !strings.Contains(err.Error(), "/m/config.json: not a valid model config") {
		t.Errorf("bad JSON: %v", err)
	}
}

func TestQuantConfigFile(t *testing.T) {
	base := edit(t, map[string]any{"quantization_config": nil})
	tests := []struct {
		quant, want string
		group       int
	}{
		{`{"zero_point": true, "q_group_size": 64, "w_bit": 4, "version": "GEMM"}`, "", 64},
		{`{"zero_point": true, "q_group_size": 128, "w_bit": 3, "version": "GEMM"}`, "3-bit quantization is not supported", 0},
		{`{"zero_point": true, "q_group_size": 100, "w_bit": 4, "version": "GEMM"}`, "group size 100 is not supported", 0},
		{`{"zero_point": true, "q_group_size": 128, "w_bit": 4, "version": "marlin"}`, `AWQ version "marlin"`, 0},
		{`{"q_group_size": 128, "w_bit": 4}`, "zero_point must be true", 0},
		{`[1]`, "not a valid quantization config", 0},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, ConfigFile), base, 0o644)
		os.WriteFile(filepath.Join(dir, QuantConfigFile), []byte(tt.quant), 0o644)
		c, err := LoadConfig(dir)
		if tt.want == "" {
			if err != nil || c.Quant.GroupSize != tt.group {
				t.Errorf("%s: %+v, %v", tt.quant, c.Quant, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, QuantConfigFile)+": ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want the file and %q", tt.quant, err, tt.want)
		}
	}
}

// TestQuantizationConfigWins: config.json's quantization_config is used and
// a stale quant_config.json beside it is not even read.
func TestQuantizationConfigWins(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ConfigFile), []byte(mistral), 0o644)
	os.WriteFile(filepath.Join(dir, QuantConfigFile), []byte(`{"w_bit": 8`), 0o644)
	c, err := LoadConfig(dir)
	if err != nil || c.Quant.GroupSize != 128 {
		t.Errorf("%+v, %v", c.Quant, err)
	}
}

func TestLoadConfigFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("missing config.json: %v", err)
	}
	big := make([]byte, maxConfigSize+10)
	os.WriteFile(filepath.Join(dir, ConfigFile), big, 0o644)
	if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge config.json: %v", err)
	}
	if g, err := LoadGenerationConfig(dir); err != nil || g.BOS != 0 || g.EOS != nil {
		t.Errorf("absent generation config: %+v, %v", g, err)
	}
	for _, tt := range []struct {
		text string
		want GenerationConfig
		err  string
	}{
		{`{"bos_token_id": 1, "eos_token_id": [32000, 2]}`, GenerationConfig{1, []int{32000, 2}}, ""},
		{`{"eos_token_id": 7}`, GenerationConfig{0, []int{7}}, ""},
		{`{"eos_token_id": -1}`, GenerationConfig{}, "eos_token_id: id -1"},
		{`{"bos_token_id": "x"}`, GenerationConfig{}, "generation_config.json: "},
	} {
		os.WriteFile(filepath.Join(dir, GenerationConfigFile), []byte(tt.text), 0o644)
		g, err := LoadGenerationConfig(dir)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err %v, want %q", tt.text, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(g, tt.want) {
			t.Errorf("%s: %+v, %v", tt.text, g, err)
		}
	}
}

// FuzzConfig feeds arbitrary bytes as config.json and quant_config.json: no
// panic, and any config accepted satisfies the invariants engines rely on.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(mistral), []byte(nil))
	f.Add([]byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":64,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":64,"vocab_size":10,"max_position_embeddings":8,"rms_norm_eps":1e-6,"rope_parameters":{"rope_theta":1e4,"rope_type":"default"},"eos_token_id":[1,2]}`),
		[]byte(`{"zero_point": true, "q_group_size": 32, "w_bit": 4, "version": "GEMM"}`))
	f.Add([]byte(`{"rope_scaling":{"type":"yarn"}}`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, cfg, quant []byte) {
		c, err := parseConfig("config.json", cfg, "quant_config.json", quant)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config.json: ") && !strings.HasPrefix(err.Error(), "quant_config.json: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		g := c.Quant.GroupSize
		if c.Hidden <= 0 || c.Hidden > maxHidden || c.Layers <= 0 || c.Layers > maxLayers || c.Vocab <= 0 || c.Vocab > maxVocab ||
			c.Heads%c.KVHeads != 0 || c.HeadDim%2 != 0 || c.HeadDim <= 0 || c.Intermediate%g != 0 || c.Hidden%g != 0 ||
			c.Heads*c.HeadDim%g != 0 || c.KVHeads*c.HeadDim%8 != 0 || c.Quant.Bits != 4 || c.SlidingWindow < 0 || c.MaxPositions <= 0 {
			t.Fatalf("accepted an inconsistent config: %+v", c)
		}
		for _, id := range c.EOS {
			if id < 0 || id >= c.Vocab {
				t.Fatalf("EOS %d outside vocab %d", id, c.Vocab)
			}
		}
		parseGenerationConfig("generation_config.json", cfg)
	})
}
