package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// decKind names a decoder of tokenizers' decoder chain.
type decKind int

const (
	decReplace      decKind = iota // from -> to in each token
	decByteFallback                // runs of <0xNN> tokens -> UTF-8 text
	decFuse                        // all tokens -> one
	decStrip                       // cut content from each token's ends
	decMetaspace                   // replacement -> ' ', dropped in the first token
)

// decStep is one decoder of the chain.
type decStep struct {
	kind        decKind
	from, to    string // Replace
	content     rune   // Strip
	start, stop int    // Strip
	replacement string // Metaspace
	dropFirst   bool   // Metaspace: prepend_scheme is not "never"
}

// decState carries what a chain needs across the segments a Stream decodes
// it in: how many tokens came before, and how many leading characters each
// Strip that follows a Fuse may still cut (it cuts the start of the whole
// text, not of each segment).
type decState struct {
	index int
	strip map[int]int // step index -> characters left to strip
}

// Decode returns the text of ids, as tokenizers' decode with
// skip_special_tokens=False: special tokens appear as their content. Ids
// out of range are skipped.
func (t *Tokenizer) Decode(ids []int) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && id < len(t.pieces) {
			toks = append(toks, t.pieces[id])
		}
	}
	var st decState
	return strings.Join(t.decodeChain(toks, &st), "")
}

// decodeChain runs the decoder chain over toks, which follow st.index
// earlier tokens, and advances st.
func (t *Tokenizer) decodeChain(toks []string, st *decState) []string {
	fused := false
	for k, d := range t.dec {
		switch d.kind {
		case decReplace:
			for i, s := range toks {
				toks[i] = strings.ReplaceAll(s, d.from, d.to)
			}
		case decByteFallback:
			toks = byteFallback(toks)
		case decFuse:
			toks = []string{strings.Join(toks, "")}
			fused = true
		case decStrip:
			for i, s := range toks {
				if fused {
					toks[i] = st.stripStart(k, s, d)
				} else {
					toks[i] = stripToken(s, d)
				}
			}
		case decMetaspace:
			for i, s := range toks {
				if st.index+i == 0 && d.dropFirst {
					toks[i] = strings.ReplaceAll(s, d.replacement, "")
				} else {
					toks[i] = strings.ReplaceAll(s, d.replacement, " ")
				}
			}
		}
	}
	return toks
}

// stripStart cuts up to d.start leading d.content characters from the
// start of the whole fused text, s being its next part.
func (st *decState) stripStart(k int, s string, d decStep) string {
	if st.strip == nil {
		st.strip = map[int]int{}
	}
	left, ok := st.strip[k]
	if !ok {
		left = d.start
	}
	for left > 0 && s != "" {
		r, n := utf8.DecodeRuneInString(s)
		if r != d.content {
			left = 0
			break
		}
		s = s[n:]
		left--
	}
	st.strip[k] = left
	return s
}

// stripToken is tokenizers' Strip on one token.
func stripToken(s string, d decStep) string {
	rs := []rune(s)
	lo := 0
	for lo < d.start && lo < len(rs) && rs[lo] == d.content {
		lo++
	}
	hi := len(rs)
	for n := 0; n < d.stop && hi > lo && rs[hi-1] == d.content; n++ {
		hi--
	}
	return string(rs[lo:hi])
}

// byteValue returns the byte a "<0xNN>" token stands for.
func byteValue(s string) (byte, bool) {
	if len(s) != 6 || s[:3] != "<0x" || s[5] != '>' {
		return 0, false
	}
	hi, ok1 := hexDigit(s[3])
	lo, ok2 := hexDigit(s[4])
	return hi<<4 | lo, ok1 && ok2
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// byteFallback turns each run of byte tokens into its UTF-8 text, or into
// one U+FFFD per byte when the run is not valid UTF-8, as tokenizers does.
func byteFallback(toks []string) []string {
	out := toks[:0:0]
	var run []byte
	flush := func() {
		if len(run) == 0 {
			return
		}
		if utf8.Valid(run) {
			out = append(out, string(run))
		} else {
			for range run {
				out = append(out, "\uFFFD")
			}
		}
		run = run[:0]
	}
	for _, s := range toks {
		if b, ok := byteValue(s); ok {
			run = append(run, b)
			continue
		}
		flush()
		out = append(out, s)
	}
	flush()
	return out
}

// Stream decodes ids one at a time. The concatenation of everything Next
// and Flush return equals Decode of all the ids, and no piece returned ever
// holds broken UTF-8: byte tokens are held back until the run ends.
type Stream struct {
	t       *Tokenizer
	st      decState
	pending []string
	holdRun bool // the chain has ByteFallback
	skip    bool // drop special tokens
}

// NewStream returns a Stream over t's decoder.
func NewStream(t *Tokenizer) *Stream {
	s := &Stream{t: t}
	for _, d := range t.dec {
		if d.kind == decByteFallback {
			s.holdRun = true
		}
	}
	return s
}

// NewTextStream is NewStream for text shown to people: special tokens
// (<s>, </s>, <|im_end|>) are dropped, as tokenizers' decode with
// skip_special_tokens=True drops them. A small model that emits <s> in the
// middle of a story should not print it.
func NewTextStream(t *Tokenizer) *Stream {
	s := NewStream(t)
	s.skip = true
	return s
}

// Next adds one id and returns the text it completes (possibly "").
func (s *Stream) Next(id int) string {
	if id < 0 || id >= len(s.t.pieces) || s.skip && s.t.special[id] {
		return ""
	}
	p := s.t.pieces[id]
	s.pending = append(s.pending, p)
	if _, ok := byteValue(p); ok && s.holdRun {
		return ""
	}
	return s.Flush()
}

// Flush returns the text of any ids held back; call it at the end.
func (s *Stream) Flush() string {
	if len(s.pending) == 0 {
		return ""
	}
	n := len(s.pending)
	out := strings.Join(s.t.decodeChain(s.pending, &s.st), "")
	s.st.index += n
	s.pending = s.pending[:0]
	return out
}
