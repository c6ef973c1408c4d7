package gui

import (
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"
)

// summaryView shows streamed text as one wrapped Label per line in a
// vertical scroll. Re-wrapping one long Label on every update freezes the
// window (DESIGN.md), so an update touches only the Labels whose text it
// changed: normally just the last.
type summaryView struct {
	box    *fyne.Container
	scroll *container.Scroll
	texts  []string
	labels []*widget.Label
	open   bool // the last line takes more text (no newline seen since)
	full   strings.Builder
	hint   *widget.Label // shown while there is no text
}

func newSummaryView() *summaryView {
	s := &summaryView{box: container.NewVBox(), hint: widget.NewLabel("")}
	s.hint.Importance = widget.LowImportance
	s.hint.Wrapping = fyne.TextWrapWord
	s.box.Add(s.hint)
	s.scroll = container.NewVScroll(s.box)
	return s
}

// SetHint sets the text shown while the summary is empty.
func (s *summaryView) SetHint(text string) {
	s.hint.SetText(text)
}

// Text returns everything appended since the last Reset.
func (s *summaryView) Text() string { return s.full.String() }

// Reset empties the view.
func (s *summaryView) Reset() {
	s.texts, s.labels, s.open = nil, nil, false
	s.full.Reset()
	s.box.RemoveAll()
	s.box.Add(s.hint)
	s.hint.Show()
	s.scroll.ScrollToTop()
}

// atBottom reports whether the reader is looking at the end of the text.
func (s *summaryView) atBottom() bool {
	content := s.box.MinSize().Height
	view := s.scroll.Size().Height
	return content <= view || s.scroll.Offset.Y >= content-view-8
}

// Append adds streamed text. It scrolls to the end only when the reader
// was already there, so reading further up is not interrupted.
func (s *summaryView) Append(text string) {
	if text == "" {
		return
	}
	follow := s.atBottom()
	s.full.WriteString(text)
	first := len(s.texts) // first line whose text changed
	if s.open {
		first--
	}
	for i, part := range strings.Split(text, "\n") {
		if i > 0 && s.open && s.texts[len(s.texts)-1] != "" {
			s.open = false
		}
		if part == "" {
			continue
		}
		if !s.open {
			s.hint.Hide()
			l := widget.NewLabel("")
			l.Wrapping = fyne.TextWrapWord
			l.Selectable = true
			s.texts = append(s.texts, "")
			s.labels = append(s.labels, l)
			s.box.Add(l)
			s.open = true
		}
		s.texts[len(s.texts)-1] += part
	}
	for i := max(first, 0); i < len(s.texts); i++ {
		s.labels[i].SetText(s.texts[i])
	}
	if follow {
		// The scroll lays its content out on the next frame; size it now so
		// that ScrollToBottom sees the new end.
		view := s.scroll.Size()
		width := s.box.Size().Width
		if width == 0 {
			width = view.Width
		}
		s.box.Resize(fyne.NewSize(width, max(s.box.MinSize().Height, view.Height)))
		s.scroll.ScrollToBottom()
	}
}
