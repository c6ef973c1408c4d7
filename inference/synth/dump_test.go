package synth

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/briefapp/brief/inference"
)

// TestDumpForPython writes a tiny checkpoint and the loader's dequantized
// layer-0 q_proj into $BRIEF_AWQ_DUMP, for testdata/awq_check.py to compare
// with an independent unpacking by the safetensors Python package (run by
// hand on a machine with torch; see that script).
func TestDumpForPython(t *testing.T) {
	dir := os.Getenv("BRIEF_AWQ_DUMP")
	if dir == "" {
		t.Skip("set BRIEF_AWQ_DUMP=DIR to write a checkpoint for testdata/awq_check.py")
	}
	if _, err := Write(dir, Shapes["tiny"], Options{Seed: 5}); err != nil {
		t.Fatal(err)
	}
	m, err := inference.OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for name, l := range map[string]inference.AWQLinear{
		"model.layers.0.self_attn.q_proj": m.Weights.Layers[0].Q,
		"model.layers.1.mlp.down_proj":    m.Weights.Layers[1].Down,
	} {
		w := inference.DequantizeAWQ(l)
		b := make([]byte, 4*len(w))
		for i, v := range w {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		if err := os.WriteFile(filepath.Join(dir, name+".dequant.f32"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
