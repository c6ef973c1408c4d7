// Command app is Brief's desktop app: it wires the window (package gui) to
// the pipeline (package inference) and nothing else.
package main

import (
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"

	"github.com/briefapp/brief/assets"
	"github.com/briefapp/brief/gui"
)

func main() {
	a := app.NewWithID(gui.AppID)
	a.SetIcon(fyne.NewStaticResource("icon.png", assets.Icon))
	w := a.NewWindow("Brief")
	w.Resize(fyne.NewSize(1280, 800))
	ui := gui.New(a, w, gui.Options{Backend: gui.Pipeline{CUDA: openCUDA}})
	w.SetCloseIntercept(func() {
		// Stop a running summary and free the model before the window goes.
		ui.Shutdown(10*time.Second, w.Close)
	})
	w.ShowAndRun()
}
