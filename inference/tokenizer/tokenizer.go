package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// Tokenizer turns text into token ids and back. It is safe for concurrent
// use once loaded.
type Tokenizer struct {
	pieces []string       // id -> piece; "" where an id has none
	vocab  map[string]int // model vocabulary: piece -> id
	bpe    bpeModel

	added   []addedToken   // in id order
	addedID map[string]int // added token content -> id
	special map[int]bool   // ids of special added tokens
	raw     matcher        // added tokens matched on the raw text
	normed  matcher        // added tokens matched on normalized text

	norm []normStep // normalizer, applied to each piece between added tokens
	meta *metaspace // pre-tokenizer; nil when there is none
	dec  []decStep  // decoder chain

	bos, eos int // -1 when the folder names none
	addBOS   bool
}

// addedToken is an entry of tokenizer.json's added_tokens (or of the files
// that stand in for it beside tokenizer.model).
type addedToken struct {
	id                                  int
	content                             string
	special, lstrip, rstrip, singleWord bool
	normalized                          bool
}

// normStep is one normalizer of the chain: Prepend (when prepend != "")
// or Replace (from -> to).
type normStep struct {
	prepend  string
	from, to string
}

// metaspace is the Metaspace pre-tokenizer.
type metaspace struct {
	replacement string
	prepend     string // "first", "always" or "never"
	split       bool
}

// BOS returns the beginning-of-sequence id, or -1 if the folder names none.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the end-of-sequence id, or -1 if the folder names none.
func (t *Tokenizer) EOS() int { return t.eos }

// AddBOS reports whether the tokenizer config asks for BOS at the start of
// an encoded text.
func (t *Tokenizer) AddBOS() bool { return t.addBOS }

// VocabSize returns the number of ids, added tokens included (the largest
// id plus one).
func (t *Tokenizer) VocabSize() int { return len(t.pieces) }

// TokenID returns the id of a piece of the vocabulary or of an added token.
func (t *Tokenizer) TokenID(piece string) (int, bool) {
	if id, ok := t.addedID[piece]; ok {
		return id, true
	}
	id, ok := t.vocab[piece]
	return id, ok
}

// Piece returns the vocabulary piece or added token content of id (for a
// token marked normalized, its normalized content, as tokenizers' id_to_token
// gives it), or "" for an id out of range.
func (t *Tokenizer) Piece(id int) string {
	if id < 0 || id >= len(t.pieces) {
		return ""
	}
	return t.pieces[id]
}

// IsSpecial reports whether id is a special added token (<s>, </s>,
// <|im_end|>, ...).
func (t *Tokenizer) IsSpecial(id int) bool { return t.special[id] }

// Encode returns the ids of text, with BOS first when addBOS is true and the
// folder names a BOS token. Added and special tokens written in the text are
// encoded as themselves, as tokenizers does. Invalid UTF-8 bytes are read as
// U+FFFD, one per byte.
func (t *Tokenizer) Encode(text string, addBOS bool) []int {
	text = validUTF8(text)
	var ids []int
	if addBOS && t.bos >= 0 {
		ids = append(ids, t.bos)
	}
	for _, seg := range t.raw.split(text) {
		if seg.token != nil {
			ids = append(ids, seg.token.id)
			continue
		}
		ids = t.encodeSegment(ids, seg.text, seg.start == 0)
	}
	return ids
}

// encodeSegment encodes a piece of text between added tokens: normalize,
// split out normalized added tokens, pre-tokenize, BPE.
func (t *Tokenizer) encodeSegment(ids []int, s string, atStart bool) []int {
	s = t.normalize(s)
	for _, seg := range t.normed.split(s) {
		if seg.token != nil {
			ids = append(ids, seg.token.id)
			continue
		}
		for _, w := range t.preTokenize(seg.text, atStart && seg.start == 0) {
			ids = t.bpe.encodeWord(ids, w)
		}
	}
	return ids
}

func (t *Tokenizer) normalize(s string) string {
	for _, n := range t.norm {
		switch {
		case n.prepend != "":
			if s != "" {
				s = n.prepend + s
			}
		case n.from != "":
			s = strings.ReplaceAll(s, n.from, n.to)
		}
	}
	return s
}

// preTokenize applies the Metaspace pre-tokenizer as tokenizers does: spaces
// become the replacement, which is prepended unless the piece already starts
// with it ("first": only for the piece at the start of the text).
func (t *Tokenizer) preTokenize(s string, atStart bool) []string {
	if s == "" {
		return nil
	}
	m := t.meta
	if m == nil {
		return []string{s}
	}
	s = strings.ReplaceAll(s, " ", m.replacement)
	if !strings.HasPrefix(s, m.replacement) &&
		(m.prepend == "always" || (m.prepend == "first" && atStart)) {
		s = m.replacement + s
	}
	if !m.split {
		return []string{s}
	}
	// Split with each replacement starting a new word (MergedWithNext).
	var words []string
	for len(s) > 0 {
		i := strings.Index(s[1:], m.replacement)
		if i < 0 {
			words = append(words, s)
			break
		}
		words = append(words, s[:i+1])
		s = s[i+1:]
	}
	return words
}

// validUTF8 replaces each invalid byte of s by U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}
