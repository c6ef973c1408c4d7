// Command cudarun is the Brief side of tools/hfcompare: it runs a tokenized
// prompt through the CUDA engine and writes what hfcompare.py compares with
// transformers (greedy ids, the prompt's last logits) and the reference
// workload's figures (greedy and prompt lookup).
//
//	cudarun --model DIR --prompt prompt_ids.json --out DIR [--new 128] [--workload 512]
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/briefapp/brief/cuda"
	"github.com/briefapp/brief/inference"
)

func main() {
	model := flag.String("model", "", "model folder")
	promptFile := flag.String("prompt", "", `JSON file {"ids":[...]}`)
	out := flag.String("out", ".", "folder for ours.json and last_logits.f32")
	newTokens := flag.Int("new", 128, "greedy tokens to compare")
	workload := flag.Int("workload", 512, "new tokens of the timed reference runs (0: none)")
	flag.Parse()
	if err := run(*model, *promptFile, *out, *newTokens, *workload); err != nil {
		fmt.Fprintln(os.Stderr, "cudarun:", err)
		os.Exit(1)
	}
}

type runFigures struct {
	Strategy       string  `json:"strategy"`
	NewTokens      int     `json:"new_tokens"`
	PrefillMS      float64 `json:"prefill_ms"`
	TimeToFirstMS  float64 `json:"time_to_first_ms"`
	DecodeTokensPS float64 `json:"decode_tokens_per_s"`
	Throughput     float64 `json:"throughput_tokens_per_s"`
	MaxMemoryMB    float64 `json:"max_memory_mb"`
	Steps          int     `json:"steps"`
	Accepted       int     `json:"accepted"`
	SameAsGreedy   bool    `json:"same_as_greedy"`
}

func run(model, promptFile, out string, newTokens, workload int) error {
	b, err := os.ReadFile(promptFile)
	if err != nil {
		return err
	}
	var p struct{ IDs []int }
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("%s: %w", promptFile, err)
	}
	m, err := inference.OpenModel(model)
	if err != nil {
		return err
	}
	defer m.Close()
	e, err := cuda.New(m, cuda.Options{})
	if err != nil {
		return err
	}
	defer e.Close()

	// The prompt's last logits and the greedy continuation.
	next, err := e.Prefill(context.Background(), p.IDs)
	if err != nil {
		return err
	}
	logits, err := e.LastLogits()
	if err != nil {
		return err
	}
	lb := make([]byte, 4*len(logits))
	for i, v := range logits {
		binary.LittleEndian.PutUint32(lb[4*i:], math.Float32bits(v))
	}
	if err := os.WriteFile(filepath.Join(out, "last_logits.f32"), lb, 0o644); err != nil {
		return err
	}
	ids := []int{next}
	for len(ids) < newTokens {
		n, err := e.Verify(ids[len(ids)-1:])
		if err != nil {
			return err
		}
		ids = append(ids, n[0])
	}

	res := map[string]any{"device": e.Name(), "prompt_tokens": len(p.IDs), "ids": ids}
	var greedy []int
	var figs []runFigures
	for _, s := range []inference.Strategy{inference.Greedy, inference.Lookup} {
		if workload <= 0 {
			break
		}
		req := inference.Request{Prompt: p.IDs, MaxNewTokens: workload, Strategy: s, LookupTokens: 10, EOS: m.EOS()}
		start := time.Now()
		rep, err := inference.Generate(context.Background(), e, nil, req, nil)
		if err != nil {
			return err
		}
		wall := time.Since(start)
		f := runFigures{Strategy: "greedy", NewTokens: rep.NewTokens, PrefillMS: ms(rep.Prefill), TimeToFirstMS: ms(rep.TimeToFirst),
			DecodeTokensPS: rep.DecodeTokensPS, Throughput: float64(rep.NewTokens) / wall.Seconds(),
			MaxMemoryMB: float64(rep.PeakMemory) / (1 << 20), Steps: rep.Steps, Accepted: rep.Accepted}
		if s == inference.Greedy {
			greedy = rep.TokenIDs
			f.SameAsGreedy = true
		} else {
			f.Strategy = "lookup"
			f.SameAsGreedy = slices.Equal(rep.TokenIDs, greedy)
		}
		figs = append(figs, f)
		fmt.Printf("%s: %s\n", e.Name(), f.Strategy)
		fmt.Printf("Max memory (MB): %.0f\nThroughput (tokens/sec): %.1f\n", f.MaxMemoryMB, f.Throughput)
		fmt.Printf("  prefill %.1f ms, first token %.1f ms, decode %.1f tokens/s, %d steps, %d accepted, same as greedy: %v\n",
			f.PrefillMS, f.TimeToFirstMS, f.DecodeTokensPS, f.Steps, f.Accepted, f.SameAsGreedy)
	}
	res["runs"] = figs
	jb, err := json.MarshalIndent(res, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "ours.json"), jb, 0o644)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
