package inference_test

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/briefapp/brief/inference"
	"github.com/briefapp/brief/inference/safetensors"
	"github.com/briefapp/brief/inference/synth"
)

var (
	baseOnce sync.Once
	baseDir  string
	baseErr  error
)

// tinyFolder copies a synthetic "tiny" checkpoint (2 layers, hidden 128,
// group 32) into a fresh temporary folder.
func tinyFolder(t *testing.T) string {
	t.Helper()
	baseOnce.Do(func() {
		baseDir, baseErr = os.MkdirTemp("", "brief-tiny-")
		if baseErr == nil {
			_, baseErr = synth.Write(baseDir, synth.Shapes["tiny"], synth.Options{Seed: 1})
		}
	})
	if baseErr != nil {
		t.Fatal(baseErr)
	}
	dir := t.TempDir()
	entries, err := os.ReadDir(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(baseDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if baseDir != "" {
		os.RemoveAll(baseDir)
	}
	os.Exit(code)
}

// tensors reads every tensor of dir/model.safetensors as writable Data.
func tensors(t *testing.T, path string) []safetensors.Data {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []safetensors.Data
	for _, n := range f.Names() {
		tn, _ := f.Tensor(n)
		out = append(out, safetensors.Data{Spec: safetensors.Spec{Name: n, DType: tn.DType, Shape: tn.Shape}, Bytes: slices.Clone(tn.Bytes)})
	}
	return out
}

// rewrite applies edit to the tensors of dir/model.safetensors.
func rewrite(edit func([]safetensors.Data) []safetensors.Data) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, "model.safetensors")
		d := edit(tensors(t, p))
		if err := safetensors.WriteFile(p, d, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func find(d []safetensors.Data, name string) *safetensors.Data {
	for i := range d {
		if d[i].Name == name {
			return &d[i]
		}
	}
	panic("no tensor " + name)
}

// header rewrites the JSON header of dir/model.safetensors, keeping the data.
func header(edit func(map[string]map[string]any)) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, "model.safetensors")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		n := binary.LittleEndian.Uint64(b)
		var h map[string]map[string]any
		if err := json.Unmarshal(b[8:8+n], &h); err != nil {
			t.Fatal(err)
		}
		edit(h)
		nh, _ := json.Marshal(h)
		out := binary.LittleEndian.AppendUint64(nil, uint64(len(nh)))
		out = append(append(out, nh...), b[8+n:]...)
		if err := os.WriteFile(p, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// config rewrites config.json's keys (nil deletes).
func config(set map[string]any) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, "config.json")
		b, _ := os.ReadFile(p)
		var c map[string]any
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		for k, v := range set {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		b, _ = json.Marshal(c)
		os.WriteFile(p, b, 0o644)
	}
}

func TestOpenModelCorrupt(t *testing.T) {
	awq := func(bits, group int) map[string]any {
		return map[string]any{"quantization_config": map[string]any{"quant_method": "awq", "zero_point": true, "group_size": group, "bits": bits, "version": "gemm"}}
	}
	tests := []struct {
		name   string
		break_ func(*testing.T, string)
		file   string // the file the error must name
		want   string
	}{
		{"missing tensor", rewrite(func(d []safetensors.Data) []safetensors.Data {
			return slices.DeleteFunc(d, func(x safetensors.Data) bool { return x.Name == "model.layers.1.mlp.down_proj.qzeros" })
		}), "model.safetensors", `tensor "model.layers.1.mlp.down_proj.qzeros" is missing (I32 [12 16] expected)`},
		{"missing lm_head", rewrite(func(d []safetensors.Data) []safetensors.Data {
			return slices.DeleteFunc(d, func(x safetensors.Data) bool { return x.Name == "lm_head.weight" })
		}), "model.safetensors", `tensor "lm_head.weight" is missing`},
		{"wrong shape", rewrite(func(d []safetensors.Data) []safetensors.Data {
			find(d, "model.layers.0.self_attn.k_proj.scales").Shape = []int{8, 32}
			return d
		}), "model.safetensors", `tensor "model.layers.0.self_attn.k_proj.scales" has shape [8 32], want [4 64]`},
		{"transposed qweight", rewrite(func(d []safetensors.Data) []safetensors.Data {
			find(d, "model.layers.1.self_attn.q_proj.qweight").Shape = []int{16, 128}
			return d
		}), "model.safetensors", `tensor "model.layers.1.self_attn.q_proj.qweight" has shape [16 128], want [128 16]`},
		{"wrong dtype", rewrite(func(d []safetensors.Data) []safetensors.Data {
			find(d, "model.norm.weight").DType = safetensors.BF16
			return d
		}), "model.safetensors", `tensor "model.norm.weight" is BF16, want F16`},
		{"float qweight", rewrite(func(d []safetensors.Data) []safetensors.Data {
			find(d, "model.layers.0.mlp.up_proj.qweight").DType = safetensors.F32
			return d
		}), "model.safetensors", `tensor "model.layers.0.mlp.up_proj.qweight" is F32, want I32`},
		{"bias", rewrite(func(d []safetensors.Data) []safetensors.Data {
			return append(d, safetensors.Data{Spec: safetensors.Spec{Name: "model.layers.0.self_attn.q_proj.bias", DType: safetensors.F16, Shape: []int{1}}, Bytes: []byte{0, 0}})
		}), "model.safetensors", `"model.layers.0.self_attn.q_proj.bias": linear biases are not supported`},
		{"more layers than config", config(map[string]any{"num_hidden_layers": 1}), "model.safetensors", `tensor "model.layers.1.input_layernorm.weight": the config has only 1 layers`},
		{"group mismatch", config(awq(4, 64)), "model.safetensors", `tensor "model.layers.0.self_attn.q_proj.qzeros" has shape [4 16], want [2 16]`},
		{"truncated file", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()-100)
		}, "model.safetensors", "past the end of the file"},
		{"header length past EOF", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			b, _ := os.ReadFile(p)
			binary.LittleEndian.PutUint64(b, uint64(len(b)))
			os.WriteFile(p, b, 0o644)
		}, "model.safetensors", "runs past the end of the file"},
		{"bad header JSON", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			b, _ := os.ReadFile(p)
			b[8] = 'x'
			os.WriteFile(p, b, 0o644)
		}, "model.safetensors", "header is not valid JSON"},
		{"overlapping offsets", header(func(h map[string]map[string]any) {
			h["model.layers.0.post_attention_layernorm.weight"]["data_offsets"] = h["model.layers.0.input_layernorm.weight"]["data_offsets"]
		}), "model.safetensors", `overlap`},
		{"size mismatch", header(func(h map[string]map[string]any) {
			h["model.norm.weight"]["shape"] = []int{129}
		}), "model.safetensors", `tensor "model.norm.weight": data_offsets`},
		{"no weights", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "model.safetensors")) }, "", "no model.safetensors"},
		{"unknown architecture", config(map[string]any{"architectures": []string{"GPTNeoXForCausalLM"}, "model_type": "gpt_neox"}), "config.json", `unsupported architecture "GPTNeoXForCausalLM"`},
		{"rope yarn", config(map[string]any{"rope_parameters": map[string]any{"rope_type": "yarn", "rope_theta": 10000, "factor": 4}}), "config.json", `RoPE type "yarn" is not supported`},
		{"bits 8", config(awq(8, 32)), "config.json", "8-bit quantization is not supported"},
		{"group 96", config(awq(4, 96)), "config.json", "group size 96 is not supported"},
		{"bad config JSON", func(t *testing.T, dir string) { os.WriteFile(filepath.Join(dir, "config.json"), []byte("{"), 0o644) }, "config.json", "not a valid model config"},
		{"generation EOS outside vocab", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"eos_token_id": [2, 32002]}`), 0o644)
		}, "generation_config.json", "token id 32002 is outside the vocabulary (32002)"},
		{"bad generation config", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"eos_token_id": "x"}`), 0o644)
		}, "generation_config.json", "eos_token_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tinyFolder(t)
			tt.break_(t, dir)
			m, err := inference.OpenModel(dir)
			if err == nil {
				m.Close()
				t.Fatalf("OpenModel succeeded, want an error with %q", tt.want)
			}
			prefix := filepath.Join(dir, tt.file)
			if tt.file == "" {
				prefix = dir
			}
			if !strings.HasPrefix(err.Error(), prefix+": ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\nwant it to start with %q and contain %q", err, prefix+": ", tt.want)
			}
		})
	}
}

func TestOpenModelTiedAndSharded(t *testing.T) {
	t.Run("tied", func(t *testing.T) {
		dir := tinyFolder(t)
		rewrite(func(d []safetensors.Data) []safetensors.Data {
			return slices.DeleteFunc(d, func(x safetensors.Data) bool { return x.Name == "lm_head.weight" })
		})(t, dir)
		config(map[string]any{"tie_word_embeddings": true})(t, dir)
		m, err := inference.OpenModel(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		w := m.Weights
		if &w.LMHead.Data[0] != &w.Embed.Data[0] {
			t.Error("tied lm_head is not the embedding")
		}
		if m.SizeBytes() != int64(filepathSize(t, filepath.Join(dir, "model.safetensors")))-headerSize(t, filepath.Join(dir, "model.safetensors")) {
			t.Errorf("SizeBytes() = %d counts the tied embedding twice or misses tensors", m.SizeBytes())
		}
	})
	t.Run("sharded", func(t *testing.T) {
		dir := tinyFolder(t)
		single, err := inference.OpenModel(dir)
		if err != nil {
			t.Fatal(err)
		}
		want := inference.DequantizeAWQ(single.Weights.Layers[1].Down)
		single.Close()
		p := filepath.Join(dir, "model.safetensors")
		d := tensors(t, p)
		os.Remove(p)
		index := map[string]any{"metadata": map[string]any{}, "weight_map": map[string]string{}}
		wm := index["weight_map"].(map[string]string)
		var a, b []safetensors.Data
		for _, x := range d {
			if strings.Contains(x.Name, "layers.1.") {
				b = append(b, x)
				wm[x.Name] = "model-00002-of-00002.safetensors"
			} else {
				a = append(a, x)
				wm[x.Name] = "model-00001-of-00002.safetensors"
			}
		}
		safetensors.WriteFile(filepath.Join(dir, "model-00001-of-00002.safetensors"), a, nil)
		safetensors.WriteFile(filepath.Join(dir, "model-00002-of-00002.safetensors"), b, nil)
		ib, _ := json.Marshal(index)
		os.WriteFile(filepath.Join(dir, safetensors.IndexFile), ib, 0o644)
		m, err := inference.OpenModel(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if !slices.Equal(inference.DequantizeAWQ(m.Weights.Layers[1].Down), want) {
			t.Error("sharded weights differ from the single file's")
		}
		// A shard missing a tensor: the error names the folder.
		os.Remove(filepath.Join(dir, "model-00002-of-00002.safetensors"))
		safetensors.WriteFile(filepath.Join(dir, "model-00002-of-00002.safetensors"), b[1:], nil)
		delete(wm, b[0].Name)
		ib, _ = json.Marshal(index)
		os.WriteFile(filepath.Join(dir, safetensors.IndexFile), ib, 0o644)
		if _, err := inference.OpenModel(dir); err == nil || !strings.Contains(err.Error(), dir+": tensor \""+b[0].Name+"\" is missing") {
			t.Errorf("err = %v", err)
		}
	})
}

func filepathSize(t *testing.T, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func headerSize(t *testing.T, p string) int64 {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return 8 + int64(binary.LittleEndian.Uint64(b))
}
