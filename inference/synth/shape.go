package synth

import (
	"fmt"
	"sort"
)

// Shape is the architecture of a synthetic checkpoint.
type Shape struct {
	Architecture  string // "MistralForCausalLM" or "LlamaForCausalLM"
	Hidden        int
	Layers        int
	Heads         int
	KVHeads       int
	HeadDim       int
	Intermediate  int
	Vocab         int
	SlidingWindow int // 0: none (always 0 for Llama)
	MaxPositions  int
	GroupSize     int
	RopeTheta     float64
	RMSNormEps    float64
	TieEmbeddings bool
}

// Shapes are the named shapes. All use the OpenHermes tokenizer, so their
// vocabulary is its 32,002 ids.
var Shapes = map[string]Shape{
	// The real OpenHermes-2.5-Mistral-7B-AWQ.
	"openhermes": {Architecture: "MistralForCausalLM", Hidden: 4096, Layers: 32, Heads: 32, KVHeads: 8, HeadDim: 128,
		Intermediate: 14336, Vocab: 32002, SlidingWindow: 4096, MaxPositions: 32768, GroupSize: 128, RopeTheta: 10000, RMSNormEps: 1e-5},
	// Mistral-shaped and small, with a window shorter than any real prompt
	// so that window code runs.
	"tiny": {Architecture: "MistralForCausalLM", Hidden: 128, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 32,
		Intermediate: 384, Vocab: 32002, SlidingWindow: 16, MaxPositions: 4096, GroupSize: 32, RopeTheta: 10000, RMSNormEps: 1e-5},
	// Llama-shaped and small: no window, group 64.
	"llama-tiny": {Architecture: "LlamaForCausalLM", Hidden: 128, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 32,
		Intermediate: 256, Vocab: 32002, MaxPositions: 4096, GroupSize: 64, RopeTheta: 10000, RMSNormEps: 1e-5},
	// Mistral-shaped, mid-sized: quick GPU runs with realistic head shapes.
	"small": {Architecture: "MistralForCausalLM", Hidden: 1024, Layers: 4, Heads: 8, KVHeads: 2, HeadDim: 128,
		Intermediate: 3584, Vocab: 32002, SlidingWindow: 256, MaxPositions: 32768, GroupSize: 128, RopeTheta: 10000, RMSNormEps: 1e-5},
}

// ShapeNames lists the named shapes, sorted.
func ShapeNames() []string {
	var n []string
	for k := range Shapes {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Check reports a shape the loader would refuse, before anything is written.
func (s Shape) Check() error {
	switch s.Architecture {
	case "MistralForCausalLM", "LlamaForCausalLM":
	default:
		return fmt.Errorf("architecture %q: want MistralForCausalLM or LlamaForCausalLM", s.Architecture)
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"hidden", s.Hidden}, {"layers", s.Layers}, {"heads", s.Heads}, {"kv-heads", s.KVHeads}, {"head-dim", s.HeadDim},
		{"intermediate", s.Intermediate}, {"vocab", s.Vocab}, {"max-positions", s.MaxPositions}} {
		if v.n <= 0 {
			return fmt.Errorf("%s = %d must be positive", v.name, v.n)
		}
	}
	switch s.GroupSize {
	case 32, 64, 128:
	default:
		return fmt.Errorf("group size %d: want 32, 64 or 128", s.GroupSize)
	}
	if s.Heads%s.KVHeads != 0 {
		return fmt.Errorf("heads %d is not a multiple of kv-heads %d", s.Heads, s.KVHeads)
	}
	if s.HeadDim%2 != 0 {
		return fmt.Errorf("head-dim %d must be even", s.HeadDim)
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"hidden", s.Hidden}, {"heads*head-dim", s.Heads * s.HeadDim}, {"intermediate", s.Intermediate}} {
		if v.n%s.GroupSize != 0 {
			return fmt.Errorf("%s %d is not a multiple of the group size %d", v.name, v.n, s.GroupSize)
		}
	}
	if s.KVHeads*s.HeadDim%8 != 0 {
		return fmt.Errorf("kv-heads*head-dim %d is not a multiple of 8", s.KVHeads*s.HeadDim)
	}
	if s.Vocab < tokenizerVocab {
		return fmt.Errorf("vocab %d is smaller than the OpenHermes tokenizer's %d ids", s.Vocab, tokenizerVocab)
	}
	if s.SlidingWindow < 0 || (s.SlidingWindow > 0 && s.Architecture == "LlamaForCausalLM") {
		return fmt.Errorf("sliding window %d: must be >= 0, and 0 for Llama", s.SlidingWindow)
	}
	return nil
}

// tokenizerVocab is the number of ids of the bundled OpenHermes tokenizer.
const tokenizerVocab = 32002
