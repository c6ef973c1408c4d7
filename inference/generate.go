package inference

import "time"

// Strategy picks how new tokens are proposed.
type Strategy int

const (
	Greedy Strategy = iota // one token per engine step
	Lookup                 // prompt lookup decoding: draft from the context, verify in one step
)

// Request is one generation run over an already tokenized prompt.
type Request struct {
	Prompt       []int
	MaxNewTokens int
	Strategy     Strategy
	LookupTokens int   // most drafted tokens per step (prompt_lookup_num_tokens)
	LookupNgram  int   // longest n-gram matched when drafting
	EOS          []int // stop ids
	// Drafter proposes tokens for Lookup; nil means lookup.NewIndex(LookupNgram).
	// It must be fresh or follow only this request's sequence.
	Drafter Drafter
}

// Drafter proposes up to max tokens to follow context (prompt + generated
// so far); the drafters of inference/lookup implement it.
type Drafter interface {
	Draft(context []int, max int) []int
}

// TextDecoder turns ids into text as they come, holding back incomplete
// UTF-8; tokenizer.Stream implements it.
type TextDecoder interface {
	Next(id int) string // text completed by id, possibly ""
	Flush() string      // whatever is still held back
}

// Event is one item of the stream a run emits; exactly one field is set.
type Event struct {
	Text   string     // newly decoded text, never broken UTF-8
	Step   *StepStats // after each engine step
	Report *Report    // once, at the end
}

// StepStats describes one engine step (prefill counts as the first).
type StepStats struct {
	Step      int           // 0 for prefill
	NewTokens int           // tokens this step added to the output
	Drafted   int           // tokens drafted for this step
	Accepted  int           // drafted tokens the model confirmed
	Elapsed   time.Duration // since the run started
	Context   int           // positions in the cache after the step
	Memory    Memory
}

// Report sums up a finished (or cancelled) run.
type Report struct {
	PromptTokens    int
	NewTokens       int
	TokenIDs        []int
	Prefill         time.Duration // prefill wall time
	TimeToFirst     time.Duration // start to first new token
	Total           time.Duration // whole generate call, prefill included
	PrefillTokensPS float64       // prompt tokens / prefill time
	DecodeTokensPS  float64       // tokens after the first / decode time
	Throughput      float64       // new tokens / Total, as the original script reports it
	PeakMemory      int64         // engine's peak bytes
	Steps           int           // verify steps after prefill
	Drafted         int
	Accepted        int
	Histogram       []int  // Histogram[k]: steps that accepted k drafted tokens
	StopReason      string // "eos", "max_tokens", "cancelled", "context_full"
}
