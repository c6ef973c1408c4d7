package tokenizer

import (
	"compress/gzip"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/briefapp/brief/assets"
)

// crossCase is one entry of testdata/crosscheck.json.gz, written by
// tools/tokcheck/gen.js with Hugging Face's own tokenizers binding: a text
// with its ids and decoded text, or (Text nil) random ids with their
// decoded text.
type crossCase struct {
	Variant string  `json:"variant"` // "" for the bundled tokenizer.json
	Text    *string `json:"text"`
	IDs     []int   `json:"ids"`
	Decoded string  `json:"decoded"`
}

type crossFile struct {
	Tokenizers string `json:"tokenizers"`
	// Variants replace top-level keys of tokenizer.json; "added_tokens"
	// holds flag overrides by token content.
	Variants map[string]map[string]json.RawMessage `json:"variants"`
	Cases    []crossCase                           `json:"cases"`
}

func readCrossCheck(t *testing.T) *crossFile {
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
	var file crossFile
	if err := json.NewDecoder(zr).Decode(&file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) < 3000 {
		t.Fatalf("crosscheck.json.gz has %d cases, want at least 3000", len(file.Cases))
	}
	return &file
}

// variantTokenizer applies a variant to the bundled tokenizer.json.
func variantTokenizer(t *testing.T, v map[string]json.RawMessage) *Tokenizer {
	t.Helper()
	data, err := fs.ReadFile(assets.OpenHermes, "openhermes/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]json.RawMessage
	if err := json.Unmarshal(data, &j); err != nil {
		t.Fatal(err)
	}
	for k, val := range v {
		if k != "added_tokens" {
			j[k] = val
			continue
		}
		var flags map[string]map[string]any
		var added []map[string]any
		if err := json.Unmarshal(val, &flags); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(j["added_tokens"], &added); err != nil {
			t.Fatal(err)
		}
		for _, a := range added {
			for f, x := range flags[a["content"].(string)] {
				a[f] = x
			}
		}
		if j["added_tokens"], err = json.Marshal(added); err != nil {
			t.Fatal(err)
		}
	}
	if data, err = json.Marshal(j); err != nil {
		t.Fatal(err)
	}
	tok, err := fromJSON("tokenizer.json", data, &config{})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestCrossCheck compares encode, decode and the stream with tokenizers
// (npm binding) on thousands of generated strings and id sequences, for the
// tokenizer.json folder and for the same vocabulary as tokenizer.model.
func TestCrossCheck(t *testing.T) {
	file := readCrossCheck(t)
	cases := file.Cases
	jsTok := openHermes(t)
	variants := map[string]*Tokenizer{}
	for name, v := range file.Variants {
		variants[name] = variantTokenizer(t, v)
	}
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
	perVariant := map[string]int{}
	for i, c := range cases {
		if c.Variant != "" {
			vt := variants[c.Variant]
			if vt == nil {
				t.Fatalf("case %d: unknown variant %q", i, c.Variant)
			}
			perVariant[c.Variant]++
			if got := vt.Encode(*c.Text, false); !slices.Equal(got, c.IDs) {
				fail("case %d (%s): Encode(%q) = %v, want %v", i, c.Variant, *c.Text, got, c.IDs)
			}
			if got := vt.Decode(c.IDs); got != c.Decoded {
				fail("case %d (%s): Decode(%v) = %q, want %q", i, c.Variant, c.IDs, got, c.Decoded)
			}
			if got := streamAll(t, vt, c.IDs); got != c.Decoded {
				fail("case %d (%s): stream(%v) = %q, want %q", i, c.Variant, c.IDs, got, c.Decoded)
			}
			continue
		}
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
	t.Logf("%d cases (%d texts, variants %v) agree with tokenizers %s", len(cases), texts, perVariant, file.Tokenizers)
}
