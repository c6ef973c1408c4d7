package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tiny returns tinyJSON with replacements applied, loaded.
func tiny(t *testing.T, repl ...string) *Tokenizer {
	t.Helper()
	tok, err := fromJSON("tokenizer.json", []byte(strings.NewReplacer(repl...).Replace(tinyJSON)), &config{})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestSmall covers model options the OpenHermes tokenizer does not use.
func TestSmall(t *testing.T) {
	for _, c := range []struct {
		name string
		repl []string
		text string
		ids  []int
		dec  string
	}{
		{"merges", nil, "hello", []int{17}, "hello"},
		{"byte fallback", nil, "hello\n🦙", []int{17, 3, 4, 5, 6, 7}, "hello\n🦙"},
		{"unk fused", nil, "hellé", []int{8, 15, 0}, "hell<unk>"},
		{"unk not fused", []string{`"fuse_unk": true`, `"fuse_unk": false`}, "héé", []int{8, 9, 0, 0}, "h<unk><unk>"},
		{"unk after bytes", nil, "h\né", []int{8, 9, 3, 0}, "h\n<unk>"},
		{"no byte fallback", []string{`"byte_fallback": true`, `"byte_fallback": false`}, "o\n", []int{8, 12, 0}, "o<unk>"},
		{"pair merges", []string{`["h e", "l l", "he ll", "hell o", "▁ hello"]`, `[["h", "e"], ["l", "l"], ["he", "ll"], ["hell", "o"], ["▁", "hello"]]`}, "hello", []int{17}, "hello"},
		{"merge order late", []string{`"d": 20`, `"d": 20, "el": 21`, `"▁ hello"]`, `"▁ hello", "e l"]`}, "hell", []int{8, 15}, "hell"},
		{"merge order early", []string{`"d": 20`, `"d": 20, "el": 21`, `["h e"`, `["e l", "h e"`}, "hell", []int{8, 9, 21, 11}, "hell"},
		{"ignore merges", []string{`"fuse_unk": true`, `"fuse_unk": true, "ignore_merges": true`, `"▁": 8,`, `"▁": 8, "▁hel": 21,`}, "hel", []int{21}, "hel"},
		{"added in text", nil, "<s>he</s>", []int{1, 8, 13, 2}, "<s> he</s>"},
		{"metaspace decoder", []string{`{"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}`, `{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"}`}, "he he", []int{8, 13, 8, 13}, "he he"},
		{"strip per token", []string{`{"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}`, `{"type": "Strip", "content": " ", "start": 1, "stop": 1}, {"type": "Fuse"}`}, "he he", []int{8, 13, 8, 13}, "hehe"},
	} {
		tok := tiny(t, c.repl...)
		got := tok.Encode(c.text, false)
		if !slices.Equal(got, c.ids) {
			t.Errorf("%s: Encode(%q) = %v, want %v", c.name, c.text, got, c.ids)
		}
		if d := tok.Decode(got); d != c.dec {
			t.Errorf("%s: Decode(%v) = %q, want %q", c.name, got, d, c.dec)
		}
		if s := streamAll(t, tok, got); s != tok.Decode(got) {
			t.Errorf("%s: stream %q != Decode", c.name, s)
		}
	}
}

func TestStreamHoldsByteRuns(t *testing.T) {
	tok := openHermes(t)
	llama := tok.Encode("🦙!", false) // ▁, 4 byte tokens, !
	s := NewStream(tok)
	var got []string
	for _, id := range llama {
		got = append(got, s.Next(id))
	}
	got = append(got, s.Flush())
	want := []string{"", "", "", "", "", "🦙!", ""}
	if !slices.Equal(got, want) {
		t.Errorf("stream pieces %q, want %q", got, want)
	}
	// A run cut short decodes as one U+FFFD per byte, as tokenizers does.
	s = NewStream(tok)
	out := s.Next(llama[1]) + s.Next(llama[2]) + s.Flush()
	if out != "\uFFFD\uFFFD" || tok.Decode(llama[1:3]) != out {
		t.Errorf("cut run: stream %q, decode %q", out, tok.Decode(llama[1:3]))
	}
}

func TestConfigFlags(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "..", "assets", "openhermes", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("tokenizer.json", string(data))
	write("tokenizer_config.json", `{"add_bos_token": false, "bos_token": {"content": "<s>", "__type": "AddedToken"}, "eos_token": "</s>"}`)
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AddBOS() || tok.BOS() != 1 || tok.EOS() != 2 {
		t.Errorf("AddBOS %v BOS %d EOS %d, want false 1 2", tok.AddBOS(), tok.BOS(), tok.EOS())
	}
	// Without a config, BOS comes from the post-processor.
	os.Remove(filepath.Join(dir, "tokenizer_config.json"))
	if tok, err = Load(dir); err != nil {
		t.Fatal(err)
	}
	if !tok.AddBOS() || tok.BOS() != 1 || tok.EOS() != -1 {
		t.Errorf("no config: AddBOS %v BOS %d EOS %d, want true 1 -1", tok.AddBOS(), tok.BOS(), tok.EOS())
	}
}

func TestLoadErrors(t *testing.T) {
	valid := tinyJSON
	sub := func(old, new string) string {
		if !strings.Contains(valid, old) {
			t.Fatalf("tinyJSON lacks %q", old)
		}
		return strings.Replace(valid, old, new, 1)
	}
	for _, c := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"empty folder", nil, "no tokenizer.json or tokenizer.model"},
		{"bad json", map[string]string{"tokenizer.json": `{"model": `}, "tokenizer.json: unexpected end"},
		{"wordpiece", map[string]string{"tokenizer.json": `{"model": {"type": "WordPiece", "vocab": {"a": 0}}}`}, `tokenizer.json: model.type "WordPiece" is not supported (want BPE)`},
		{"dropout", map[string]string{"tokenizer.json": sub(`"type": "BPE",`, `"type": "BPE", "dropout": 0.1,`)}, "tokenizer.json: model.dropout"},
		{"merge not in vocab", map[string]string{"tokenizer.json": sub(`"h e"`, `"h q"`)}, `tokenizer.json: model.merges[0] "h" + "q": token not in model.vocab`},
		{"bad merge", map[string]string{"tokenizer.json": sub(`"h e"`, `"he"`)}, "tokenizer.json: model.merges: entry 0"},
		{"unk", map[string]string{"tokenizer.json": sub(`"unk_token": "<unk>"`, `"unk_token": "<nope>"`)}, `model.unk_token "<nope>"`},
		{"normalizer", map[string]string{"tokenizer.json": sub(`{"type": "Prepend", "prepend": "▁"}`, `{"type": "NFKC"}`)}, `tokenizer.json: normalizer: type "NFKC" is not supported`},
		{"regex", map[string]string{"tokenizer.json": sub(`"pattern": {"String": " "}`, `"pattern": {"Regex": " +"}`)}, "only String patterns"},
		{"pre-tokenizer", map[string]string{"tokenizer.json": sub(`"pre_tokenizer": null`, `"pre_tokenizer": {"type": "ByteLevel"}`)}, `tokenizer.json: pre_tokenizer: type "ByteLevel"`},
		{"decoder", map[string]string{"tokenizer.json": sub(`{"type": "Fuse"}`, `{"type": "WordPiece"}`)}, `tokenizer.json: decoder: type "WordPiece"`},
		{"no decoder", map[string]string{"tokenizer.json": strings.Replace(valid, `"decoder": {"type": "Sequence"`, `"decoder": null, "x": {"type": "Sequence"`, 1)}, "tokenizer.json: decoder is null"},
		{"huge id", map[string]string{"tokenizer.json": sub(`"d": 20`, `"d": 2000000000`)}, `tokenizer.json: vocab id 2000000000 of "d" is out of range`},
		{"bos unknown", map[string]string{"tokenizer.json": valid, "tokenizer_config.json": `{"bos_token": "<B>"}`}, `tokenizer_config.json: bos_token "<B>" is not in the vocabulary`},
		{"bad config", map[string]string{"tokenizer.json": valid, "tokenizer_config.json": `{"bos_token": 3}`}, "tokenizer_config.json"},
		{"bad decoder key", map[string]string{"tokenizer.json": valid, "tokenizer_config.json": `{"added_tokens_decoder": {"x": {"content": "a"}}}`}, `tokenizer_config.json: added_tokens_decoder key "x"`},
		{"bad added_tokens.json", map[string]string{"tokenizer.model": string(spBytes(tinySPM())), "added_tokens.json": `[]`}, "added_tokens.json"},
		{"garbage model", map[string]string{"tokenizer.model": "\xff\xff\xff"}, "tokenizer.model: not a SentencePiece model"},
		{"unigram model", map[string]string{"tokenizer.model": string(spBytes(func() *spModel { m := tinySPM(); m.modelType = 1; return m }()))}, "tokenizer.model: model_type 1 (Unigram) is not supported (want BPE)"},
	} {
		dir := t.TempDir()
		for name, s := range c.files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
}

func TestLoadSentencePieceTiny(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.model"), spBytes(tinySPM()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "added_tokens.json"), []byte(`{"<extra>": 14}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := tok.Encode("hello<extra>", true)
	if want := []int{1, 13, 14}; !slices.Equal(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
	if tok.BOS() != 1 || tok.EOS() != 2 || !tok.AddBOS() || tok.VocabSize() != 15 {
		t.Errorf("BOS %d EOS %d AddBOS %v VocabSize %d", tok.BOS(), tok.EOS(), tok.AddBOS(), tok.VocabSize())
	}
	if d := tok.Decode(got); d != "<s> hello<extra>" {
		t.Errorf("Decode = %q", d)
	}
}

// TestConcurrent backs the claim that a loaded Tokenizer may be shared (run
// with -race).
func TestConcurrent(t *testing.T) {
	tok := openHermes(t)
	cases := readGolden(t).Cases
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func() {
			for _, c := range cases[:20] {
				if got := tok.Encode(c.Text, false); !slices.Equal(got, c.IDs) || tok.Decode(got) != c.Decoded {
					t.Errorf("concurrent Encode(%q) differs", c.Text)
				}
			}
			done <- true
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}

func TestTextStreamDropsSpecialTokens(t *testing.T) {
	tok := openHermes(t)
	body := tok.Encode("Lily was happy.", false)
	ids := append(append([]int{tok.BOS()}, body...), tok.EOS())
	ids = append(ids, body...) // <s> Lily was happy.</s> Lily was happy.
	var kept []int
	for _, id := range ids {
		if !tok.IsSpecial(id) {
			kept = append(kept, id)
		}
	}
	if len(kept) == len(ids) {
		t.Fatalf("BOS %d / EOS %d not special", tok.BOS(), tok.EOS())
	}
	s := NewTextStream(tok)
	var got strings.Builder
	for _, id := range ids {
		got.WriteString(s.Next(id))
	}
	got.WriteString(s.Flush())
	if want := tok.Decode(kept); got.String() != want {
		t.Errorf("text stream %q, want %q", got.String(), want)
	}
	if strings.Contains(got.String(), "<s>") || strings.Contains(got.String(), "</s>") {
		t.Errorf("special token in %q", got.String())
	}
}

func TestLoadNamesMissingFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nowhere")
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Load(%s) = %v, want an error naming the missing folder", dir, err)
	}
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(file); err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Errorf("Load(file) = %v, want 'not a folder'", err)
	}
}
