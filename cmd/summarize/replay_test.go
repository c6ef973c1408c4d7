package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/briefapp/brief/inference/lookup"
	"github.com/briefapp/brief/inference/tokenizer"
	"github.com/briefapp/brief/internal/testdata"
)

// TestReplayOursWins replays the real pld-replay data with the Mistral
// tokenizer: Brief's drafter must beat both reference drafters on
// CNN/DailyMail and not lose on MT-Bench.
func TestReplayOursWins(t *testing.T) {
	model := testdata.Path(t, "openhermes-2.5-mistral-7b-awq")
	tok, err := tokenizer.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cnn_dm_outputs.json", "mt_bench_output.json"} {
		ds, err := lookup.LoadDialogs(testdata.Path(t, "pld-replay", name))
		if err != nil {
			t.Fatal(err)
		}
		res := lookup.ReplayAll(lookup.Cases(tok, ds), lookup.Drafters([]int{tok.EOS()}), 10)
		ours := res[2].TokensPerStep
		for _, r := range res[:2] {
			if ours <= r.TokensPerStep {
				t.Errorf("%s: ours %.4f tokens/step, %s %.4f", name, ours, r.Name, r.TokensPerStep)
			}
		}
		t.Logf("%s: %s %.4f, %s %.4f, %s %.4f", name, res[0].Name, res[0].TokensPerStep, res[1].Name, res[1].TokensPerStep, res[2].Name, ours)
	}
}

func TestReplayCommand(t *testing.T) {
	model := testdata.Path(t, "openhermes-2.5-mistral-7b-awq")
	data := testdata.Path(t, "pld-replay", "cnn_dm_outputs.json")
	var out bytes.Buffer
	if err := replay([]string{"--model", model, "--dataset", data, "--json"}, &out); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Drafters []struct {
			Name          string  `json:"name"`
			TokensPerStep float64 `json:"tokens_per_step"`
			Histogram     []int   `json:"histogram"`
		} `json:"drafters"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Drafters) != 3 || got.Drafters[0].TokensPerStep <= 1 || len(got.Drafters[0].Histogram) != 11 {
		t.Errorf("replay --json: %+v", got)
	}
	for _, args := range [][]string{{"--dataset", data}, {"--model", model, "--dataset", model + "/config.json"}} {
		if err := replay(args, &out); err == nil {
			t.Errorf("replay %v: no error", args)
		}
	}
}
