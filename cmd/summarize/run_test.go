package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/briefapp/brief/inference"
	"github.com/briefapp/brief/internal/testdata"
)

// TestRunGolden runs the command end to end on stories260K (no chat
// template: the prompt is raw text) with the CPU engine: its token ids and
// text are transformers'.
func TestRunGolden(t *testing.T) {
	dir, cases := testdata.Stories(t)
	for _, c := range cases {
		if c.Prompt == "" {
			continue // the command refuses an empty prompt
		}
		for _, strategy := range []string{"greedy", "lookup"} {
			var stdout, stderr bytes.Buffer
			err := runSummarize(context.Background(), []string{"--model", dir, "--prompt", c.Prompt, "--engine", "cpu",
				"--max-new-tokens", "64", "--strategy", strategy, "--json"}, nil, &stdout, &stderr)
			if err != nil {
				t.Fatalf("%q %s: %v\n%s", c.Prompt, strategy, err, stderr.String())
			}
			var got runJSON
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatalf("%q: stdout is not one JSON object: %v\n%s", c.Prompt, err, stdout.String())
			}
			if !slices.Equal(got.TokenIDs, c.Greedy) {
				t.Errorf("%q %s:\n got %v\nwant %v", c.Prompt, strategy, got.TokenIDs, c.Greedy)
			}
			if got.Text != c.Text || stderr.String() != c.Text {
				t.Errorf("%q %s: text %q (stderr %q), want %q", c.Prompt, strategy, got.Text, stderr.String(), c.Text)
			}
			r := got.Report
			if r.PromptTokens != len(c.PromptIDs) || r.NewTokens != 64 || r.StopReason != "max_tokens" || r.Throughput <= 0 || r.PeakMemory <= 0 {
				t.Errorf("%q %s: report %+v", c.Prompt, strategy, r)
			}
		}
	}
}

// TestRunText: without --json the text goes to stdout, followed by the
// original script's two lines.
func TestRunText(t *testing.T) {
	dir, cases := testdata.Stories(t)
	c := cases[1]
	var stdout, stderr bytes.Buffer
	err := runSummarize(context.Background(), []string{"--model", dir, "--prompt", c.Prompt, "--engine", "cpu", "--max-new-tokens", "64"}, nil, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	text, figures, ok := strings.Cut(stdout.String(), "\n\nMax memory (MB): ")
	if !ok || text != c.Text || !strings.Contains(figures, "\nThroughput (tokens/sec): ") {
		t.Errorf("stdout %q", stdout.String())
	}
}

// TestRunArticle: an article from stdin, wrapped in the default preamble
// and instruction (raw text for a model without a chat template).
func TestRunArticle(t *testing.T) {
	dir, _ := testdata.Stories(t)
	var stdout, stderr bytes.Buffer
	err := runSummarize(context.Background(), []string{"--model", dir, "--article", "-", "--engine", "cpu", "--max-new-tokens", "5", "--json"},
		strings.NewReader("Once upon a time there was a dog."), &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	var got runJSON
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.TokenIDs) != 5 || got.Report.PromptTokens < 20 {
		t.Errorf("report %+v, ids %v", got.Report, got.TokenIDs)
	}
}

func TestRunErrors(t *testing.T) {
	dir, _ := testdata.Stories(t)
	tmp := t.TempDir()
	bad := filepath.Join(tmp, "bad.txt")
	os.WriteFile(bad, []byte("caf\xe9 au lait"), 0o644)
	empty := filepath.Join(tmp, "empty.md")
	os.WriteFile(empty, []byte(" \n\n"), 0o644)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no model", []string{"--prompt", "x"}, "--model is required"},
		{"no input", []string{"--model", dir}, "exactly one of --article and --prompt"},
		{"both inputs", []string{"--model", dir, "--prompt", "x", "--article", bad}, "exactly one of"},
		{"not utf8", []string{"--model", dir, "--article", bad}, "bad.txt: not UTF-8 text (invalid byte at offset 3)"},
		{"empty article", []string{"--model", dir, "--article", empty}, "empty.md is empty"},
		{"missing article", []string{"--model", dir, "--article", filepath.Join(tmp, "nope.txt")}, "nope.txt"},
		{"strategy", []string{"--model", dir, "--prompt", "x", "--strategy", "beam"}, `--strategy "beam"`},
		{"lookup tokens", []string{"--model", dir, "--prompt", "x", "--lookup-tokens", "16"}, "want 1..15"},
		{"max tokens", []string{"--model", dir, "--prompt", "x", "--max-new-tokens", "0"}, "--max-new-tokens 0"},
		{"engine", []string{"--model", dir, "--prompt", "x", "--engine", "tpu"}, `unknown engine "tpu"`},
		{"cuda", []string{"--model", dir, "--prompt", "x", "--engine", "cuda"}, "no NVIDIA GPU found"},
		{"model folder", []string{"--model", tmp, "--prompt", "x"}, tmp},
		{"too long", []string{"--model", dir, "--prompt", strings.Repeat("Once upon a time ", 200), "--engine", "cpu"}, "more than the 512"},
	}
	saved := gpuEngine
	gpuEngine = nil
	defer func() { gpuEngine = saved }()
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		err := runSummarize(context.Background(), tc.args, nil, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

type fakeGPU struct{ inference.Engine }

func TestOpenEngine(t *testing.T) {
	dir, _ := testdata.Stories(t)
	m, err := inference.OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	saved := gpuEngine
	defer func() { gpuEngine = saved }()

	gpuEngine = func(*inference.Model) (inference.Engine, error) {
		return nil, errors.New("no NVIDIA GPU found: no driver")
	}
	e, err := openEngine("auto", m, io.Discard)
	if err != nil || !strings.HasPrefix(e.Name(), "CPU") {
		t.Errorf("auto without a GPU: %v, %v; want the CPU engine", e, err)
	}
	if _, err := openEngine("cuda", m, io.Discard); err == nil || !strings.Contains(err.Error(), "no NVIDIA GPU found") {
		t.Errorf("cuda without a GPU: %v", err)
	}
	gpuEngine = func(*inference.Model) (inference.Engine, error) { return fakeGPU{}, nil }
	if e, err := openEngine("auto", m, io.Discard); err != nil || e != (fakeGPU{}) {
		t.Errorf("auto with a GPU: %v, %v", e, err)
	}
}

// TestReferencePrompt: the default flags with the reference article build
// the reference workload's 6,435 prompt ids (transformers' golden ids).
func TestReferencePrompt(t *testing.T) {
	model := testdata.Path(t, "openhermes-2.5-mistral-7b-awq")
	article := testdata.Path(t, "llama2_article.txt")
	b, err := os.ReadFile(filepath.Join(model, "golden_tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Seed struct {
			IDs []int `json:"ids"`
		} `json:"seed_prompt"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	o, err := parseRun([]string{"--model", model, "--article", article}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ids, _, err := buildPrompt(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Seed.IDs) != 6435 || !slices.Equal(ids, g.Seed.IDs) {
		t.Errorf("prompt of %d ids, want transformers' %d", len(ids), len(g.Seed.IDs))
	}
	// The folder has no weights: the command says so.
	err = runSummarize(context.Background(), []string{"--model", model, "--article", article}, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), model) {
		t.Errorf("model folder without weights: %v", err)
	}
	t.Logf("without weights: %v", err)
}
