package main

// The replay benchmark: recorded greedy answers (pld-replay) replayed on
// the engine, greedy and with prompt lookup.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/briefapp/brief/inference"
	"github.com/briefapp/brief/inference/lookup"
	"github.com/briefapp/brief/inference/tokenizer"
)

// replayResult is one data set replayed on the engine.
type replayResult struct {
	Dataset       string  `json:"dataset"`
	Cases         int     `json:"cases"`
	Skipped       int     `json:"skipped"` // prompt + answer longer than the engine's context
	AnswerTokens  int     `json:"answer_tokens"`
	Tokens        int     `json:"decode_tokens"` // answer tokens after the first (which prefill gives)
	GreedySteps   int     `json:"greedy_steps"`
	GreedyMS      float64 `json:"greedy_ms"`
	GreedyTPS     float64 `json:"greedy_tokens_per_s"`
	LookupSteps   int     `json:"lookup_steps"`
	LookupMS      float64 `json:"lookup_ms"`
	LookupTPS     float64 `json:"lookup_tokens_per_s"`
	Speedup       float64 `json:"speedup"`
	TokensPerStep float64 `json:"tokens_per_step"`
	Drafted       int     `json:"drafted"`
	Accepted      int     `json:"accepted"`
	Histogram     []int   `json:"histogram"`
}

// replaySet is a named list of cases.
type replaySet struct {
	name  string
	cases []lookup.Case
}

// loadReplays reads and tokenizes the replay data sets and the
// continuation, before the engine is opened (bad paths fail fast).
func loadReplays(o *benchOptions, tok *tokenizer.Tokenizer, prompt []int) ([]replaySet, error) {
	var sets []replaySet
	for _, p := range o.replays {
		dialogs, err := lookup.LoadDialogs(p)
		if err != nil {
			return nil, fmt.Errorf("replay data set: %w", err)
		}
		if o.replayCases > 0 && len(dialogs) > o.replayCases {
			dialogs = dialogs[:o.replayCases]
		}
		cases := lookup.Cases(tok, dialogs)
		if o.replayCases > 0 && len(cases) > o.replayCases {
			cases = cases[:o.replayCases]
		}
		sets = append(sets, replaySet{name: filepath.Base(p), cases: cases})
	}
	if o.continuation != "" {
		b, err := os.ReadFile(o.continuation)
		if err != nil {
			return nil, fmt.Errorf("continuation: %w", err)
		}
		text := strings.TrimSpace(string(b))
		if text == "" {
			return nil, fmt.Errorf("continuation %s is empty", o.continuation)
		}
		ans := tok.Encode(text, false)
		sets = append(sets, replaySet{name: "continuation " + filepath.Base(o.continuation),
			cases: []lookup.Case{{Prompt: prompt, Answer: ans}}})
	}
	return sets, nil
}

// replayOnEngine replays a data set's recorded greedy answers on the
// engine: every step is a real Verify of the tokens the generation loop
// would send; only acceptance follows the recording (the synthetic
// weights' own choices mean nothing). Greedy feeds one answer token per
// step; lookup drafts with lookup.Index from the context so far, verifies
// [last token] + drafts, accepts the drafts' longest prefix equal to the
// answer plus one token, and rolls back the rest, exactly as lookup.Replay
// counts it. Only decode is timed (drafting included).
func replayOnEngine(ctx context.Context, eng inference.Engine, s replaySet, draftMax, ngram int) (replayResult, error) {
	res := replayResult{Dataset: s.name, Histogram: make([]int, draftMax+1)}
	var greedy, look time.Duration
	for ci, c := range s.cases {
		if len(c.Answer) == 0 {
			continue
		}
		if len(c.Prompt)+len(c.Answer) > eng.MaxContext() {
			res.Skipped++
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		fail := func(err error) (replayResult, error) {
			return res, fmt.Errorf("replay %s case %d (prompt %d tokens, answer %d): %w", s.name, ci, len(c.Prompt), len(c.Answer), err)
		}
		res.Cases++
		res.AnswerTokens += len(c.Answer)
		res.Tokens += len(c.Answer) - 1

		// Greedy: one recorded token per step.
		eng.Reset()
		if _, err := eng.Prefill(ctx, c.Prompt); err != nil {
			return fail(err)
		}
		start := time.Now()
		for pos := 1; pos < len(c.Answer); pos++ {
			if _, err := eng.Verify(c.Answer[pos-1 : pos]); err != nil {
				return fail(err)
			}
			res.GreedySteps++
		}
		greedy += time.Since(start)

		// Lookup: the generation loop's step shape, acceptance from the answer.
		eng.Reset()
		if _, err := eng.Prefill(ctx, c.Prompt); err != nil {
			return fail(err)
		}
		d := lookup.NewIndex(ngram)
		seq := make([]int, 0, len(c.Prompt)+len(c.Answer))
		seq = append(append(seq, c.Prompt...), c.Answer[0])
		in := make([]int, 0, inference.MaxVerify)
		start = time.Now()
		for pos := 1; pos < len(c.Answer); {
			room := min(draftMax, len(c.Answer)-pos-1)
			drafts := d.Draft(seq, room)
			drafts = drafts[:min(len(drafts), room)]
			in = append(append(in[:0], c.Answer[pos-1]), drafts...)
			base := eng.Len()
			next, err := eng.Verify(in)
			if err != nil {
				return fail(err)
			}
			if len(next) != len(in) {
				return fail(fmt.Errorf("engine returned %d tokens for %d", len(next), len(in)))
			}
			k := 0
			for k < len(drafts) && drafts[k] == c.Answer[pos+k] {
				k++
			}
			if k < len(drafts) {
				if err := eng.Rollback(base + 1 + k); err != nil {
					return fail(err)
				}
			}
			res.LookupSteps++
			res.Drafted += len(drafts)
			res.Accepted += k
			res.Histogram[k]++
			seq = append(seq, c.Answer[pos:pos+k+1]...)
			pos += k + 1
		}
		look += time.Since(start)
	}
	res.GreedyMS, res.LookupMS = ms(greedy), ms(look)
	if greedy > 0 {
		res.GreedyTPS = float64(res.Tokens) / greedy.Seconds()
	}
	if look > 0 {
		res.LookupTPS = float64(res.Tokens) / look.Seconds()
	}
	if res.GreedyTPS > 0 {
		res.Speedup = res.LookupTPS / res.GreedyTPS
	}
	if res.LookupSteps > 0 {
		res.TokensPerStep = float64(res.Tokens) / float64(res.LookupSteps)
	}
	return res, nil
}
