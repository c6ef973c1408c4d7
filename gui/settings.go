package gui

import (
	"fmt"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/briefapp/brief/inference"
)

func (a *App) buildSettings() fyne.CanvasObject {
	p := a.prefs
	a.modelDir = p.String(prefModelDir)
	a.modelLabel = widget.NewLabel("")
	a.modelLabel.Wrapping = fyne.TextWrapBreak
	a.chooseModel = widget.NewButtonWithIcon("Choose model folder…", theme.FolderOpenIcon(), a.chooseModelDialog)
	a.engineSel = widget.NewSelect(engineNames, nil)
	a.engineSel.SetSelected(EngineChoice(p.IntWithFallback(prefEngine, int(EngineAuto))).String())
	a.engineSel.OnChanged = func(s string) {
		a.prefs.SetInt(prefEngine, int(a.engineChoice()))
		if a.modelDir != "" && !a.busy && (a.model == nil || a.loadedKey != a.modelKey()) {
			a.loadModel()
		}
	}

	a.instruction = newEntry(true, a.canvas)
	a.instruction.Wrapping = fyne.TextWrapWord
	a.instruction.SetMinRowsVisible(3)
	a.presetSel = widget.NewSelect(presetNames(), nil)
	a.presetSel.OnChanged = a.presetChanged
	a.instruction.OnChanged = func(s string) {
		if a.settingP {
			return
		}
		if a.presetSel.Selected != customPreset {
			a.settingP = true
			a.presetSel.SetSelected(customPreset)
			a.settingP = false
		}
		a.prefs.SetString(prefCustom, s)
	}
	a.presetSel.SetSelected(p.StringWithFallback(prefPreset, presets[0].name))
	if a.presetSel.Selected == "" {
		a.presetSel.SetSelected(presets[0].name)
	}

	a.system = newEntry(true, a.canvas)
	a.system.Wrapping = fyne.TextWrapWord
	a.system.SetMinRowsVisible(3)
	a.system.SetText(p.StringWithFallback(prefSystem, DefaultSystemPrompt))
	a.system.OnChanged = func(s string) { a.prefs.SetString(prefSystem, s) }
	resetSystem := widget.NewButton("Default", func() { a.system.SetText(DefaultSystemPrompt) })
	resetSystem.Importance = widget.LowImportance

	a.draftLabel = widget.NewLabel("")
	a.draftSlider = widget.NewSlider(1, inference.MaxVerify-1)
	a.draftSlider.Step = 1
	a.draftSlider.OnChanged = func(v float64) {
		a.draftLabel.SetText(fmt.Sprintf("Draft length: %d tokens", int(v)))
		a.prefs.SetInt(prefLookupTokens, int(v))
	}
	a.draftSlider.SetValue(float64(p.IntWithFallback(prefLookupTokens, defaultLookupTokens)))
	a.strategySel = widget.NewSelect([]string{strategyGreedy, strategyLookup}, nil)
	a.strategySel.SetSelected(p.StringWithFallback(prefStrategy, strategyGreedy))
	if a.strategySel.Selected == "" {
		a.strategySel.SetSelected(strategyGreedy)
	}
	a.strategySel.OnChanged = func(s string) {
		a.prefs.SetString(prefStrategy, s)
		a.updateControls()
	}

	a.maxNew = newEntry(false, a.canvas)
	a.maxNew.SetText(strconv.Itoa(p.IntWithFallback(prefMaxNew, defaultMaxNew)))
	a.maxNew.Validator = func(s string) error { _, err := parseMaxNew(s); return err }
	a.maxNew.OnChanged = func(s string) {
		if n, err := parseMaxNew(s); err == nil {
			a.prefs.SetInt(prefMaxNew, n)
		}
	}

	a.summarize = widget.NewButtonWithIcon("Summarize", theme.MediaPlayIcon(), a.startSummary)
	a.summarize.Importance = widget.HighImportance
	a.stop = widget.NewButtonWithIcon("Stop", theme.MediaStopIcon(), a.Stop)

	a.updateModelLabel()
	form := container.NewVBox(
		heading("Model"),
		a.modelLabel,
		a.chooseModel,
		container.NewBorder(nil, nil, widget.NewLabel("Engine"), nil, a.engineSel),
		widget.NewSeparator(),
		heading("Instruction"),
		a.presetSel,
		a.instruction,
		container.NewBorder(nil, nil, heading("System prompt"), resetSystem),
		a.system,
		widget.NewSeparator(),
		heading("Decoding"),
		a.strategySel,
		a.draftLabel,
		a.draftSlider,
		container.NewBorder(nil, nil, widget.NewLabel("Max new tokens"), nil, a.maxNew),
		widget.NewSeparator(),
		container.NewGridWithColumns(2, a.summarize, a.stop),
	)
	return container.New(fixedWidth(300), container.NewVScroll(container.NewPadded(form)))
}

// fixedWidth lays its objects over each other at a fixed width and the

func parseMaxNew(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > maxMaxNew {
		return 0, fmt.Errorf("max new tokens must be a whole number from 1 to %d", maxMaxNew)
	}
	return n, nil
}

func (a *App) presetChanged(name string) {
	a.prefs.SetString(prefPreset, name)
	if a.settingP {
		return // the user typed: keep their text
	}
	p, ok := presetByName(name)
	if !ok {
		return
	}
	text := p.instruction
	if name == customPreset {
		text = a.prefs.String(prefCustom)
	}
	a.settingP = true
	a.instruction.SetText(text)
	a.settingP = false
}

func (a *App) engineChoice() EngineChoice {
	for i, n := range engineNames {
		if n == a.engineSel.Selected {
			return EngineChoice(i)
		}
	}
	return EngineAuto
}

// modelKey identifies what the loaded model must match.
