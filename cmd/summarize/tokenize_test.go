package main

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/briefapp/brief/assets"
)

// openHermesDir writes the bundled OpenHermes folder to a temporary folder.
func openHermesDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	sub, err := fs.Sub(assets.OpenHermes, "openhermes")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dir, sub); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTokenize(t *testing.T) {
	dir := openHermesDir(t)
	for _, c := range []struct {
		args []string
		in   string
		want string
	}{
		{[]string{"--model", dir}, "Hello world!", `{"ids":[1,22557,1526,28808]}`},
		{[]string{"--model", dir, "--no-bos"}, "Hello world!", `{"ids":[22557,1526,28808]}`},
		{[]string{"--model", dir, "--no-bos"}, "", `{"ids":[]}`},
		{[]string{"--model", dir}, "<|im_start|>user\nhi<|im_end|>\n", `{"ids":[1,32001,2188,13,5365,32000,28705,13]}`},
	} {
		var out bytes.Buffer
		if err := tokenize(c.args, strings.NewReader(c.in), &out, io.Discard); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if got := strings.TrimSpace(out.String()); got != c.want {
			t.Errorf("%v %q: got %s, want %s", c.args, c.in, got, c.want)
		}
	}
}

func TestTokenizeErrors(t *testing.T) {
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "tokenizer.json"), []byte(`{"model": {"type": "WordPiece"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "--model"},
		{[]string{"--model", t.TempDir()}, "no tokenizer.json or tokenizer.model"},
		{[]string{"--model", bad}, `tokenizer.json: model.type "WordPiece" is not supported (want BPE)`},
		{[]string{"--bogus"}, "bogus"},
	} {
		err := tokenize(c.args, strings.NewReader("x"), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one saying %q", c.args, err, c.want)
		}
	}
}
