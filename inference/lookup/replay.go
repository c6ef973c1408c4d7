package lookup

// Stats counts a drafter's replay against recorded greedy outputs.
type Stats struct {
	Tokens    int   // answer tokens produced by verify steps (the first comes from prefill)
	Steps     int   // verify steps
	Drafted   int   // tokens drafted
	Accepted  int   // drafted tokens that matched the recorded answer
	Histogram []int // Histogram[k]: steps that accepted k drafted tokens
}

// TokensPerStep is the mean number of new tokens per verify step.
func (s Stats) TokensPerStep() float64 {
	if s.Steps == 0 {
		return 0
	}
	return float64(s.Tokens) / float64(s.Steps)
}

// Add accumulates o into s.
func (s *Stats) Add(o Stats) {
	s.Tokens += o.Tokens
	s.Steps += o.Steps
	s.Drafted += o.Drafted
	s.Accepted += o.Accepted
	for len(s.Histogram) < len(o.Histogram) {
		s.Histogram = append(s.Histogram, 0)
	}
	for k, c := range o.Histogram {
		s.Histogram[k] += c
	}
}

// Replay measures how a drafter would fare against a model whose greedy
// output after prompt is answer, without running the model: it mirrors the
// generation loop. The first answer token comes from prefill; then each
// step drafts up to max tokens from the context (prompt + answer so far),
// accepts the longest prefix equal to the answer's next tokens, and
// advances by the accepted tokens plus the model's own one. Drafts never
// run past the answer's last token, which the model itself produces.
func Replay(d Drafter, prompt, answer []int, max int) Stats {
	s := Stats{Histogram: make([]int, max+1)}
	if len(answer) == 0 {
		return s
	}
	ctx := make([]int, 0, len(prompt)+len(answer))
	ctx = append(append(ctx, prompt...), answer[0])
	for pos := 1; pos < len(answer); {
		m := min(max, len(answer)-pos-1)
		draft := d.Draft(ctx, m)
		draft = draft[:min(len(draft), m)]
		k := 0
		for k < len(draft) && draft[k] == answer[pos+k] {
			k++
		}
		s.Steps++
		s.Drafted += len(draft)
		s.Accepted += k
		s.Histogram[k]++
		s.Tokens += k + 1
		ctx = append(ctx, answer[pos:pos+k+1]...)
		pos += k + 1
	}
	return s
}
