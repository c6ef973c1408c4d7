package gui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/widget"
)

// entry is a widget.Entry that hands the window's own shortcuts back to the
// canvas. Fyne gives every shortcut to the focused widget, and an Entry drops
// those it does not know, so without this Ctrl+Enter would do nothing while
// the caret is in the article.
type entry struct {
	widget.Entry
	canvas func() fyne.Canvas // nil until the window exists
}

func newEntry(multiLine bool, canvas func() fyne.Canvas) *entry {
	e := &entry{canvas: canvas}
	e.MultiLine = multiLine
	e.ExtendBaseWidget(e)
	return e
}

// TypedShortcut passes custom shortcuts (modifier + key) to the canvas, which
// holds the window's bindings; copy, paste and the rest stay with the Entry.
func (e *entry) TypedShortcut(s fyne.Shortcut) {
	if _, custom := s.(*desktop.CustomShortcut); custom && e.canvas != nil {
		if c := e.canvas(); c != nil {
			if sc, ok := c.(fyne.Shortcutable); ok {
				sc.TypedShortcut(s)
				return
			}
		}
	}
	e.Entry.TypedShortcut(s)
}

// canvas is the window's canvas, once there is a window.
func (a *App) canvas() fyne.Canvas {
	if a.win == nil {
		return nil
	}
	return a.win.Canvas()
}
