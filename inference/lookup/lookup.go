// Package lookup holds prompt lookup drafters: they propose the tokens that
// followed an earlier occurrence of the context's last few tokens, for the
// model to verify in one step.
//
// Three drafters are kept so they can be measured against each other
// (Replay): transformers' (earliest match, n-gram up to 2), the original
// prompt-lookup-decoding repository's (earliest match, n-gram up to 3, full
// continuation required) and ours (Index: longest n-gram, most recent match,
// found through hash maps updated incrementally, so a step costs O(n-gram)).
package lookup

import "slices"

// Drafter proposes up to max tokens to follow context (prompt + generated
// so far). It returns nil when it has nothing to propose. The returned slice
// may alias context; callers must not modify it.
type Drafter interface {
	Draft(context []int, max int) []int
}

// Transformers is the drafter of Hugging Face transformers'
// PromptLookupCandidateGenerator: for n from Ngram down to 1, the earliest
// earlier occurrence of the last n tokens that has at least one token after
// it; the draft is up to max tokens that follow it, cut before the first
// EOS id.
type Transformers struct {
	Ngram int   // max_matching_ngram_size; transformers' default is 2
	EOS   []int // eos_token_id
}

// Draft implements Drafter by scanning the whole context (O(len) per call,
// as transformers does).
func (tr Transformers) Draft(context []int, max int) []int {
	L := len(context)
	for n := min(tr.Ngram, L-1); n >= 1; n-- {
		suffix := context[L-n:]
		for i := 0; i+n < L; i++ { // i+n < L: something follows the match
			if equal(context[i:i+n], suffix) {
				d := context[i+n : min(i+n+max, L)]
				for j, t := range d {
					if slices.Contains(tr.EOS, t) {
						d = d[:j]
						break
					}
				}
				if len(d) == 0 {
					return nil
				}
				return d
			}
		}
	}
	return nil
}

// Original is the drafter of the prompt-lookup-decoding repository
// (apoorvumang/prompt-lookup-decoding, find_candidate_pred_tokens): for n
// from Ngram down to 1, the earliest occurrence whose continuation holds a
// full max tokens inside the context and that is not the suffix itself.
type Original struct {
	Ngram int // max_ngram_size; the repository uses 3
}

// Draft implements Drafter by scanning the whole context.
func (d Original) Draft(context []int, max int) []int {
	L := len(context)
	if max <= 0 {
		return nil
	}
	for n := min(d.Ngram, L); n >= 1; n-- {
		suffix := context[L-n:]
		for i := 0; i+n <= L; i++ {
			start, end := i+n, i+n+max
			if end <= L && start < L-n && equal(context[i:start], suffix) {
				return context[start:end]
			}
		}
	}
	return nil
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
