package tokenizer

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// crossCase is one entry of testdata/crosscheck.json.gz, written by
// tools/tokcheck/gen.js with Hugging Face's own tokenizers binding: a text
// with its ids and decoded text, or (Text nil) random ids with their
// decoded text.
type crossCase struct {
	Text    *string `json:"text"`
	IDs     []int   `json:"ids"`
	Decoded string  `json:"decoded"`
}

func readCrossCheck(t *testing.T) []crossCase {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "crosscheck.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Tokenizers string      `json:"tokenizers"`
		Cases      []crossCase `json:"cases"`
	}
	if err := json.NewDecoder(zr).Decode(&file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) < 3000 {
		t.Fatalf("crosscheck.json.gz has %d cases, want at least 3000", len(file.Cases))
	}
	return file.Cases
}

// TestCrossCheck compares encode, decode and the stream with tokenizers
// (npm binding) on thousands of generated strings and id sequences, for the
// tokenizer.json folder and for the same vocabulary as tokenizer.model.
func TestCrossCheck(t *testing.T) {
	cases := readCrossCheck(t)
	jsTok := openHermes(t)
	spTok, err := Load(openHermesSPM(t))
	if err != nil {
		t.Fatal(err)
	}
	texts, fails := 0, 0
	fail := func(format string, args ...any) {
		if fails++; fails <= 10 {
			t.Errorf(format, args...)
		}
	}
	for i, c := range cases {
		if c.Text != nil {
			texts++
			if got := jsTok.Encode(*c.Text, false); !slices.Equal(got, c.IDs) {
				fail("case %d: Encode(%q) = %v, want %v", i, *c.Text, got, c.IDs)
			}
			if got := spTok.Encode(*c.Text, false); !slices.Equal(got, c.IDs) {
				fail("case %d: tokenizer.model Encode(%q) = %v, want %v", i, *c.Text, got, c.IDs)
			}
		}
		if got := jsTok.Decode(c.IDs); got != c.Decoded {
			fail("case %d: Decode(%v) = %q, want %q", i, c.IDs, got, c.Decoded)
		}
		if got := streamAll(t, jsTok, c.IDs); got != c.Decoded {
			fail("case %d: stream(%v) = %q, want %q", i, c.IDs, got, c.Decoded)
		}
	}
	if fails > 0 {
		t.Errorf("%d of %d checks failed", fails, len(cases))
	}
	t.Logf("%d cases (%d texts) agree with tokenizers", len(cases), texts)
}
