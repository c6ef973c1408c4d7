package synth

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/briefapp/brief/inference"
	"github.com/briefapp/brief/inference/f16"
	"github.com/briefapp/brief/inference/safetensors"
)

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// TestRoundTrip writes checkpoints and checks that the loader unpacks exactly
// the weights the generator drew (computed here without any packing).
func TestRoundTrip(t *testing.T) {
	wide := Shapes["llama-tiny"]
	wide.Hidden, wide.Layers, wide.Intermediate = 256, 1, 33024 // up_proj spans two random streams
	for _, tc := range []struct {
		name  string
		shape Shape
	}{{"tiny", Shapes["tiny"]}, {"llama-tiny", Shapes["llama-tiny"]}, {"wide", wide}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			const seed = 7
			size, err := Write(dir, tc.shape, Options{Seed: seed, Workers: 3})
			if err != nil {
				t.Fatal(err)
			}
			m, err := inference.OpenModel(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if st, _ := os.Stat(filepath.Join(dir, "model.safetensors")); st.Size() != size {
				t.Errorf("Write returned %d, file has %d bytes", size, st.Size())
			}
			c := m.Config
			s := tc.shape
			if c.Hidden != s.Hidden || c.Layers != s.Layers || c.Heads != s.Heads || c.KVHeads != s.KVHeads || c.HeadDim != s.HeadDim ||
				c.Intermediate != s.Intermediate || c.Vocab != s.Vocab || c.SlidingWindow != s.SlidingWindow || c.Quant.GroupSize != s.GroupSize ||
				c.Architecture != s.Architecture {
				t.Fatalf("config %+v does not match shape %+v", c, s)
			}
			last := m.Weights.Layers[s.Layers-1]
			for _, l := range []struct {
				name string
				lin  inference.AWQLinear
			}{
				{"model.layers.0.self_attn.q_proj", m.Weights.Layers[0].Q},
				{"model.layers.0.self_attn.k_proj", m.Weights.Layers[0].K},
				{"model.layers.0.self_attn.o_proj", m.Weights.Layers[0].O},
				{"model.layers.0.mlp.up_proj", m.Weights.Layers[0].Up},
				{fmt.Sprintf("model.layers.%d.mlp.down_proj", s.Layers-1), last.Down},
			} {
				q, z, sc := LinearValues(seed, l.name, l.lin.In, l.lin.Out, l.lin.GroupSize)
				got := inference.DequantizeAWQ(l.lin)
				for i := 0; i < l.lin.In; i++ {
					for j := 0; j < l.lin.Out; j++ {
						g := i / l.lin.GroupSize
						want := float32(int(q[i*l.lin.Out+j])-int(z[g*l.lin.Out+j])) * f16.HalfToFloat32(sc[g*l.lin.Out+j])
						if got[i*l.lin.Out+j] != want {
							t.Fatalf("%s[%d][%d] = %v, generator drew %v", l.name, i, j, got[i*l.lin.Out+j], want)
						}
					}
				}
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	if _, err := Write(a, Shapes["tiny"], Options{Seed: 1, Workers: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(b, Shapes["tiny"], Options{Seed: 1, Workers: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(c, Shapes["tiny"], Options{Seed: 2, Workers: 5}); err != nil {
		t.Fatal(err)
	}
	ha, hb, hc := fileHash(t, filepath.Join(a, "model.safetensors")), fileHash(t, filepath.Join(b, "model.safetensors")), fileHash(t, filepath.Join(c, "model.safetensors"))
	if ha != hb {
		t.Error("the same seed gave different files with 1 and 5 workers")
	}
	if ha == hc {
		t.Error("seeds 1 and 2 gave the same file")
	}
	for _, name := range []string{"config.json", "tokenizer.json", "generation_config.json"} {
		x, _ := os.ReadFile(filepath.Join(a, name))
		y, _ := os.ReadFile(filepath.Join(b, name))
		if len(x) == 0 || string(x) != string(y) {
			t.Errorf("%s differs or is empty", name)
		}
	}
}

func rms(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s / float64(len(v)))
}

// matvec returns x W for W row-major [len(x)][out].
func matvec(x, w []float32, out int) []float32 {
	y := make([]float32, out)
	for i, xi := range x {
		row := w[i*out : (i+1)*out]
		for j := range y {
			y[j] += xi * row[j]
		}
	}
	return y
}

// TestMagnitudes checks the claims of random.go on a written checkpoint:
// each linear keeps an input of RMS 1 near RMS 1, norm weights are near 1,
// logits spread with a standard deviation near 4, and EOS logits are zero.
func TestMagnitudes(t *testing.T) {
	dir := t.TempDir()
	s := Shapes["tiny"]
	s.Hidden, s.Intermediate, s.Heads, s.KVHeads, s.HeadDim = 512, 1536, 8, 2, 64
	if _, err := Write(dir, s, Options{Seed: 3}); err != nil {
		t.Fatal(err)
	}
	m, err := inference.OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	r := stream(99, "input", 0)
	for _, l := range []inference.AWQLinear{m.Weights.Layers[0].Q, m.Weights.Layers[1].Gate, m.Weights.Layers[1].Down, m.Weights.Layers[0].O} {
		x := make([]float32, l.In)
		for i := range x {
			x[i] = r.normal()
		}
		got := rms(matvec(x, inference.DequantizeAWQ(l), l.Out)) / rms(x)
		t.Logf("%dx%d linear: output RMS / input RMS = %.3f", l.In, l.Out, got)
		if got < 0.85 || got > 1.15 {
			t.Errorf("%dx%d linear scales RMS by %.3f, want about 1", l.In, l.Out, got)
		}
	}
	norm := inference.DequantizeDense(m.Weights.Layers[0].AttnNorm)
	for _, v := range norm {
		if v < 0.89 || v > 1.11 {
			t.Fatalf("norm weight %v, want 1 +- 0.1", v)
		}
	}
	if e := rms(inference.DequantizeDense(m.Weights.Embed)); e < 0.95 || e > 1.05 {
		t.Errorf("embedding RMS %.3f, want about 1", e)
	}
	h := make([]float32, s.Hidden)
	for i := range h {
		h[i] = r.normal()
	}
	head := inference.DequantizeDense(m.Weights.LMHead)
	logits := make([]float32, s.Vocab)
	for v := range logits {
		for k, x := range h {
			logits[v] += x * head[v*s.Hidden+k]
		}
	}
	t.Logf("logit standard deviation %.2f, max %.2f", rms(logits), slices.Max(logits))
	if sd := rms(logits); sd < 3.5 || sd > 4.5 {
		t.Errorf("logit standard deviation %.2f, want about 4", sd)
	}
	for _, id := range m.EOS() {
		if logits[id] != 0 {
			t.Errorf("EOS %d logit %v, want 0", id, logits[id])
		}
	}
}

func TestShapeCheck(t *testing.T) {
	mod := func(f func(*Shape)) Shape {
		s := Shapes["tiny"]
		f(&s)
		return s
	}
	tests := []struct {
		s    Shape
		want string
	}{
		{mod(func(s *Shape) { s.Architecture = "GPT2" }), "architecture"},
		{mod(func(s *Shape) { s.GroupSize = 96 }), "group size 96"},
		{mod(func(s *Shape) { s.KVHeads = 3 }), "not a multiple of kv-heads"},
		{mod(func(s *Shape) { s.Hidden = 100 }), "hidden 100 is not a multiple"},
		{mod(func(s *Shape) { s.Vocab = 100 }), "smaller than the OpenHermes tokenizer"},
		{mod(func(s *Shape) { s.Layers = 0 }), "layers = 0"},
		{mod(func(s *Shape) { s.Architecture = "LlamaForCausalLM" }), "0 for Llama"},
	}
	for _, tt := range tests {
		if _, err := Write(t.TempDir(), tt.s, Options{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v, want %q", tt.s, err, tt.want)
		}
	}
	for _, n := range ShapeNames() {
		if err := Shapes[n].Check(); err != nil {
			t.Errorf("shape %s: %v", n, err)
		}
	}
}

// BenchmarkFill measures generating one chunk of each kind of tensor
// (bytes/s is what a core can produce before the disk).
func BenchmarkFill(b *testing.B) {
	for _, tc := range []struct {
		name string
		t    *tensor
	}{
		{"qweight", &tensor{spec: specOf("q", "I32", 4096, 1792), kind: kQWeight}},
		{"embed", &tensor{spec: specOf("e", "F16", 32002, 4096), kind: kEmbed, param: 1}},
		{"scales", &tensor{spec: specOf("s", "F16", 32, 14336), kind: kScales, param: 0.003}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			buf := make([]byte, 4*chunkElems)
			b.SetBytes(int64(tc.t.fill(1, 0, buf)))
			for i := 0; i < b.N; i++ {
				tc.t.fill(uint64(i), 0, buf)
			}
		})
	}
}

func specOf(name, dt string, shape ...int) safetensors.Spec {
	return safetensors.Spec{Name: name, DType: safetensors.DType(dt), Shape: shape}
}

func TestPackAWQ(t *testing.T) {
	r := stream(5, "pack", 0)
	for i := 0; i < 100000; i++ {
		l := uint32(r.next())
		var want uint32
		for k, o := range inference.AWQOrder {
			want |= (l >> (4 * o) & 15) << (4 * k)
		}
		if got := packAWQ(l); got != want {
			t.Fatalf("packAWQ(%#08x) = %#08x, want %#08x", l, got, want)
		}
	}
	if got := packAWQ(0x76543210); got != 0x75316420 {
		t.Errorf("packAWQ(0x76543210) = %#08x, want 0x75316420", got)
	}
}

func TestRefusesForeignFolders(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"real model", map[string]string{"config.json": `{"architectures":["MistralForCausalLM"]}`}, "did not write"},
		{"shards", map[string]string{"model-00001-of-00002.safetensors": ""}, "holds model-00001-of-00002.safetensors"},
		{"index", map[string]string{"model.safetensors.index.json": "{}"}, "sharded checkpoint"},
		{"weights without config", map[string]string{"model.safetensors": "x"}, "without a config"},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		for n, c := range tt.files {
			os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644)
		}
		if _, err := Write(dir, Shapes["llama-tiny"], Options{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "config.json")); tt.files["config.json"] != "" && string(b) != tt.files["config.json"] {
			t.Errorf("%s: config.json was overwritten", tt.name)
		}
	}
	// A folder synth wrote may be rewritten.
	dir := t.TempDir()
	for _, seed := range []uint64{1, 2} {
		if _, err := Write(dir, Shapes["llama-tiny"], Options{Seed: seed}); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}
