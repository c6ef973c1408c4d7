package tokenizer

import (
	"encoding/json"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/briefapp/brief/assets"
)

// spBytes writes m as a SentencePiece ModelProto.
func spBytes(m *spModel) []byte {
	var b []byte
	for _, p := range m.pieces {
		var pb []byte
		pb = protowire.AppendTag(pb, 1, protowire.BytesType)
		pb = protowire.AppendString(pb, p.piece)
		pb = protowire.AppendTag(pb, 2, protowire.Fixed32Type)
		pb = protowire.AppendFixed32(pb, math.Float32bits(p.score))
		pb = protowire.AppendTag(pb, 3, protowire.VarintType)
		pb = protowire.AppendVarint(pb, uint64(p.typ))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, pb)
	}
	var ts []byte
	for _, f := range []struct {
		num protowire.Number
		v   int
	}{{3, m.modelType}, {35, b2i(m.byteFallback)}, {40, m.unk}, {41, m.bos}, {42, m.eos}} {
		ts = protowire.AppendTag(ts, f.num, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(int64(f.v)))
	}
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, ts)
	var ns []byte
	ns = protowire.AppendTag(ns, 3, protowire.VarintType)
	ns = protowire.AppendVarint(ns, uint64(b2i(m.addDummyPrefix)))
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendBytes(b, ns)
	return b
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// tinySPM is a small SentencePiece BPE model.
func tinySPM() *spModel {
	m := &spModel{modelType: 2, byteFallback: true, unk: 0, bos: 1, eos: 2, addDummyPrefix: true}
	m.pieces = []spPiece{{"<unk>", 0, spUnknown}, {"<s>", 0, spControl}, {"</s>", 0, spControl}, {"<0x0A>", 0, spByte}}
	for i, p := range []string{"▁", "h", "e", "l", "o", "he", "ll", "hell", "hello", "▁hello"} {
		m.pieces = append(m.pieces, spPiece{p, float32(-i), spNormal})
	}
	return m
}

// openHermesSPM writes a folder holding the OpenHermes vocabulary as a
// tokenizer.model (scores falling with the id, as in Mistral's own file,
// whose space runs "▁▁", "▁▁▁▁", ... score -1e9)
// and the bundled config files, without tokenizer.json.
func openHermesSPM(t *testing.T) string {
	t.Helper()
	data, err := fs.ReadFile(assets.OpenHermes, "openhermes/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Model struct {
			Vocab map[string]int `json:"vocab"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &j); err != nil {
		t.Fatal(err)
	}
	m := &spModel{modelType: 2, byteFallback: true, unk: 0, bos: 1, eos: 2, addDummyPrefix: true}
	m.pieces = make([]spPiece, len(j.Model.Vocab))
	for p, id := range j.Model.Vocab {
		typ, score := spNormal, float32(-id)
		switch {
		case id == 0:
			typ, score = spUnknown, 0
		case id < 3:
			typ, score = spControl, 0
		case strings.HasPrefix(p, "<0x"):
			typ, score = spByte, 0
		case len(p) > len("▁") && strings.Trim(p, "▁") == "":
			score = -1e9 // runs of spaces come last, as in Mistral's own file
		}
		m.pieces[id] = spPiece{p, score, typ}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.model"), spBytes(m), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"} {
		b, err := fs.ReadFile(assets.OpenHermes, "openhermes/"+name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSentencePieceMerges checks that merges derived from piece scores are
// exactly Mistral's tokenizer.json merges, in order.
func TestSentencePieceMerges(t *testing.T) {
	spTok, err := Load(openHermesSPM(t))
	if err != nil {
		t.Fatal(err)
	}
	jsTok := openHermes(t)
	if len(spTok.bpe.merges) != len(jsTok.bpe.merges) {
		t.Errorf("%d merges derived, tokenizer.json has %d", len(spTok.bpe.merges), len(jsTok.bpe.merges))
	}
	bad := 0
	for k, want := range jsTok.bpe.merges {
		if got, ok := spTok.bpe.merges[k]; !ok || got != want {
			if bad++; bad <= 5 {
				t.Errorf("merge %q+%q: got %v %v, want %v", jsTok.pieces[k>>32], jsTok.pieces[uint32(k)], got, ok, want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d merges differ", bad)
	}
}

// TestSentencePieceGolden encodes the golden cases with the tokenizer.model
// folder.
func TestSentencePieceGolden(t *testing.T) {
	tok, err := Load(openHermesSPM(t))
	if err != nil {
		t.Fatal(err)
	}
	if tok.BOS() != 1 || tok.EOS() != 32000 || !tok.AddBOS() || tok.VocabSize() != 32002 {
		t.Errorf("BOS %d EOS %d AddBOS %v VocabSize %d", tok.BOS(), tok.EOS(), tok.AddBOS(), tok.VocabSize())
	}
	g := readGolden(t)
	for _, c := range g.Cases {
		if got := tok.Encode(c.Text, true); !slices.Equal(got, c.IDsWithBOS) {
			t.Errorf("Encode(%.40q) = %v, want %v", c.Text, head(got), head(c.IDsWithBOS))
		}
		if got := tok.Decode(c.IDs); got != c.Decoded {
			t.Errorf("Decode = %q, want %q", got, c.Decoded)
		}
	}
	if got := tok.Encode(g.SeedPrompt.Rendered, true); !slices.Equal(got, g.SeedPrompt.IDs) {
		t.Errorf("seed prompt differs at %d", firstDiff(got, g.SeedPrompt.IDs))
	}
}
