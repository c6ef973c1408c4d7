package lookup

import (
	"math/rand"
	"slices"
	"testing"
)

func TestTransformers(t *testing.T) {
	tests := []struct {
		name  string
		ctx   []int
		ngram int
		max   int
		want  []int
	}{
		{"bigram earliest", []int{1, 2, 3, 9, 1, 2, 4, 5, 1, 2}, 2, 3, []int{3, 9, 1}},
		{"falls back to unigram", []int{7, 5, 6, 8, 5}, 2, 2, []int{6, 8}},
		{"continuation cut at the end", []int{1, 2, 1}, 2, 10, []int{2, 1}},
		{"no match", []int{1, 2, 3}, 2, 5, nil},
		{"empty", nil, 2, 5, nil},
		{"cut at EOS", []int{4, 5, 6, 99, 7, 4}, 2, 5, []int{5, 6}},
		{"EOS first", []int{4, 99, 6, 4}, 2, 5, nil},
	}
	for _, tc := range tests {
		got := Transformers{Ngram: tc.ngram, EOS: []int{99}}.Draft(tc.ctx, tc.max)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: Draft(%v) = %v, want %v", tc.name, tc.ctx, got, tc.want)
		}
	}
}

func TestOriginal(t *testing.T) {
	tests := []struct {
		name string
		ctx  []int
		max  int
		want []int
	}{
		{"trigram earliest", []int{1, 2, 3, 4, 5, 1, 2, 3, 6, 1, 2, 3}, 3, []int{4, 5, 1}},
		// Needs a full continuation: (2 1)'s only earlier match is followed
		// by 3 tokens, short of 4, so the unigram (1) is used.
		{"full continuation required", []int{1, 5, 6, 7, 8, 2, 1, 9, 2, 1}, 4, []int{5, 6, 7, 8}},
		{"nothing long enough", []int{1, 2, 1}, 5, nil},
	}
	for _, tc := range tests {
		got := Original{Ngram: 3}.Draft(tc.ctx, tc.max)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: Draft(%v) = %v, want %v", tc.name, tc.ctx, got, tc.want)
		}
	}
}

// naiveVote is Index's rule written as a plain scan: the longest suffix
// (up to maxN) with earlier occurrences, at most limit of them, earliest
// first; each drafted token is the majority continuation of the occurrences
// still agreeing, ties to the earliest.
func naiveVote(ctx []int, maxN, limit, max int) []int {
	L := len(ctx)
	for n := min(maxN, L-1); n >= 1; n-- {
		var occ []int
		for i := 0; i+n < L && len(occ) < limit; i++ {
			if equal(ctx[i:i+n], ctx[L-n:]) {
				occ = append(occ, i+n)
			}
		}
		if len(occ) == 0 {
			continue
		}
		var out []int
		for j := 0; j < max; j++ {
			count := map[int]int{}
			for _, p := range occ {
				if p+j < L {
					count[ctx[p+j]]++
				}
			}
			best := -1
			for _, p := range occ {
				if p+j < L && (best < 0 || count[ctx[p+j]] > count[best]) {
					best = ctx[p+j]
				}
			}
			if best < 0 {
				break
			}
			out = append(out, best)
			var keep []int
			for _, p := range occ {
				if p+j < L && ctx[p+j] == best {
					keep = append(keep, p)
				}
			}
			occ = keep
		}
		return out
	}
	return nil
}

func TestIndexMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for trial := 0; trial < 60; trial++ {
		x := &Index{MaxNgram: 1 + rng.Intn(8), MaxCandidates: []int{0, 1, 3}[trial%3]}
		limit := x.MaxCandidates
		if limit == 0 {
			limit = DefaultCandidates
		}
		var ctx []int
		vocab := 2 + rng.Intn(6)
		for step := 0; step < 200; step++ {
			for range 1 + rng.Intn(4) {
				ctx = append(ctx, rng.Intn(vocab))
			}
			max := 1 + rng.Intn(10)
			got := x.Draft(ctx, max)
			want := naiveVote(ctx, x.MaxNgram, limit, max)
			if !slices.Equal(got, want) {
				t.Fatalf("maxN=%d limit=%d ctx=%v max=%d: got %v, want %v", x.MaxNgram, limit, ctx, max, got, want)
			}
		}
	}
}

func TestIndexVotes(t *testing.T) {
	// Only the unigram (5) occurred before: followed by 8 once and by 6 7
	// twice. The majority wins though 8 came first; after 6 7 the two
	// agreeing occurrences split 1 / 2 and the tie goes to the earliest.
	ctx := []int{5, 8, 0, 5, 6, 7, 1, 5, 6, 7, 2, 5}
	if got, want := NewIndex(3).Draft(ctx, 4), []int{6, 7, 1, 5}; !slices.Equal(got, want) {
		t.Errorf("Draft = %v, want %v", got, want)
	}
}

func TestIndexRestartsOnNewSequence(t *testing.T) {
	x := NewIndex(3)
	x.Draft([]int{1, 2, 3, 1, 2}, 4)
	ctx := []int{9, 8, 7, 9}
	if got, want := x.Draft(ctx, 4), []int{8, 7, 9}; !slices.Equal(got, want) {
		t.Errorf("after a new sequence: got %v, want %v", got, want)
	}
	if got := x.Draft([]int{9}, 4); got != nil {
		t.Errorf("shorter sequence: got %v, want nil", got)
	}
}

// TestReplayByHand checks the accounting on a sequence worked out on paper.
func TestReplayByHand(t *testing.T) {
	prompt := []int{10, 11, 12, 13, 14, 15}
	answer := []int{10, 11, 12, 20, 13, 14, 15, 21}
	// Transformers (n-gram 2, max 3):
	//  ctx ...15 10        : draft by (15 10)? none; (10) -> 11 12 13. answer[1:] = 11 12 20: accept 2, +1 -> pos 4
	//  ctx ...10 11 12 20  : (12 20) none; (20) none -> no draft; +1 -> pos 5 (13)
	//  ctx ...20 13        : (20 13) none; (13) -> 14 15 10, max = min(3, 8-5-1=2) -> 14 15; accept 2, +1 -> pos 8
	got := Replay(Transformers{Ngram: 2}, prompt, answer, 3)
	want := Stats{Tokens: 7, Steps: 3, Drafted: 5, Accepted: 4, Histogram: []int{1, 0, 2, 0}}
	if !slices.Equal(got.Histogram, want.Histogram) || got.Tokens != want.Tokens || got.Steps != want.Steps ||
		got.Drafted != want.Drafted || got.Accepted != want.Accepted {
		t.Fatalf("Replay = %+v, want %+v", got, want)
	}
	if tps := got.TokensPerStep(); tps != 7.0/3 {
		t.Errorf("TokensPerStep = %v, want 7/3", tps)
	}
	var sum Stats
	sum.Add(got)
	sum.Add(got)
	if sum.Steps != 6 || sum.Histogram[2] != 4 {
		t.Errorf("Add: %+v", sum)
	}
}

func BenchmarkDraft(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	ctx := make([]int, 7000)
	for i := range ctx {
		ctx[i] = rng.Intn(32000)
	}
	for _, d := range []struct {
		name string
		d    Drafter
	}{{"transformers", Transformers{Ngram: 2}}, {"original", Original{Ngram: 3}}, {"index", NewIndex(4)}} {
		b.Run(d.name, func(b *testing.B) {
			for b.Loop() {
				d.d.Draft(ctx, 10)
			}
		})
	}
}
