package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/briefapp/brief/inference/lookup"
	"github.com/briefapp/brief/inference/tokenizer"
)

func init() {
	register("replay", "measure prompt lookup drafters on recorded greedy answers (pld-replay)", func(args []string) error {
		return replay(args, os.Stdout)
	})
}

func replay(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	model := fs.String("model", "", "model folder whose tokenizer encodes the data (Mistral's: OpenHermes-2.5-Mistral-7B)")
	dataset := fs.String("dataset", "", "pld-replay file: cnn_dm_outputs.json or mt_bench_output.json")
	tokens := fs.Int("lookup-tokens", 10, "most tokens drafted per step")
	asJSON := fs.Bool("json", false, `print {"drafters":[{"name":...,"tokens_per_step":...,"histogram":[...]},...]}`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" || *dataset == "" {
		return errors.New("--model and --dataset are required")
	}
	if *tokens < 1 || *tokens > 64 {
		return fmt.Errorf("--lookup-tokens %d: want 1..64", *tokens)
	}
	tok, err := tokenizer.Load(*model)
	if err != nil {
		return err
	}
	dialogs, err := lookup.LoadDialogs(*dataset)
	if err != nil {
		return err
	}
	cases := lookup.Cases(tok, dialogs)
	results := lookup.ReplayAll(cases, lookup.Drafters([]int{tok.EOS()}), *tokens)
	if *asJSON {
		return json.NewEncoder(stdout).Encode(struct {
			Dataset  string          `json:"dataset"`
			Cases    int             `json:"cases"`
			Drafters []lookup.Result `json:"drafters"`
		}{*dataset, len(cases), results})
	}
	printReplay(stdout, *dataset, len(cases), *tokens, results)
	return nil
}

func printReplay(w io.Writer, dataset string, cases, tokens int, results []lookup.Result) {
	fmt.Fprintf(w, "%s: %d answers, up to %d drafted tokens a step\n", dataset, cases, tokens)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "drafter\ttokens/step\tsteps\taccepted/drafted\taccepted-length histogram (0..)\t")
	for _, r := range results {
		h := make([]string, len(r.Histogram))
		for i, c := range r.Histogram {
			h[i] = fmt.Sprint(c)
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%d\t%d/%d\t%s\t\n", r.Name, r.TokensPerStep, r.Steps, r.Accepted, r.Drafted, strings.Join(h, " "))
	}
	tw.Flush()
}
