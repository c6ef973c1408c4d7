package tokenizer

import (
	"fmt"
	"unicode/utf8"
)

// bpeModel is tokenizers' BPE model: a word is split into characters (or
// byte pieces for characters outside the vocabulary) which are merged pair
// by pair, lowest merge rank first and leftmost first among equal ranks.
type bpeModel struct {
	vocab        map[string]int
	merges       map[uint64]merge // pairKey(left, right) -> merge
	byteIDs      [256]int         // id of "<0xNN>", -1 where missing
	unk          int              // -1 when there is no unk token
	byteFallback bool
	fuseUnk      bool
	ignoreMerges bool
}

type merge struct{ rank, id int32 }

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// symbol is one node of the doubly linked list a word is merged in.
type symbol struct {
	id         int32
	prev, next int32 // -1 at the ends
	size       int32 // bytes covered; 0 once merged into its left neighbour
}

// candidate is a possible merge of the symbol at pos with its right
// neighbour into id; it is stale if either has changed since it was queued.
type candidate struct{ rank, pos, id int32 }

func (a candidate) less(b candidate) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// byteToken returns the vocabulary piece for byte b, as tokenizers names it.
func byteToken(b byte) string { return fmt.Sprintf("<0x%02X>", b) }

// encodeWord appends the ids of one pre-tokenized word to ids.
func (m *bpeModel) encodeWord(ids []int, w string) []int {
	if w == "" {
		return ids
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[w]; ok {
			return append(ids, id)
		}
	}
	syms := make([]symbol, 0, len(w))
	add := func(id, size int) {
		n := int32(len(syms))
		syms = append(syms, symbol{id: int32(id), prev: n - 1, next: n + 1, size: int32(size)})
	}
	unkSize := 0 // pending unknown run; tokenizers emits it before the next known character
	for i := 0; i < len(w); {
		_, n := utf8.DecodeRuneInString(w[i:])
		c := w[i : i+n]
		i += n
		if id, ok := m.vocab[c]; ok {
			if unkSize > 0 {
				add(m.unk, unkSize)
				unkSize = 0
			}
			add(id, len(c))
			continue
		}
		if m.byteFallback && m.hasBytes(c) {
			for j := 0; j < len(c); j++ {
				add(m.byteIDs[c[j]], 1)
			}
			continue
		}
		if m.unk < 0 {
			continue // tokenizers fails here; we drop the character
		}
		if unkSize > 0 && !m.fuseUnk {
			add(m.unk, unkSize)
			unkSize = 0
		}
		unkSize += len(c)
	}
	if unkSize > 0 {
		add(m.unk, unkSize)
	}
	if len(syms) == 0 {
		return ids
	}
	syms[len(syms)-1].next = -1

	var q queue
	for i := 0; i+1 < len(syms); i++ {
		if mg, ok := m.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
			q.push(candidate{mg.rank, int32(i), mg.id})
		}
	}
	for len(q) > 0 {
		top := q.pop()
		s := &syms[top.pos]
		if s.size == 0 || s.next < 0 {
			continue
		}
		next := s.next
		right := &syms[next]
		if mg, ok := m.merges[pairKey(s.id, right.id)]; !ok || mg.id != top.id {
			continue
		}
		s.id = top.id
		s.size += right.size
		s.next = right.next
		right.size = 0
		if s.next >= 0 {
			syms[s.next].prev = top.pos
		}
		if s.prev >= 0 {
			if mg, ok := m.merges[pairKey(syms[s.prev].id, s.id)]; ok {
				q.push(candidate{mg.rank, s.prev, mg.id})
			}
		}
		if s.next >= 0 {
			if mg, ok := m.merges[pairKey(s.id, syms[s.next].id)]; ok {
				q.push(candidate{mg.rank, top.pos, mg.id})
			}
		}
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		ids = append(ids, int(syms[i].id))
	}
	return ids
}

func (m *bpeModel) hasBytes(c string) bool {
	for i := 0; i < len(c); i++ {
		if m.byteIDs[c[i]] < 0 {
			return false
		}
	}
	return true
}

// queue is a binary min-heap of merge candidates.
type queue []candidate

func (q *queue) push(c candidate) {
	h := append(*q, c)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	*q = h
}

func (q *queue) pop() candidate {
	h := *q
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h[l].less(h[m]) {
			m = l
		}
		if r < n && h[r].less(h[m]) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}
