package gui

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"
)

func (a *App) openArticleDialog() {
	d := dialog.NewFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil {
			a.showError("Cannot open the file", err)
			return
		}
		if r == nil {
			return // cancelled
		}
		a.loadArticle(r.URI(), r)
	}, a.win)
	d.SetFilter(storage.NewExtensionFileFilter(articleExtensions))
	d.Resize(dialogSize(a.win))
	d.Show()
}

func (a *App) dropped(uris []fyne.URI) {
	if len(uris) == 0 || a.busy {
		return
	}
	r, err := storage.Reader(uris[0])
	if err != nil {
		a.showError("Cannot open the dropped file", fmt.Errorf("%s: %w", uris[0].Name(), err))
		return
	}
	a.loadArticle(uris[0], r)
}

// loadArticle reads r off the UI thread and shows its text. r is closed.
func (a *App) loadArticle(uri fyne.URI, r io.ReadCloser) {
	a.articleInfo.SetText("reading " + uri.Name() + "…")
	go func() {
		text, err := readArticle(uri.Name(), r)
		r.Close()
		a.do(func() {
			if err != nil {
				a.updateArticleInfo("")
				a.showError("Cannot use this article", err)
				return
			}
			a.setArticle(text, uri.Name())
		})
	}()
}

func (a *App) pasteArticle() {
	text := a.fyneApp.Clipboard().Content()
	if err := checkArticle(text); err != nil {
		a.showError("Nothing to paste", errors.New("the clipboard holds no text"))
		return
	}
	a.setArticle(text, "pasted")
}

func (a *App) saveSummaryDialog() {
	text := a.summary.Text()
	if strings.TrimSpace(text) == "" {
		a.showError("Nothing to save", errors.New("there is no summary yet: press Summarize first"))
		return
	}
	d := dialog.NewFileSave(func(w fyne.URIWriteCloser, err error) {
		if err != nil {
			a.showError("Cannot save the summary", err)
			return
		}
		if w == nil {
			return
		}
		if err := writeSummary(w, text); err != nil {
			a.showError("Cannot save the summary", err)
		}
	}, a.win)
	d.SetFileName("summary.md")
	d.SetFilter(storage.NewExtensionFileFilter([]string{".md", ".txt"}))
	d.Resize(dialogSize(a.win))
	d.Show()
}

// writeSummary writes text to w (a .md file gets a heading) and closes w.
func writeSummary(w fyne.URIWriteCloser, text string) error {
	out := strings.TrimSpace(text) + "\n"
	if strings.EqualFold(w.URI().Extension(), ".md") {
		out = "# Summary\n\n" + out
	}
	_, err := io.WriteString(w, out)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", w.URI().Name(), err)
	}
	return nil
}

func dialogSize(w fyne.Window) fyne.Size {
	s := w.Canvas().Size()
	return fyne.NewSize(max(600, s.Width*0.8), max(400, s.Height*0.8))
}
