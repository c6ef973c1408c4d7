package lookup

// Index is Brief's drafter. It finds the longest suffix of the context, up
// to MaxNgram tokens, that occurred earlier, and drafts by majority vote
// over all its earlier occurrences (at most MaxCandidates, the earliest):
// each drafted token is the one that most of the still-agreeing
// occurrences continue with (ties go to the earliest occurrence), and
// occurrences that disagree drop out. With one occurrence this is plain
// prompt lookup; with several it follows the phrase the text repeats most.
// On the pld-replay data this beats first-match drafting (see Replay and
// the README's table).
//
// Occurrences come from hash maps of every n-gram (n <= MaxNgram), updated
// incrementally as the context grows, so a call costs O(MaxNgram × new
// tokens + MaxCandidates × max) instead of a scan of the whole context.
//
// An Index follows one growing sequence: each call's context must extend
// the previous one. A context that is shorter or visibly different (first
// or last indexed token changed) restarts the index; Reset does so
// explicitly. Not safe for concurrent use.
type Index struct {
	MaxNgram      int // longest n-gram matched
	MaxCandidates int // occurrences that vote; 0 means DefaultCandidates

	seq   []int                // copy of the context indexed so far
	maps  []map[uint64][]int32 // maps[n-1]: hash of an n-gram -> starts of what followed it, increasing
	cands []int32              // scratch: voting occurrences
	votes map[int]int          // scratch: token -> votes
}

// Defaults of Index, the values that measured best on pld-replay.
const (
	DefaultNgram      = 8
	DefaultCandidates = 64
)

// NewIndex returns Brief's drafter matching n-grams up to maxNgram tokens
// (DefaultNgram if maxNgram <= 0).
func NewIndex(maxNgram int) *Index {
	if maxNgram <= 0 {
		maxNgram = DefaultNgram
	}
	return &Index{MaxNgram: maxNgram}
}

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
	limit := x.MaxCandidates
	if limit <= 0 {
		limit = DefaultCandidates
	}
	for n := min(x.MaxNgram, L-1); n >= 1; n-- {
		suffix := x.seq[L-n:]
		x.cands = x.cands[:0]
		for _, p := range x.maps[n-1][hashNgram(suffix)] {
			if equal(x.seq[int(p)-n:p], suffix) { // skip hash collisions
				x.cands = append(x.cands, p)
				if len(x.cands) == limit {
					break
				}
			}
		}
		if len(x.cands) > 0 {
			return x.vote(max)
		}
	}
	return nil
}

// vote drafts up to max tokens from the occurrences in x.cands.
func (x *Index) vote(max int) []int {
	if x.votes == nil {
		x.votes = make(map[int]int)
	}
	L := len(x.seq)
	var out []int
	cands := x.cands
	for j := 0; j < max && len(cands) > 0; j++ {
		clear(x.votes)
		for _, p := range cands {
			if int(p)+j < L {
				x.votes[x.seq[int(p)+j]]++
			}
		}
		best, bestVotes := -1, 0
		for _, p := range cands { // earliest first: ties go to it
			if int(p)+j < L {
				if t := x.seq[int(p)+j]; x.votes[t] > bestVotes {
					best, bestVotes = t, x.votes[t]
				}
			}
		}
		if best < 0 {
			break
		}
		out = append(out, best)
		k := 0
		for _, p := range cands {
			if int(p)+j < L && x.seq[int(p)+j] == best {
				cands[k] = p
				k++
			}
		}
		cands = cands[:k]
	}
	return out
}

// extend indexes the tokens context added since the last call.
func (x *Index) extend(context []int) {
	if k := len(x.seq); k > 0 && (len(context) < k || context[0] != x.seq[0] || context[k-1] != x.seq[k-1]) {
		x.Reset()
	}
	if len(x.maps) != x.MaxNgram {
		x.maps = make([]map[uint64][]int32, x.MaxNgram)
		for i := range x.maps {
			x.maps[i] = make(map[uint64][]int32)
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
			x.maps[n-1][h] = append(x.maps[n-1][h], int32(i))
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
