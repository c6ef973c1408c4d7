package gui

import (
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"
)

// BenchmarkSummaryAppend is one coalesced refresh of a summary that
// already holds about 3,000 words in 30 paragraphs: append a few tokens to
// the last paragraph and lay the pane out again.
func BenchmarkSummaryAppend(b *testing.B) {
	test.NewTempApp(b)
	s := newSummaryView()
	w := test.NewWindow(s.scroll)
	defer w.Close()
	w.Resize(fyne.NewSize(480, 600))
	para := strings.Repeat("The night sky is dark because light from far away has not reached us. ", 8)
	for i := 0; i < 30; i++ {
		s.Append(para + "\n\n")
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Append(" more words arrive")
		if i%50 == 49 {
			s.Append("\n\n") // a new paragraph now and then, as in a real summary
		}
	}
}

// BenchmarkSummaryOneLabel is the alternative DESIGN.md warns about: the
// whole text in one wrapped Label, set again on every refresh.
func BenchmarkSummaryOneLabel(b *testing.B) {
	test.NewTempApp(b)
	s := newSummaryView()
	w := test.NewWindow(s.scroll)
	defer w.Close()
	w.Resize(fyne.NewSize(480, 600))
	text := strings.Repeat(strings.Repeat("The night sky is dark because light from far away has not reached us. ", 8)+" ", 30)
	s.Append(text)
	l := s.labels[0]
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		text += " more words arrive"
		l.SetText(text)
	}
}

// BenchmarkChartUpdate appends one point to a full 600-point chart and
// refreshes it, as a streaming run does on every step.
func BenchmarkChartUpdate(b *testing.B) {
	test.NewTempApp(b)
	c := NewChart("Decode speed (tokens/s)", "")
	s := c.AddSeries("tokens/s", theme.ColorNamePrimary, chartPoints, false)
	w := test.NewWindow(c)
	defer w.Close()
	w.Resize(fyne.NewSize(320, 240))
	for i := 0; i < chartPoints; i++ {
		c.Append(s, float64(i), float64(i%50))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Append(s, float64(chartPoints+i), float64(i%50))
		c.Refresh()
	}
}
