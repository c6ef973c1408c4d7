package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// matcher finds added tokens in text the way tokenizers' AddedVocabulary
// does: leftmost-longest matches, then single_word, lstrip and rstrip
// applied to each match.
type matcher struct {
	byFirst map[byte][]*addedToken // by first byte, longest content first
}

// segment is a piece of text, or an added token found in it.
type segment struct {
	text  string
	start int         // byte offset of text in the string that was split
	token *addedToken // non-nil for an added token
}

func newMatcher(tokens []*addedToken) matcher {
	m := matcher{byFirst: map[byte][]*addedToken{}}
	for _, a := range tokens {
		if a.content == "" {
			continue
		}
		m.byFirst[a.content[0]] = append(m.byFirst[a.content[0]], a)
	}
	for _, l := range m.byFirst {
		sort.SliceStable(l, func(i, j int) bool { return len(l[i].content) > len(l[j].content) })
	}
	return m
}

// longestAt returns the longest token whose content starts s[i:].
func (m *matcher) longestAt(s string, i int) *addedToken {
	for _, a := range m.byFirst[s[i]] {
		if strings.HasPrefix(s[i:], a.content) {
			return a
		}
	}
	return nil
}

// split cuts s into text and added-token segments. Empty text segments are
// left out.
func (m *matcher) split(s string) []segment {
	if len(m.byFirst) == 0 {
		return []segment{{text: s}}
	}
	var out []segment
	done := 0 // s[:done] is already in out
	for i := 0; i < len(s); {
		a := m.longestAt(s, i)
		if a == nil {
			i++
			continue
		}
		start, stop := i, i+len(a.content)
		if a.singleWord && (endsWithWord(s[:start]) || startsWithWord(s[stop:])) {
			i = stop // the matcher moves past a rejected match, as aho-corasick's does
			continue
		}
		if a.lstrip {
			for start > done {
				r, n := utf8.DecodeLastRuneInString(s[:start])
				if !unicode.IsSpace(r) {
					break
				}
				start -= n
			}
		}
		if a.rstrip {
			for stop < len(s) {
				r, n := utf8.DecodeRuneInString(s[stop:])
				if !unicode.IsSpace(r) {
					break
				}
				stop += n
			}
		}
		if start > done {
			out = append(out, segment{text: s[done:start], start: done})
		}
		out = append(out, segment{start: start, token: a})
		done, i = stop, stop
	}
	if done < len(s) {
		out = append(out, segment{text: s[done:], start: done})
	}
	return out
}

// isWordRune is the regex class \w as tokenizers uses it for single_word
// tokens: Alphabetic, marks, decimal digits, connector punctuation and
// joiners.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) ||
		unicode.In(r, unicode.Nl, unicode.Other_Alphabetic, unicode.Nd, unicode.Pc, unicode.Join_Control)
}

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && isWordRune(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && isWordRune(r)
}
