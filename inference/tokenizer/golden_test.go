package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/briefapp/brief/assets"
	"github.com/briefapp/brief/internal/testdata"
)

// openHermes loads the bundled OpenHermes tokenizer.
func openHermes(t testing.TB) *Tokenizer {
	t.Helper()
	tok, err := LoadFS(assets.OpenHermes, "openhermes")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type goldenFile struct {
	Cases []struct {
		Text       string `json:"text"`
		IDs        []int  `json:"ids"`
		IDsWithBOS []int  `json:"ids_with_bos"`
		Decoded    string `json:"decoded"`
	} `json:"cases"`
	SeedPrompt struct {
		Rendered string `json:"rendered"`
		IDs      []int  `json:"ids"`
	} `json:"seed_prompt"`
}

func readGolden(t testing.TB) *goldenFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "golden_tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

// streamAll decodes ids through a Stream, checking each piece is valid UTF-8.
func streamAll(t testing.TB, tok *Tokenizer, ids []int) string {
	t.Helper()
	s := NewStream(tok)
	var out string
	for _, id := range ids {
		p := s.Next(id)
		if !validString(p) {
			t.Fatalf("stream emitted broken UTF-8 %q", p)
		}
		out += p
	}
	return out + s.Flush()
}

func TestGolden(t *testing.T) {
	tok := openHermes(t)
	g := readGolden(t)
	for _, c := range g.Cases {
		name := c.Text
		if len(name) > 30 {
			name = name[:30]
		}
		t.Run(name, func(t *testing.T) {
			if got := tok.Encode(c.Text, false); !slices.Equal(got, c.IDs) {
				t.Errorf("Encode(%.40q) = %v, want %v", c.Text, head(got), head(c.IDs))
			}
			if got := tok.Encode(c.Text, true); !slices.Equal(got, c.IDsWithBOS) {
				t.Errorf("Encode(%.40q, bos) = %v, want %v", c.Text, head(got), head(c.IDsWithBOS))
			}
			if got := tok.Decode(c.IDs); got != c.Decoded {
				t.Errorf("Decode = %q, want %q", got, c.Decoded)
			}
			if got := streamAll(t, tok, c.IDs); got != c.Decoded {
				t.Errorf("stream = %q, want %q", got, c.Decoded)
			}
		})
	}
	if got := tok.Encode(g.SeedPrompt.Rendered, tok.AddBOS()); !slices.Equal(got, g.SeedPrompt.IDs) {
		t.Errorf("seed prompt: %d ids, want %d; first difference at %d", len(got), len(g.SeedPrompt.IDs), firstDiff(got, g.SeedPrompt.IDs))
	}
	if got, want := streamAll(t, tok, g.SeedPrompt.IDs), tok.Decode(g.SeedPrompt.IDs); got != want {
		t.Errorf("seed prompt: stream differs from Decode")
	}
}

func TestFacts(t *testing.T) {
	tok := openHermes(t)
	if tok.BOS() != 1 || tok.EOS() != 32000 || !tok.AddBOS() || tok.VocabSize() != 32002 {
		t.Errorf("BOS %d EOS %d AddBOS %v VocabSize %d; want 1 32000 true 32002", tok.BOS(), tok.EOS(), tok.AddBOS(), tok.VocabSize())
	}
	if id, ok := tok.TokenID("<|im_start|>"); !ok || id != 32001 || tok.Piece(id) != "<|im_start|>" || !tok.IsSpecial(id) {
		t.Errorf("<|im_start|> = %d %v", id, ok)
	}
	if id, ok := tok.TokenID("▁the"); !ok || tok.Piece(id) != "▁the" || tok.IsSpecial(id) {
		t.Errorf("▁the = %d %v", id, ok)
	}
	if _, ok := tok.TokenID("no such piece"); ok {
		t.Error("TokenID found a piece that is not there")
	}
	if tok.Piece(-1) != "" || tok.Piece(1<<30) != "" {
		t.Error("Piece out of range is not empty")
	}
}

func TestStories260K(t *testing.T) {
	dir := testdata.Path(t, "stories260k-awq")
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct {
			Prompt    string `json:"prompt"`
			PromptIDs []int  `json:"prompt_ids"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) == 0 {
		t.Fatal("no cases in golden.json")
	}
	for _, c := range g.Cases {
		if got := tok.Encode(c.Prompt, tok.AddBOS()); !slices.Equal(got, c.PromptIDs) {
			t.Errorf("Encode(%q) = %v, want %v", c.Prompt, got, c.PromptIDs)
		}
	}
}

func head(ids []int) []int {
	if len(ids) > 20 {
		return ids[:20]
	}
	return ids
}

func firstDiff(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func validString(s string) bool { return utf8.ValidString(s) }
