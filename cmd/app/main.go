// Command app is Brief's desktop app.
package main

import (
	"fyne.io/fyne/v2/app"
	"fyne.io/fyne/v2/widget"
)

func main() {
	a := app.NewWithID("io.github.briefapp.brief")
	w := a.NewWindow("Brief")
	w.SetContent(widget.NewLabel("Brief"))
	w.ShowAndRun()
}
