package gui

import (
	"context"
	"path/filepath"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"
)

func (a *App) chooseModelDialog() {
	d := dialog.NewFolderOpen(func(u fyne.ListableURI, err error) {
		if err != nil {
			a.showError("Cannot open the folder", err)
			return
		}
		if u == nil {
			return
		}
		a.SetModelDir(u.Path())
	}, a.win)
	if a.modelDir != "" {
		if l, err := storage.ListerForURI(storage.NewFileURI(filepath.Dir(a.modelDir))); err == nil {
			d.SetLocation(l)
		}
	}
	d.Resize(dialogSize(a.win))
	d.Show()
}

// SetModelDir remembers dir as the model folder and loads it.
func (a *App) SetModelDir(dir string) {
	if a.busy {
		return
	}
	a.modelDir = dir
	a.prefs.SetString(prefModelDir, dir)
	a.updateModelLabel()
	a.loadModel()
}

// loadModel opens the chosen folder on the chosen engine in the
// background, closing the model loaded before.
func (a *App) loadModel() {
	a.startJob("Loading model…", func(ctx context.Context, m Model) {})
}

// startJob runs work on a background goroutine with the model for the
// current folder and engine, opening it first if needed. The job's own
// results reach the window through a.do; when it returns the controls
// come back.
func (a *App) startJob(state string, work func(ctx context.Context, m Model)) {
	if a.busy {
		return
	}
	key, dir, engine := a.modelKey(), a.modelDir, a.engineChoice()
	m, old := a.model, Model(nil)
	if m != nil && a.loadedKey != key {
		old, m = m, nil
		a.model, a.loadedKey = nil, ""
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a.busy, a.cancel, a.done = true, cancel, done
	a.state = state
	if m == nil {
		a.state = "Loading model…"
	}
	a.updateControls()
	go func() {
		defer close(done)
		defer cancel()
		defer a.do(a.jobEnded)
		if old != nil {
			if err := old.Close(); err != nil {
				a.do(func() { a.showError("Closing the previous model failed", err) })
			}
		}
		if m == nil {
			var err error
			m, err = a.backend.Open(ctx, dir, engine)
			if err != nil {
				if ctx.Err() == nil {
					a.do(func() { a.showError("Cannot open the model", err) })
				}
				return
			}
			info := m.Info()
			a.do(func() {
				a.model, a.loadedKey, a.info, a.ctxUsed = m, key, info, 0
				a.state = state
				a.updateStatus()
			})
		}
		work(ctx, m)
	}()
}

func (a *App) jobEnded() {
	a.busy, a.cancel, a.state = false, nil, ""
	a.updateControls()
}

// Stop cancels the running job; generation ends within one engine step.
func (a *App) Stop() {
	if a.cancel != nil {
		a.cancel()
		a.state = "Stopping…"
		a.updateStatus()
	}
}

// Shutdown stops any job, waits for it (at most timeout), closes the model
// and then calls then on the UI thread. For the window's close intercept.
func (a *App) Shutdown(timeout time.Duration, then func()) {
	a.Stop()
	done, m := a.done, a.model
	a.model = nil
	go func() {
		if done != nil {
			select {
			case <-done:
			case <-time.After(timeout):
			}
		}
		if m != nil {
			m.Close()
		}
		a.do(then)
	}()
}
