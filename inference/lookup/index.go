package lookup

// Index is Brief's drafter. For n from MaxNgram down to MinNgram it looks
// the context's last n tokens up in a hash map of every earlier n-gram and
// drafts what followed the match (the most recent one unless Earliest).
// The maps grow incrementally as the context grows, so a Draft call costs
// O(MaxNgram + new tokens) instead of a scan of the whole context.
//
// An Index follows one growing sequence: each call's context must extend
// the previous one. A context that is shorter or visibly different (first
// or last known token changed) restarts the index; Reset does so
// explicitly. Not safe for concurrent use.
type Index struct {
	MaxNgram int  // longest n-gram matched
	MinNgram int  // shortest n-gram matched (at least 1)
	Earliest bool // prefer the earliest occurrence instead of the most recent

	seq  []int              // copy of the context indexed so far
	maps []map[uint64]int32 // maps[n-1]: hash of an n-gram -> start of what followed it
}

// NewIndex returns Brief's drafter with the n-gram range that measured best
// on the pld-replay data (see the package's Replay and the README).
func NewIndex(maxNgram int) *Index {
	if maxNgram <= 0 {
		maxNgram = DefaultNgram
	}
	return &Index{MaxNgram: maxNgram, MinNgram: 1}
}

// DefaultNgram is the longest n-gram Index matches unless told otherwise.
const DefaultNgram = 4

// Reset forgets the indexed sequence.
func (x *Index) Reset() {
	x.seq = x.seq[:0]
	x.maps = nil
}

// Draft implements Drafter.
func (x *Index) Draft(context []int, max int) []int {
	x.extend(context)
	L := len(x.seq)
	if max <= 0 || L < 2 {
		return nil
	}
	lo := max1(x.MinNgram)
	for n := min(x.MaxNgram, L-1); n >= lo; n-- {
		suffix := x.seq[L-n:]
		p, ok := x.maps[n-1][hashNgram(suffix)]
		if !ok || !equal(x.seq[int(p)-n:p], suffix) { // a collision counts as no match
			continue
		}
		return x.seq[p:min(int(p)+max, L)]
	}
	return nil
}

// extend indexes the tokens context added since the last call.
func (x *Index) extend(context []int) {
	if k := len(x.seq); k > 0 && (len(context) < k || context[0] != x.seq[0] || context[k-1] != x.seq[k-1]) {
		x.Reset()
	}
	if len(x.maps) != x.MaxNgram {
		x.maps = make([]map[uint64]int32, x.MaxNgram)
		for i := range x.maps {
			x.maps[i] = make(map[uint64]int32)
		}
		x.seq = x.seq[:0]
	}
	start := len(x.seq)
	x.seq = append(x.seq, context[start:]...)
	// Position i is the first token after an n-gram ending at i-1; only
	// positions that exist are indexed, so the suffix never matches itself.
	for i := max(start, 1); i < len(x.seq); i++ {
		for n := 1; n <= x.MaxNgram && n <= i; n++ {
			h := hashNgram(x.seq[i-n : i])
			m := x.maps[n-1]
			if x.Earliest {
				if _, ok := m[h]; ok {
					continue
				}
			}
			m[h] = int32(i)
		}
	}
}

// hashNgram mixes token ids into a 64-bit key (FNV-1a over 32-bit words).
func hashNgram(toks []int) uint64 {
	h := uint64(14695981039346656037)
	for _, t := range toks {
		h ^= uint64(uint32(t))
		h *= 1099511628211
	}
	return h
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}
