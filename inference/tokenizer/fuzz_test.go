package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/briefapp/brief/internal/testdata"
)

// FuzzEncode checks on any text: ids in range, the stream equals Decode and
// never emits broken UTF-8, and Decode(Encode(s)) == s for valid UTF-8
// without added tokens or "▁" (which tokenizers does not round-trip either).
func FuzzEncode(f *testing.F) {
	tok := openHermes(f)
	for _, c := range readGolden(f).Cases {
		f.Add(c.Text)
	}
	f.Add("\xff\xfe broken \xe2\x82")
	f.Add("<s><s> </s>\n\t<|im_start|>")
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s, true)
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("id %d out of range", id)
			}
		}
		ids = ids[1:]
		dec := tok.Decode(ids)
		if got := streamAll(t, tok, ids); got != dec {
			t.Fatalf("stream %q != decode %q", got, dec)
		}
		if roundTrips(tok, s) && dec != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, dec)
		}
	})
}

func roundTrips(tok *Tokenizer, s string) bool {
	if !utf8.ValidString(s) || strings.Contains(s, "▁") {
		return false
	}
	for _, a := range tok.added {
		if strings.Contains(s, a.content) {
			return false
		}
	}
	return true
}

// FuzzStream feeds arbitrary id sequences, rich in byte tokens, to Stream.
func FuzzStream(f *testing.F) {
	tok := openHermes(f)
	f.Add([]byte{0xf0, 0x9f, 0xa6, 0x99, 0x80, 1, 2, 3})
	f.Add([]byte{0xe4, 0xb8, 0x80, 0xe4, 0xb8})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ids []int
		for i := 0; i < len(b); i++ {
			switch {
			case b[i] < 0xC0: // a byte token <0xNN> (ids 3..258)
				ids = append(ids, 3+int(b[i])*2%256)
			case i+1 < len(b): // any id, special ones and out of range included
				ids = append(ids, (int(b[i])<<8|int(b[i+1]))%(tok.VocabSize()+3)-1)
				i++
			}
		}
		dec := tok.Decode(ids)
		if !utf8.ValidString(dec) {
			t.Fatalf("Decode gave broken UTF-8 %q", dec)
		}
		if got := streamAll(t, tok, ids); got != dec {
			t.Fatalf("stream %q != decode %q", got, dec)
		}
	})
}

// FuzzLoad parses arbitrary tokenizer.json bytes: errors are fine, panics
// and huge allocations are not; a tokenizer that loads must encode.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(tinyJSON))
	f.Add([]byte(strings.Replace(tinyJSON, `"pre_tokenizer": null`, `"pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}`, 1)))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 4000000000}, "merges": []}, "decoder": {"type": "Fuse"}}`))
	if root := testdata.Root(); root != "" {
		if data, err := os.ReadFile(filepath.Join(root, "stories260k-awq", "tokenizer.json")); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := fromJSON("tokenizer.json", data, &config{})
		if err != nil {
			return
		}
		ids := tok.Encode(" hello <s>wörld 🦙\n", true)
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("id %d out of range %d", id, tok.VocabSize())
			}
		}
		if got, want := streamAll(t, tok, ids), tok.Decode(ids); got != want {
			t.Fatalf("stream %q != decode %q", got, want)
		}
	})
}

// FuzzLoadModel parses arbitrary tokenizer.model bytes.
func FuzzLoadModel(f *testing.F) {
	f.Add(spBytes(tinySPM()))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := fromSentencePiece("tokenizer.model", data, &config{})
		if err != nil {
			return
		}
		ids := tok.Encode(" hello <s>wörld 🦙\n", true)
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("id %d out of range %d", id, tok.VocabSize())
			}
		}
		if got, want := streamAll(t, tok, ids), tok.Decode(ids); got != want {
			t.Fatalf("stream %q != decode %q", got, want)
		}
	})
}

// tinyJSON is a small legacy-layout tokenizer.json.
const tinyJSON = `{
 "added_tokens": [{"id": 0, "content": "<unk>", "special": true}, {"id": 1, "content": "<s>", "special": true}, {"id": 2, "content": "</s>", "special": true}],
 "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
 "pre_tokenizer": null,
 "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
 "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
 "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
  "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x0A>": 3, "<0xF0>": 4, "<0x9F>": 5, "<0xA6>": 6, "<0x99>": 7, "▁": 8, "h": 9, "e": 10, "l": 11, "o": 12, "he": 13, "ll": 14, "hell": 15, "hello": 16, "▁hello": 17, "w": 18, "r": 19, "d": 20},
  "merges": ["h e", "l l", "he ll", "hell o", "▁ hello"]}
}`
