package lookup

import (
	"slices"
	"strings"
	"testing"
)

const sample = `[
 {"prompt": "[INST] Sum up: ab [/INST]", "response_mistral7b": [
   {"gen_func": "greedy", "response_text": " ab"}, {"gen_func": "pld", "response_text": " xx"}]},
 {"prompt": ["hi", "more"], "response_mistral7b": [
   {"gen_func": "greedy", "turn": 1, "response_text": " two"},
   {"gen_func": "greedy", "turn": 0, "response_text": " one"}]},
 {"prompt": ["only pld"], "response_mistral7b": [{"gen_func": "pld", "response_text": " z"}]}
]`

func TestParseDialogs(t *testing.T) {
	got, err := parseDialogs("sample.json", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !slices.Equal(got[0].Answers, []string{" ab"}) ||
		!slices.Equal(got[1].Turns, []string{"hi", "more"}) || !slices.Equal(got[1].Answers, []string{" one", " two"}) {
		t.Fatalf("parsed %+v", got)
	}
	bad := []struct{ name, in, want string }{
		{"not json", "{", "not a pld-replay list"},
		{"prompt type", `[{"prompt": 3, "response_mistral7b": []}]`, "neither a string"},
		{"turn range", `[{"prompt": "a", "response_mistral7b": [{"gen_func": "greedy", "turn": 2}]}]`, "turn 2 of 1"},
		{"nothing", `[]`, "no item has a greedy response"},
	}
	for _, tc := range bad {
		_, err := parseDialogs("x.json", []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), "x.json") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming the file and %q", tc.name, err, tc.want)
		}
	}
}

func FuzzParseDialogs(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(`[{"prompt": ["a"], "response_mistral7b": [{"gen_func": "greedy", "turn": -1}]}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := parseDialogs("f.json", b)
		if err != nil {
			return
		}
		for _, d := range ds {
			if len(d.Answers) == 0 || len(d.Answers) > len(d.Turns) {
				t.Fatalf("dialog %+v", d)
			}
		}
	})
}

// runeEncoder gives each rune its code point as id; BOS 1, EOS 2. Like
// SentencePiece it marks the start of a text with a "▁" (id 0x2581).
type runeEncoder struct{}

func (runeEncoder) Encode(s string, addBOS bool) []int {
	var ids []int
	if addBOS {
		ids = append(ids, 1)
	}
	ids = append(ids, 0x2581)
	for _, r := range strings.ReplaceAll(s, " ", "▁") {
		ids = append(ids, int(r))
	}
	return ids
}
func (runeEncoder) BOS() int { return 1 }
func (runeEncoder) EOS() int { return 2 }

func ids(s string) []int {
	var out []int
	for _, r := range s {
		out = append(out, int(r))
	}
	return out
}

func TestCases(t *testing.T) {
	ds, err := parseDialogs("sample.json", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	cs := Cases(runeEncoder{}, ds)
	want := []Case{
		{append([]int{1}, ids("▁[INST]▁Sum▁up:▁ab▁[/INST]")...), ids("▁ab")},
		{append([]int{1}, ids("▁[INST]▁hi▁[/INST]")...), ids("▁one")},
		{append(append(append([]int{1}, ids("▁[INST]▁hi▁[/INST]▁one")...), 2), ids("▁[INST]▁more▁[/INST]")...), ids("▁two")},
	}
	if len(cs) != len(want) {
		t.Fatalf("%d cases, want %d", len(cs), len(want))
	}
	for i := range want {
		if !slices.Equal(cs[i].Prompt, want[i].Prompt) || !slices.Equal(cs[i].Answer, want[i].Answer) {
			t.Errorf("case %d: %v / %v, want %v / %v", i, cs[i].Prompt, cs[i].Answer, want[i].Prompt, want[i].Answer)
		}
	}
	res := ReplayAll(cs, Drafters([]int{2}), 10)
	// Tokens: every answer id but the first, which prefill produces.
	if len(res) != 3 || res[2].Steps == 0 || res[2].Tokens != 2+3+3 {
		t.Errorf("ReplayAll: %+v", res)
	}
}
