package gui

import (
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
)

func TestSummaryParagraphs(t *testing.T) {
	test.NewTempApp(t)
	s := newSummaryView()
	// Streamed in pieces that split lines and blank lines anywhere.
	for _, piece := range []string{"\nFirst", " line.\n", "\nSecond", " line.\n- a\n-", " b", "\n\n\nEnd."} {
		s.Append(piece)
	}
	want := []string{"First line.", "Second line.", "- a", "- b", "End."}
	if len(s.labels) != len(want) {
		t.Fatalf("%d labels, want %d: %q", len(s.labels), len(want), s.texts)
	}
	for i, w := range want {
		if s.labels[i].Text != w {
			t.Errorf("label %d = %q, want %q", i, s.labels[i].Text, w)
		}
	}
	if s.Text() != "\nFirst line.\n\nSecond line.\n- a\n- b\n\n\nEnd." {
		t.Errorf("Text = %q", s.Text())
	}
	if s.hint.Visible() {
		t.Error("hint shown beside text")
	}
	s.Reset()
	if s.Text() != "" || len(s.labels) != 0 || !s.hint.Visible() {
		t.Error("Reset left text or hid the hint")
	}
}

// TestSummaryAutoScroll: the view follows new text only while the reader
// is at the bottom.
func TestSummaryAutoScroll(t *testing.T) {
	test.NewTempApp(t)
	s := newSummaryView()
	w := test.NewWindow(s.scroll)
	defer w.Close()
	w.Resize(fyne.NewSize(300, 200))
	line := strings.Repeat("word ", 20) + "\n"
	for i := 0; i < 20; i++ {
		s.Append(line)
	}
	bottom := func() float32 { return s.box.MinSize().Height - s.scroll.Size().Height }
	if s.scroll.Offset.Y < bottom()-1 {
		t.Fatalf("not following the text: offset %v, bottom %v", s.scroll.Offset.Y, bottom())
	}
	// The reader scrolls up: new text must not move the view.
	s.scroll.ScrollToOffset(fyne.NewPos(0, 50))
	s.Append(line)
	if s.scroll.Offset.Y != 50 {
		t.Errorf("view moved to %v while the reader was reading at 50", s.scroll.Offset.Y)
	}
	// Back at the bottom: it follows again.
	s.scroll.ScrollToBottom()
	s.Append(line + line)
	if s.scroll.Offset.Y < bottom()-1 {
		t.Errorf("not following after returning to the bottom: offset %v, bottom %v", s.scroll.Offset.Y, bottom())
	}
}
