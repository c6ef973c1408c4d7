package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/briefapp/brief/inference/synth"
)

func init() {
	register("synth", "write a synthetic AWQ checkpoint (random weights, OpenHermes tokenizer)", runSynth)
}

func runSynth(args []string) error {
	fs := flag.NewFlagSet("synth", flag.ContinueOnError)
	out := fs.String("out", "", "folder to write (created if needed)")
	seed := fs.Uint64("seed", 1, "random seed; the same seed and shape give the same bytes")
	shapeName := fs.String("shape", "openhermes", "shape: "+strings.Join(synth.ShapeNames(), ", "))
	workers := fs.Int("workers", 0, "goroutines generating weights (0: all cores)")
	allowEOS := fs.Bool("allow-eos", false, "keep random lm_head rows for the EOS ids (by default zero, so generation runs to max new tokens)")
	arch := fs.String("arch", "", "override the architecture: mistral or llama")
	layers := fs.Int("layers", 0, "override num_hidden_layers")
	hidden := fs.Int("hidden", 0, "override hidden_size")
	heads := fs.Int("heads", 0, "override num_attention_heads")
	kvHeads := fs.Int("kv-heads", 0, "override num_key_value_heads")
	headDim := fs.Int("head-dim", 0, "override head_dim")
	inter := fs.Int("intermediate", 0, "override intermediate_size")
	window := fs.Int("window", -1, "override sliding_window (0: none)")
	group := fs.Int("group", 0, "override the AWQ group size (32, 64, 128)")
	maxPos := fs.Int("max-positions", 0, "override max_position_embeddings")
	tie := fs.Bool("tie", false, "tie lm_head to the embeddings")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return fmt.Errorf("usage: summarize synth --out DIR [--seed N] [--shape NAME] [overrides]")
	}
	s, ok := synth.Shapes[*shapeName]
	if !ok {
		return fmt.Errorf("unknown shape %q (have %s)", *shapeName, strings.Join(synth.ShapeNames(), ", "))
	}
	switch *arch {
	case "":
	case "mistral":
		s.Architecture = "MistralForCausalLM"
	case "llama":
		s.Architecture, s.SlidingWindow = "LlamaForCausalLM", 0
	default:
		return fmt.Errorf("--arch %q: want mistral or llama", *arch)
	}
	for _, o := range []struct {
		v   int
		dst *int
	}{{*layers, &s.Layers}, {*hidden, &s.Hidden}, {*heads, &s.Heads}, {*kvHeads, &s.KVHeads}, {*headDim, &s.HeadDim},
		{*inter, &s.Intermediate}, {*group, &s.GroupSize}, {*maxPos, &s.MaxPositions}} {
		if o.v != 0 {
			*o.dst = o.v
		}
	}
	if *window >= 0 {
		s.SlidingWindow = *window
	}
	s.TieEmbeddings = s.TieEmbeddings || *tie
	start := time.Now()
	size, err := synth.Write(*out, s, synth.Options{Seed: *seed, Workers: *workers, AllowEOS: *allowEOS})
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(os.Stderr, "wrote %s: %s, %d layers, hidden %d, seed %d: %.2f GB in %.1f s (%.2f GB/s)\n",
		*out, s.Architecture, s.Layers, s.Hidden, *seed, float64(size)/1e9, el.Seconds(), float64(size)/1e9/el.Seconds())
	return nil
}
