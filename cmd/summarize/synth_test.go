package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/briefapp/brief/inference"
)

func TestRunSynth(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	if err := runSynth([]string{"--out", dir, "--shape", "tiny", "--seed", "3", "--layers", "1", "--window", "8", "--arch", "mistral"}); err != nil {
		t.Fatal(err)
	}
	m, err := inference.OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if c := m.Config; c.Layers != 1 || c.SlidingWindow != 8 || c.Hidden != 128 || c.Architecture != "MistralForCausalLM" {
		t.Errorf("config %+v", c)
	}
	llama := filepath.Join(t.TempDir(), "l")
	if err := runSynth([]string{"--out", llama, "--shape", "tiny", "--arch", "llama", "--group", "64", "--tie"}); err != nil {
		t.Fatal(err)
	}
	l, err := inference.OpenModel(llama)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if c := l.Config; c.Architecture != "LlamaForCausalLM" || c.SlidingWindow != 0 || c.Quant.GroupSize != 64 || !c.TieEmbeddings {
		t.Errorf("config %+v", c)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--shape", "tiny"}, "usage"},
		{[]string{"--out", dir, "--shape", "nope"}, `unknown shape "nope"`},
		{[]string{"--out", dir, "--arch", "gpt2"}, `--arch "gpt2"`},
		{[]string{"--out", dir, "--shape", "tiny", "--heads", "3"}, "not a multiple"},
	} {
		if err := runSynth(tt.args); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want %q", tt.args, err, tt.want)
		}
	}
}
