// Package gui is Brief's window: the article pane, the streaming summary,
// the settings, live charts and the statistics panel.
//
// It reaches the pipeline only through the small Backend interface, so the
// whole window runs under Fyne's test driver with a fake backend, and the
// real one (Pipeline) wires package inference. It never imports
// fyne.io/fyne/v2/app: only cmd/app does, so this package tests without X
// headers. Every widget change from a goroutine of ours goes through the
// App's dispatcher (fyne.Do in the real app).
package gui
