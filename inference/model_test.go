package inference

import (
	"testing"

	"github.com/briefapp/brief/internal/testdata"
)

func TestOpenStories260K(t *testing.T) {
	dir := testdata.Path(t, "stories260k-awq")
	m, err := OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := m.Config
	want := Config{Architecture: "LlamaForCausalLM", Hidden: 64, Layers: 5, Heads: 8, KVHeads: 4, HeadDim: 8,
		Intermediate: 192, Vocab: 512, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositions: 512, BOS: 1,
		Quant: Quant{Method: "awq", Bits: 4, GroupSize: 64, ZeroPoint: true, Version: "gemm"}}
	if c.Architecture != want.Architecture || c.Hidden != want.Hidden || c.Layers != want.Layers || c.Heads != want.Heads ||
		c.KVHeads != want.KVHeads || c.HeadDim != want.HeadDim || c.Intermediate != want.Intermediate || c.Vocab != want.Vocab ||
		c.RMSNormEps != want.RMSNormEps || c.RopeTheta != want.RopeTheta || c.SlidingWindow != 0 || c.MaxPositions != want.MaxPositions ||
		c.BOS != 1 || len(c.EOS) != 1 || c.EOS[0] != 2 || c.Quant != want.Quant || c.TieEmbeddings {
		t.Errorf("config = %+v", c)
	}
	if m.BOS() != 1 || len(m.EOS()) != 1 || m.EOS()[0] != 2 {
		t.Errorf("BOS %d EOS %v", m.BOS(), m.EOS())
	}
	if m.Name() != "stories260k-awq" {
		t.Errorf("Name() = %q", m.Name())
	}
	w := m.Weights
	if len(w.Layers) != 5 || len(w.Embed.Data) != 512*64 || len(w.LMHead.Data) != 512*64 || len(w.Norm.Data) != 64 {
		t.Fatalf("weights: %d layers, embed %d, head %d, norm %d", len(w.Layers), len(w.Embed.Data), len(w.LMHead.Data), len(w.Norm.Data))
	}
	down := w.Layers[4].Down
	if down.In != 192 || down.Out != 64 || len(down.QWeight) != 192*8 || len(down.QZeros) != 3*8 || len(down.Scales) != 3*64 {
		t.Errorf("down = %d x %d, %d %d %d", down.In, down.Out, len(down.QWeight), len(down.QZeros), len(down.Scales))
	}
	// The weights are a trained model's: dequantized they are finite, not all
	// zero, and of a trained network's magnitude.
	d := DequantizeAWQ(w.Layers[0].Q)
	var sum, nz float64
	for _, x := range d {
		sum += float64(x * x)
		if x != 0 {
			nz++
		}
	}
	if nz < float64(len(d))/2 || sum/float64(len(d)) > 10 {
		t.Errorf("layer 0 q_proj: %v nonzero of %d, mean square %v", nz, len(d), sum/float64(len(d)))
	}
	var size int64 = 2 * (512*64*2 + 64 + 5*64*2)
	for _, l := range w.Layers {
		for _, a := range []AWQLinear{l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down} {
			size += int64(4*len(a.QWeight) + 4*len(a.QZeros) + 2*len(a.Scales))
		}
	}
	if m.SizeBytes() != size {
		t.Errorf("SizeBytes() = %d, want %d", m.SizeBytes(), size)
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}
