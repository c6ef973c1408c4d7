package inference

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/briefapp/brief/inference/lookup"
)

// Stop reasons of a Report.
const (
	StopEOS         = "eos"
	StopMaxTokens   = "max_tokens"
	StopCancelled   = "cancelled"
	StopContextFull = "context_full"
)

// DefaultLookupTokens is prompt_lookup_num_tokens of the reference run.
const DefaultLookupTokens = 10

// Generate runs req on eng from an empty cache: prefill, then one Verify
// step at a time, greedy or with prompt lookup drafts, until an EOS id,
// req.MaxNewTokens, a full context or cancellation. Prompt lookup yields
// exactly the tokens greedy decoding does; it only takes fewer steps.
//
// emit (may be nil) receives, in order: text deltas decoded by dec (which
// may be nil; EOS ids are not decoded), one StepStats per engine step and
// the final Report. It runs on the caller's goroutine: keep it quick.
//
// The EOS id that stops a run is part of the report's TokenIDs and counts
// as a new token, as in transformers. On cancellation (ctx checked before
// every step and between prefill chunks) Generate returns the partial
// report, StopReason "cancelled", together with an error wrapping
// ctx.Err(). Other errors return a nil report.
func Generate(ctx context.Context, eng Engine, dec TextDecoder, req Request, emit func(Event)) (*Report, error) {
	if emit == nil {
		emit = func(Event) {}
	}
	if err := checkRequest(eng, req); err != nil {
		return nil, err
	}
	g := &run{eng: eng, dec: dec, req: req, emit: emit, start: time.Now()}
	g.rep.PromptTokens = len(req.Prompt)
	g.rep.Histogram = []int{0}
	if req.Strategy == Lookup {
		g.draftMax = req.LookupTokens
		if g.draftMax <= 0 {
			g.draftMax = DefaultLookupTokens
		}
		g.draftMax = min(g.draftMax, MaxVerify-1)
		g.drafter = req.Drafter
		if g.drafter == nil {
			g.drafter = lookup.NewIndex(req.LookupNgram)
		}
		g.rep.Histogram = make([]int, g.draftMax+1)
	}
	return g.generate(ctx)
}

func checkRequest(eng Engine, req Request) error {
	switch {
	case len(req.Prompt) == 0:
		return errors.New("generate: empty prompt")
	case len(req.Prompt) > eng.MaxContext():
		return fmt.Errorf("generate: the prompt is %d tokens, more than the %d this engine and model allow", len(req.Prompt), eng.MaxContext())
	case req.MaxNewTokens < 1:
		return fmt.Errorf("generate: max new tokens is %d, want at least 1", req.MaxNewTokens)
	case req.Strategy != Greedy && req.Strategy != Lookup:
		return fmt.Errorf("generate: unknown strategy %d", req.Strategy)
	}
	return nil
}

// run is the state of one Generate call.
type run struct {
	eng      Engine
	dec      TextDecoder
	req      Request
	emit     func(Event)
	drafter  Drafter
	draftMax int

	start time.Time
	seq   []int // prompt + generated; the last token is not yet in the cache
	rep   Report
}

func (g *run) generate(ctx context.Context) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return g.cancel(err)
	}
	g.eng.Reset()
	first, err := g.eng.Prefill(ctx, g.req.Prompt)
	if err != nil {
		if ctx.Err() != nil {
			return g.cancel(ctx.Err())
		}
		return nil, fmt.Errorf("generate: prefill of %d tokens: %w", len(g.req.Prompt), err)
	}
	g.rep.Prefill = time.Since(g.start)
	g.rep.TimeToFirst = g.rep.Prefill
	g.seq = make([]int, 0, len(g.req.Prompt)+g.req.MaxNewTokens)
	g.seq = append(g.seq, g.req.Prompt...)
	g.accept([]int{first}, 0, 0)

	if p, ok := g.eng.(Pipelined); ok && g.drafter == nil {
		return g.pipelined(ctx, p)
	}
	for {
		if reason := g.stopReason(); reason != "" {
			return g.finish(reason), nil
		}
		if err := ctx.Err(); err != nil {
			return g.cancel(err)
		}
		if err := g.step(); err != nil {
			return nil, err
		}
	}
}

// pipelined is generate's loop for an engine that queues greedy steps
// ahead: the same tokens, steps, stops and events, with the host's work on
// each token overlapping the next steps on the device.
func (g *run) pipelined(ctx context.Context, p Pipelined) (*Report, error) {
	for {
		if reason := g.stopReason(); reason != "" {
			return g.finish(reason), nil
		}
		if err := ctx.Err(); err != nil {
			return g.cancel(err)
		}
		n := min(g.req.MaxNewTokens-len(g.rep.TokenIDs), g.eng.MaxContext()-g.eng.Len())
		base, steps := g.eng.Len(), g.rep.Steps
		err := p.Greedy(g.seq[len(g.seq)-1], n, func(next int) bool {
			g.rep.Steps++
			g.rep.Histogram[0]++
			g.accept([]int{next}, 0, 0)
			return g.stopReason() == "" && ctx.Err() == nil
		})
		if err != nil {
			return nil, fmt.Errorf("generate: greedy steps from position %d (step %d): %w", base, g.rep.Steps+1, err)
		}
		if g.rep.Steps == steps {
			return nil, fmt.Errorf("generate: the engine ran no greedy step of %d at position %d", n, base)
		}
	}
}

// stopReason says why the run must stop before the next step, or "".
func (g *run) stopReason() string {
	switch {
	case len(g.rep.TokenIDs) > 0 && slices.Contains(g.req.EOS, g.rep.TokenIDs[len(g.rep.TokenIDs)-1]):
		return StopEOS
	case len(g.rep.TokenIDs) >= g.req.MaxNewTokens:
		return StopMaxTokens
	case g.eng.Len()+1 > g.eng.MaxContext():
		return StopContextFull
	}
	return ""
}

// step verifies the last token plus any drafts in one engine call and keeps
// the drafts the model agrees with, plus the model's own next token.
func (g *run) step() error {
	last := g.seq[len(g.seq)-1]
	var drafts []int
	if g.drafter != nil {
		// Room: the step's own token, the output limit, the context limit.
		room := min(g.draftMax,
			g.req.MaxNewTokens-len(g.rep.TokenIDs)-1,
			g.eng.MaxContext()-g.eng.Len()-1)
		if room > 0 {
			drafts = g.drafter.Draft(g.seq, room)
			drafts = drafts[:min(len(drafts), room)]
		}
	}
	in := make([]int, 0, 1+len(drafts))
	in = append(append(in, last), drafts...)
	base := g.eng.Len()
	next, err := g.eng.Verify(in)
	if err != nil {
		return fmt.Errorf("generate: verify step %d (%d tokens at position %d): %w", g.rep.Steps+1, len(in), base, err)
	}
	if len(next) != len(in) {
		return fmt.Errorf("generate: verify step %d: engine returned %d tokens for %d", g.rep.Steps+1, len(next), len(in))
	}
	k := 0
	for k < len(drafts) && drafts[k] == next[k] {
		k++
	}
	if k < len(drafts) {
		// Keep last + the k accepted drafts; the model's token after them is
		// not in the cache yet, like every newest token.
		if err := g.eng.Rollback(base + 1 + k); err != nil {
			return fmt.Errorf("generate: rollback to %d after step %d: %w", base+1+k, g.rep.Steps+1, err)
		}
	}
	g.rep.Steps++
	g.rep.Drafted += len(drafts)
	g.rep.Accepted += k
	g.rep.Histogram[k]++
	g.accept(next[:k+1], len(drafts), k)
	return nil
}

// accept appends new tokens (cut at the first EOS and at the output limit,
// where greedy decoding would have stopped), emits their text and the
// step's statistics.
func (g *run) accept(toks []int, drafted, accepted int) {
	n := 0
	for _, t := range toks {
		if len(g.rep.TokenIDs) >= g.req.MaxNewTokens {
			break
		}
		g.rep.TokenIDs = append(g.rep.TokenIDs, t)
		g.seq = append(g.seq, t)
		n++
		if slices.Contains(g.req.EOS, t) {
			break
		}
		if g.dec != nil {
			if s := g.dec.Next(t); s != "" {
				g.emit(Event{Text: s})
			}
		}
	}
	g.emit(Event{Step: &StepStats{
		Step:      g.rep.Steps,
		NewTokens: n,
		Drafted:   drafted,
		Accepted:  accepted,
		Elapsed:   time.Since(g.start),
		Context:   g.eng.Len(),
		Memory:    g.eng.Memory(),
	}})
}

func (g *run) cancel(err error) (*Report, error) {
	return g.finish(StopCancelled), fmt.Errorf("generate: %w", err)
}

// finish flushes the text, fills in the figures and emits the report.
func (g *run) finish(reason string) *Report {
	if g.dec != nil {
		if s := g.dec.Flush(); s != "" {
			g.emit(Event{Text: s})
		}
	}
	r := &g.rep
	r.StopReason = reason
	r.NewTokens = len(r.TokenIDs)
	r.Total = time.Since(g.start)
	if r.Prefill > 0 {
		r.PrefillTokensPS = float64(r.PromptTokens) / r.Prefill.Seconds()
	}
	if d := r.Total - r.TimeToFirst; r.NewTokens > 1 && d > 0 {
		r.DecodeTokensPS = float64(r.NewTokens-1) / d.Seconds()
	}
	if r.Total > 0 {
		r.Throughput = float64(r.NewTokens) / r.Total.Seconds()
	}
	r.PeakMemory = g.eng.Memory().Peak
	out := *r
	out.TokenIDs = slices.Clone(r.TokenIDs)
	out.Histogram = slices.Clone(r.Histogram)
	g.emit(Event{Report: &out})
	return &out
}
