package lookup

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// A Dialog is one item of a pld-replay file: the user turns and the
// recorded greedy answer to each (Mistral-7B-Instruct's).
type Dialog struct {
	Turns   []string
	Answers []string // Answers[i] answers Turns[i]; may be shorter than Turns
}

// LoadDialogs reads a pld-replay file (cnn_dm_outputs.json: "prompt" a
// string; mt_bench_output.json: "prompt" a list of turns) and keeps each
// turn's response whose gen_func is "greedy".
func LoadDialogs(path string) ([]Dialog, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseDialogs(path, b)
}

func parseDialogs(path string, b []byte) ([]Dialog, error) {
	var items []struct {
		Prompt    json.RawMessage `json:"prompt"`
		Responses []struct {
			GenFunc string `json:"gen_func"`
			Turn    int    `json:"turn"`
			Text    string `json:"response_text"`
		} `json:"response_mistral7b"`
	}
	if err := json.Unmarshal(b, &items); err != nil {
		return nil, fmt.Errorf("%s: not a pld-replay list: %w", path, err)
	}
	out := make([]Dialog, 0, len(items))
	for i, it := range items {
		var d Dialog
		var one string
		if err := json.Unmarshal(it.Prompt, &one); err == nil {
			d.Turns = []string{one}
		} else if err := json.Unmarshal(it.Prompt, &d.Turns); err != nil {
			return nil, fmt.Errorf("%s: item %d: prompt is neither a string nor a list of strings", path, i)
		}
		answers := map[int]string{}
		for _, r := range it.Responses {
			if r.GenFunc != "greedy" {
				continue
			}
			if r.Turn < 0 || r.Turn >= len(d.Turns) {
				return nil, fmt.Errorf("%s: item %d: greedy response for turn %d of %d", path, i, r.Turn, len(d.Turns))
			}
			answers[r.Turn] = r.Text
		}
		for t := 0; t < len(d.Turns); t++ {
			a, ok := answers[t]
			if !ok {
				break // a later turn's context needs this answer
			}
			d.Answers = append(d.Answers, a)
		}
		if len(d.Answers) > 0 {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no item has a greedy response", path)
	}
	return out, nil
}

// Encoder is what a Case needs from a tokenizer.
type Encoder interface {
	Encode(text string, addBOS bool) []int
	BOS() int
	EOS() int
}

// A Case is one replay: the ids the model saw and the ids it answered.
type Case struct {
	Prompt, Answer []int
}

// Cases tokenizes dialogs the way Mistral-7B-Instruct-v0.1 saw them:
// "<s>[INST] turn [/INST]answer</s>[INST] next turn [/INST]..." (a turn
// already starting with "[INST]" is used as is). An answer is encoded
// without its leading space, which the tokenizer's "▁" prefix restores, so
// its ids are the ones the model produced. Each answered turn is a Case.
func Cases(enc Encoder, dialogs []Dialog) []Case {
	var out []Case
	for _, d := range dialogs {
		ctx := []int{enc.BOS()}
		for i, a := range d.Answers {
			turn := d.Turns[i]
			if !strings.HasPrefix(turn, "[INST]") {
				turn = "[INST] " + turn + " [/INST]"
			}
			ctx = append(ctx, enc.Encode(turn, false)...)
			ans := enc.Encode(strings.TrimPrefix(a, " "), false)
			out = append(out, Case{Prompt: append([]int(nil), ctx...), Answer: ans})
			ctx = append(append(ctx, ans...), enc.EOS())
		}
	}
	return out
}

// Named is a drafter with a name, made fresh for every Case.
type Named struct {
	Name string
	New  func() Drafter
}

// Drafters are the three drafters compared by the replay; eos are the ids
// transformers' drafter never drafts past.
func Drafters(eos []int) []Named {
	return []Named{
		{"transformers (n-gram 2, earliest)", func() Drafter { return Transformers{Ngram: 2, EOS: eos} }},
		{"prompt-lookup-decoding repo (n-gram 3, earliest)", func() Drafter { return Original{Ngram: 3} }},
		{fmt.Sprintf("brief index (n-gram %d, majority vote)", DefaultNgram), func() Drafter { return NewIndex(DefaultNgram) }},
	}
}

// Result is one drafter's replay over a data set.
type Result struct {
	Name          string  `json:"name"`
	TokensPerStep float64 `json:"tokens_per_step"`
	Histogram     []int   `json:"histogram"`
	Steps         int     `json:"steps"`
	Tokens        int     `json:"tokens"`
	Drafted       int     `json:"drafted"`
	Accepted      int     `json:"accepted"`
}

// ReplayAll replays every case with every drafter, drafting up to max
// tokens a step.
func ReplayAll(cases []Case, drafters []Named, max int) []Result {
	out := make([]Result, 0, len(drafters))
	for _, d := range drafters {
		var s Stats
		for _, c := range cases {
			s.Add(Replay(d.New(), c.Prompt, c.Answer, max))
		}
		out = append(out, Result{Name: d.Name, TokensPerStep: s.TokensPerStep(), Histogram: s.Histogram,
			Steps: s.Steps, Tokens: s.Tokens, Drafted: s.Drafted, Accepted: s.Accepted})
	}
	return out
}
