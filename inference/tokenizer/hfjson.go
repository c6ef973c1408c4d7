package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// component is any normalizer, pre-tokenizer, decoder or post-processor
// of tokenizer.json; each reads the fields it knows.
type component struct {
	Type        string            `json:"type"`
	Normalizers []json.RawMessage `json:"normalizers"`
	Pretoks     []json.RawMessage `json:"pretokenizers"`
	Decoders    []json.RawMessage `json:"decoders"`
	Prepend     string            `json:"prepend"`
	Pattern     struct {
		String *string `json:"String"`
		Regex  *string `json:"Regex"`
	} `json:"pattern"`
	Content        json.RawMessage `json:"content"` // a string, or a rune for Strip
	Start          int             `json:"start"`
	Stop           int             `json:"stop"`
	Replacement    string          `json:"replacement"`
	PrependScheme  *string         `json:"prepend_scheme"`
	AddPrefixSpace *bool           `json:"add_prefix_space"`
	Split          *bool           `json:"split"`
	Single         []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
		Sequence *struct{} `json:"Sequence"`
	} `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
}

func isNull(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "null"
}

// fromJSON builds a tokenizer from the bytes of tokenizer.json (named file
// in errors) and the folder's config.
func fromJSON(file string, data []byte, cfg *config) (*Tokenizer, error) {
	var j struct {
		Added         []addedJSON     `json:"added_tokens"`
		Normalizer    json.RawMessage `json:"normalizer"`
		PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
		PostProcessor json.RawMessage `json:"post_processor"`
		Decoder       json.RawMessage `json:"decoder"`
		Model         struct {
			Type         string          `json:"type"`
			Dropout      *float64        `json:"dropout"`
			Unk          *string         `json:"unk_token"`
			Prefix       *string         `json:"continuing_subword_prefix"`
			Suffix       *string         `json:"end_of_word_suffix"`
			FuseUnk      bool            `json:"fuse_unk"`
			ByteFallback bool            `json:"byte_fallback"`
			IgnoreMerges bool            `json:"ignore_merges"`
			Vocab        map[string]int  `json:"vocab"`
			Merges       json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	m := &j.Model
	if m.Type == "" && m.Merges != nil {
		m.Type = "BPE" // files written before the type was recorded
	}
	if m.Type != "BPE" {
		return nil, fmt.Errorf("%s: model.type %q is not supported (want BPE)", file, m.Type)
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return nil, fmt.Errorf("%s: model.dropout %v is not supported (want null)", file, *m.Dropout)
	}
	if (m.Prefix != nil && *m.Prefix != "") || (m.Suffix != nil && *m.Suffix != "") {
		return nil, fmt.Errorf("%s: model.continuing_subword_prefix and end_of_word_suffix are not supported", file)
	}
	if len(m.Vocab) == 0 {
		return nil, fmt.Errorf("%s: model.vocab is empty", file)
	}
	t := &Tokenizer{vocab: m.Vocab, bos: -1, eos: -1}
	t.bpe = newBPE(m.Vocab)
	t.bpe.byteFallback, t.bpe.fuseUnk, t.bpe.ignoreMerges = m.ByteFallback, m.FuseUnk, m.IgnoreMerges
	if m.Unk != nil {
		id, ok := m.Vocab[*m.Unk]
		if !ok {
			return nil, fmt.Errorf("%s: model.unk_token %q is not in model.vocab", file, *m.Unk)
		}
		t.bpe.unk = id
	}
	pairs, err := parseMerges(m.Merges)
	if err != nil {
		return nil, fmt.Errorf("%s: model.merges: %w", file, err)
	}
	for rank, p := range pairs {
		a, okA := m.Vocab[p[0]]
		b, okB := m.Vocab[p[1]]
		c, okC := m.Vocab[p[0]+p[1]]
		if !okA || !okB || !okC {
			return nil, fmt.Errorf("%s: model.merges[%d] %q + %q: token not in model.vocab", file, rank, p[0], p[1])
		}
		t.bpe.merges[pairKey(int32(a), int32(b))] = merge{rank: int32(rank), id: int32(c)}
	}

	if !isNull(j.Normalizer) {
		if t.norm, err = parseNormalizer(j.Normalizer, 0); err != nil {
			return nil, fmt.Errorf("%s: normalizer: %w", file, err)
		}
	}
	if !isNull(j.PreTokenizer) {
		if t.meta, err = parsePreTokenizer(j.PreTokenizer, 0); err != nil {
			return nil, fmt.Errorf("%s: pre_tokenizer: %w", file, err)
		}
	}
	if isNull(j.Decoder) {
		return nil, fmt.Errorf("%s: decoder is null; a SentencePiece-BPE tokenizer needs one", file)
	}
	if t.dec, err = parseDecoder(j.Decoder, 0); err != nil {
		return nil, fmt.Errorf("%s: decoder: %w", file, err)
	}
	if err := checkStream(t.dec); err != nil {
		return nil, fmt.Errorf("%s: decoder: %w", file, err)
	}

	added := make([]addedToken, 0, len(j.Added))
	for i, a := range j.Added {
		if a.ID == nil || *a.ID < 0 {
			return nil, fmt.Errorf("%s: added_tokens[%d] %q has no valid id", file, i, a.Content)
		}
		added = append(added, addedToken{id: *a.ID, content: a.Content, special: a.Special,
			lstrip: a.Lstrip, rstrip: a.Rstrip, singleWord: a.SingleWord, normalized: a.Normalized})
	}
	bos, addBOS := postProcessorBOS(j.PostProcessor)
	if err := t.finish(file, added, cfg, bos, -1, addBOS); err != nil {
		return nil, err
	}
	return t, nil
}

// parseMerges reads merges written as "a b" strings or as [a, b] pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, fmt.Errorf("entry %d %q is not two tokens separated by a space", i, s)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("want a list of \"a b\" strings or [a, b] pairs")
	}
	out := make([][2]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("entry %d has %d tokens, want 2", i, len(p))
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

// maxDepth bounds how deeply Sequences may nest.
const maxDepth = 8

func parseComponent(raw json.RawMessage, depth int) (*component, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("Sequences nested more than %d deep", maxDepth)
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *component) stringContent() (string, error) {
	var s string
	if err := json.Unmarshal(c.Content, &s); err != nil {
		return "", fmt.Errorf("%s: content must be a string", c.Type)
	}
	return s, nil
}

func (c *component) replacePattern() (string, error) {
	if c.Pattern.String == nil {
		return "", fmt.Errorf("%s: only String patterns are supported", c.Type)
	}
	if *c.Pattern.String == "" {
		return "", fmt.Errorf("%s: pattern is empty", c.Type)
	}
	return *c.Pattern.String, nil
}

func parseNormalizer(raw json.RawMessage, depth int) ([]normStep, error) {
	c, err := parseComponent(raw, depth)
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		var out []normStep
		for _, sub := range c.Normalizers {
			steps, err := parseNormalizer(sub, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, steps...)
		}
		return out, nil
	case "Prepend":
		if c.Prepend == "" {
			return nil, nil
		}
		return []normStep{{prepend: c.Prepend}}, nil
	case "Replace":
		from, err := c.replacePattern()
		if err != nil {
			return nil, err
		}
		to, err := c.stringContent()
		if err != nil {
			return nil, err
		}
		return []normStep{{from: from, to: to}}, nil
	}
	return nil, fmt.Errorf("type %q is not supported (want Sequence, Prepend or Replace)", c.Type)
}

func parsePreTokenizer(raw json.RawMessage, depth int) (*metaspace, error) {
	c, err := parseComponent(raw, depth)
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		if len(c.Pretoks) != 1 {
			return nil, fmt.Errorf("a Sequence of %d pre-tokenizers is not supported (want one Metaspace)", len(c.Pretoks))
		}
		return parsePreTokenizer(c.Pretoks[0], depth+1)
	case "Metaspace":
		m := &metaspace{replacement: c.Replacement, prepend: "always", split: true}
		if utf8.RuneCountInString(m.replacement) != 1 {
			return nil, fmt.Errorf("Metaspace: replacement %q must be one character", m.replacement)
		}
		if c.Split != nil {
			m.split = *c.Split
		}
		m.prepend, err = prependScheme(c)
		return m, err
	}
	return nil, fmt.Errorf("type %q is not supported (want null or Metaspace)", c.Type)
}

func prependScheme(c *component) (string, error) {
	if c.PrependScheme != nil {
		switch *c.PrependScheme {
		case "first", "always", "never":
			return *c.PrependScheme, nil
		}
		return "", fmt.Errorf("Metaspace: prepend_scheme %q is not first, always or never", *c.PrependScheme)
	}
	if c.AddPrefixSpace != nil && !*c.AddPrefixSpace {
		return "never", nil
	}
	return "always", nil
}

func parseDecoder(raw json.RawMessage, depth int) ([]decStep, error) {
	c, err := parseComponent(raw, depth)
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		var out []decStep
		for _, sub := range c.Decoders {
			steps, err := parseDecoder(sub, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, steps...)
		}
		return out, nil
	case "Replace":
		from, err := c.replacePattern()
		if err != nil {
			return nil, err
		}
		to, err := c.stringContent()
		if err != nil {
			return nil, err
		}
		return []decStep{{kind: decReplace, from: from, to: to}}, nil
	case "ByteFallback":
		return []decStep{{kind: decByteFallback}}, nil
	case "Fuse":
		return []decStep{{kind: decFuse}}, nil
	case "Strip":
		s, err := c.stringContent()
		if err != nil || utf8.RuneCountInString(s) != 1 {
			return nil, fmt.Errorf("Strip: content must be one character")
		}
		if c.Start < 0 || c.Stop < 0 {
			return nil, fmt.Errorf("Strip: start and stop must not be negative")
		}
		r, _ := utf8.DecodeRuneInString(s)
		return []decStep{{kind: decStrip, content: r, start: c.Start, stop: c.Stop}}, nil
	case "Metaspace":
		if utf8.RuneCountInString(c.Replacement) != 1 {
			return nil, fmt.Errorf("Metaspace: replacement %q must be one character", c.Replacement)
		}
		scheme, err := prependScheme(c)
		if err != nil {
			return nil, err
		}
		return []decStep{{kind: decMetaspace, replacement: c.Replacement, dropFirst: scheme != "never"}}, nil
	}
	return nil, fmt.Errorf("type %q is not supported (want Sequence, Replace, ByteFallback, Fuse, Strip or Metaspace)", c.Type)
}

// checkStream refuses chains a Stream could not decode piecewise: a Strip
// of the end of the fused text would need the whole text first.
func checkStream(steps []decStep) error {
	fused := false
	for _, d := range steps {
		switch {
		case d.kind == decFuse:
			fused = true
		case d.kind == decStrip && fused && d.stop > 0:
			return fmt.Errorf("Strip with stop %d after Fuse is not supported", d.stop)
		}
	}
	return nil
}

// postProcessorBOS reads a TemplateProcessing post-processor: the id of the
// special token before the sequence in the single template, if any.
func postProcessorBOS(raw json.RawMessage) (int, bool) {
	if isNull(raw) {
		return -1, false
	}
	c, err := parseComponent(raw, 0)
	if err != nil || c.Type != "TemplateProcessing" {
		return -1, false
	}
	for _, p := range c.Single {
		if p.Sequence != nil {
			break
		}
		if p.SpecialToken != nil {
			if st, ok := c.SpecialTokens[p.SpecialToken.ID]; ok && len(st.IDs) == 1 && st.IDs[0] >= 0 {
				return st.IDs[0], true
			}
		}
	}
	return -1, false
}
