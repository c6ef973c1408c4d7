package gui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/briefapp/brief/assets"
	"github.com/briefapp/brief/inference"
)

// AppID is Brief's reverse-DNS application ID (Preferences are kept under it).
const AppID = "io.github.briefapp.brief"

// Preference keys.
const (
	prefModelDir     = "modelDir"
	prefEngine       = "engine"
	prefPreset       = "preset"
	prefCustom       = "customInstruction"
	prefSystem       = "systemPrompt"
	prefStrategy     = "strategy"
	prefLookupTokens = "lookupTokens"
	prefMaxNew       = "maxNewTokens"
)

const (
	strategyGreedy = "Greedy"
	strategyLookup = "Prompt lookup"

	defaultMaxNew       = 512
	defaultLookupTokens = 10
	maxMaxNew           = 1 << 20
	chartPoints         = 600 // points a chart keeps: the last ones of a long run
)

// Options configure an App.
type Options struct {
	Backend Backend
	// Do runs f on the UI thread. Nil means fyne.Do; tests pass a queue
	// they drain on the test goroutine.
	Do func(f func())
	// Refresh is how often a streaming run updates the window (75 ms if 0).
	Refresh time.Duration
}

// App is Brief's main window. Its fields are touched only on the UI
// thread; background work hands results back through do.
type App struct {
	fyneApp fyne.App
	win     fyne.Window
	backend Backend
	do      func(func())
	refresh time.Duration
	prefs   fyne.Preferences

	article     *widget.Entry
	articleInfo *widget.Label
	openBtn     *widget.Button
	pasteBtn    *widget.Button

	modelDir    string
	modelLabel  *widget.Label
	chooseModel *widget.Button
	engineSel   *widget.Select
	presetSel   *widget.Select
	instruction *widget.Entry
	system      *widget.Entry
	strategySel *widget.Select
	draftSlider *widget.Slider
	draftLabel  *widget.Label
	maxNew      *widget.Entry
	summarize   *widget.Button
	stop        *widget.Button

	summary    *summaryView
	emptyState fyne.CanvasObject
	copyBtn    *widget.Button
	saveBtn    *widget.Button

	tokChart *Chart
	memChart *Chart
	accChart *Chart
	stats    *statsPanel
	copyStat *widget.Button
	status   *widget.Label

	// Model state.
	model     Model
	loadedKey string // modelKey() the model was opened for
	info      ModelInfo
	ctxUsed   int

	// Job state: at most one background job (loading or summarizing).
	busy     bool
	cancel   context.CancelFunc
	done     chan struct{}
	state    string // what the job does, for the status line
	result   string // how the last run ended, shown when idle
	settingP bool   // a preset is being applied: the instruction's OnChanged must not switch to Custom

	// Per-run chart state.
	runTokens int
	meter     rateMeter
	lookupRun bool
}

// New builds the window's content into w and loads the remembered model
// folder, if any.
func New(fa fyne.App, w fyne.Window, opt Options) *App {
	a := &App{fyneApp: fa, win: w, backend: opt.Backend, do: opt.Do, refresh: opt.Refresh, prefs: fa.Preferences()}
	if a.do == nil {
		a.do = fyne.Do
	}
	if a.refresh <= 0 {
		a.refresh = 75 * time.Millisecond
	}
	w.SetContent(a.build())
	w.SetOnDropped(func(_ fyne.Position, uris []fyne.URI) { a.dropped(uris) })
	a.setArticle(assets.SampleArticle, "sample article")
	if a.modelDir != "" {
		a.loadModel()
	}
	a.updateControls()
	return a
}

func (a *App) build() fyne.CanvasObject {
	// Article pane.
	a.article = widget.NewMultiLineEntry()
	a.article.Wrapping = fyne.TextWrapWord
	a.article.SetPlaceHolder("Paste an article here, open a .txt, .md or .pdf file, or drop one on the window.")
	a.articleInfo = widget.NewLabel("")
	a.articleInfo.Importance = widget.LowImportance
	a.article.OnChanged = func(string) { a.updateArticleInfo("") }
	a.openBtn = widget.NewButtonWithIcon("Open…", theme.FolderOpenIcon(), a.openArticleDialog)
	a.pasteBtn = widget.NewButtonWithIcon("Paste", theme.ContentPasteIcon(), a.pasteArticle)
	articleHeader := container.NewHBox(heading("Article"), a.articleInfo, layout.NewSpacer(), a.openBtn, a.pasteBtn)
	articlePane := container.NewBorder(articleHeader, nil, nil, nil, a.article)

	// Summary pane.
	a.summary = newSummaryView()
	a.summary.SetHint("Press Summarize to summarize the article.")
	a.emptyState = a.buildEmptyState()
	a.copyBtn = widget.NewButtonWithIcon("Copy", theme.ContentCopyIcon(), func() {
		a.fyneApp.Clipboard().SetContent(a.summary.Text())
	})
	a.saveBtn = widget.NewButtonWithIcon("Save…", theme.DocumentSaveIcon(), a.saveSummaryDialog)
	summaryHeader := container.NewHBox(heading("Summary"), layout.NewSpacer(), a.copyBtn, a.saveBtn)
	summaryPane := container.NewBorder(summaryHeader, nil, nil, nil, container.NewStack(a.summary.scroll, a.emptyState))

	// Charts and statistics.
	a.tokChart = NewChart("Decode speed (tokens/s)", "No run yet")
	a.tokChart.AddSeries("tokens/s", theme.ColorNamePrimary, chartPoints, false)
	a.memChart = NewChart("Memory (MB)", "No run yet")
	a.memChart.AddSeries("engine", theme.ColorNamePrimary, chartPoints, false)
	a.memChart.AddSeries("device (all processes)", theme.ColorNameWarning, chartPoints, false)
	a.accChart = NewChart("Accepted drafts per step", "Prompt lookup only")
	a.accChart.AddSeries("accepted", theme.ColorNameSuccess, chartPoints, true)
	a.accChart.SetFormatX(func(x float64) string { return "step " + strconv.Itoa(int(x)) })
	a.stats = newStatsPanel()
	a.copyStat = widget.NewButtonWithIcon("Copy", theme.ContentCopyIcon(), func() {
		a.fyneApp.Clipboard().SetContent(a.stats.Text())
	})
	a.copyStat.Importance = widget.LowImportance
	statsBox := container.NewBorder(container.NewHBox(heading("Statistics"), layout.NewSpacer(), a.copyStat),
		nil, nil, nil, container.NewVScroll(a.stats.obj))
	charts := container.NewGridWithColumns(3, a.tokChart, a.memChart, a.accChart)
	bottom := container.NewBorder(nil, nil, nil, container.New(fixedWidth(320), statsBox), charts)

	split := container.NewHSplit(articlePane, summaryPane)
	split.Offset = 0.5
	main := container.NewBorder(nil, container.NewPadded(bottom), nil, nil, split)

	a.status = widget.NewLabel("")
	a.status.Truncation = fyne.TextTruncateEllipsis
	return container.NewBorder(nil, container.NewVBox(widget.NewSeparator(), a.status),
		container.NewHBox(a.buildSettings(), widget.NewSeparator()), nil, main)
}

// heading is a pane's bold title.
func heading(s string) *widget.Label {
	l := widget.NewLabel(s)
	l.TextStyle.Bold = true
	return l
}

func (a *App) buildEmptyState() fyne.CanvasObject {
	text := widget.NewRichTextFromMarkdown(`## No model folder chosen

Brief runs a 4-bit AWQ Llama or Mistral model from a folder on your disk. It was made for **OpenHermes-2.5-Mistral-7B-AWQ**: download the folder [TheBloke/OpenHermes-2.5-Mistral-7B-AWQ](https://huggingface.co/TheBloke/OpenHermes-2.5-Mistral-7B-AWQ) from Hugging Face, for example with

` + "`huggingface-cli download TheBloke/OpenHermes-2.5-Mistral-7B-AWQ --local-dir OpenHermes-2.5-Mistral-7B-AWQ`" + `

then press **Choose model folder…** on the left. The 7B model needs an NVIDIA GPU with about 5 GB of free memory; small models also run on the CPU engine.`)
	text.Wrapping = fyne.TextWrapWord
	return container.NewVScroll(container.NewPadded(text))
}

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

	a.instruction = widget.NewMultiLineEntry()
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

	a.system = widget.NewMultiLineEntry()
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

	a.maxNew = widget.NewEntry()
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
// full height given.
type fixedWidth float32

func (w fixedWidth) MinSize(objs []fyne.CanvasObject) fyne.Size {
	h := float32(0)
	for _, o := range objs {
		h = max(h, o.MinSize().Height)
	}
	return fyne.NewSize(float32(w), h)
}

func (w fixedWidth) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	for _, o := range objs {
		o.Move(fyne.NewPos(0, 0))
		o.Resize(fyne.NewSize(float32(w), size.Height))
	}
}

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
func (a *App) modelKey() string { return a.engineSel.Selected + "\x00" + a.modelDir }

func (a *App) updateModelLabel() {
	if a.modelDir == "" {
		a.modelLabel.SetText("No model folder chosen")
		return
	}
	a.modelLabel.SetText(a.modelDir)
}

// updateControls enables what can be used now and shows the empty state.
func (a *App) updateControls() {
	set := func(w fyne.Disableable, on bool) {
		if on {
			w.Enable()
		} else {
			w.Disable()
		}
	}
	idle := !a.busy
	set(a.summarize, idle && a.modelDir != "")
	set(a.stop, a.busy)
	set(a.chooseModel, idle)
	set(a.engineSel, idle)
	set(a.openBtn, idle)
	set(a.pasteBtn, idle)
	set(a.draftSlider, a.strategySel.Selected == strategyLookup)
	if a.modelDir == "" && a.summary.Text() == "" {
		a.emptyState.Show()
		a.summary.scroll.Hide()
	} else {
		a.emptyState.Hide()
		a.summary.scroll.Show()
	}
	a.updateStatus()
}

func (a *App) updateStatus() {
	var parts []string
	if a.state != "" {
		parts = append(parts, a.state)
	} else if a.result != "" {
		parts = append(parts, a.result)
	}
	if a.model != nil {
		parts = append(parts,
			"Engine: "+a.info.Engine,
			fmt.Sprintf("Model: %s (%s)", a.info.Name, formatBytes(a.info.SizeBytes)),
			fmt.Sprintf("Context: %s / %s tokens", groupDigits(a.ctxUsed), groupDigits(a.info.MaxContext)))
	} else if a.modelDir == "" {
		parts = append(parts, "No model: choose a model folder")
	} else if !a.busy {
		parts = append(parts, "Model not loaded")
	}
	a.status.SetText(strings.Join(parts, "  ·  "))
}

func (a *App) updateArticleInfo(source string) {
	words := len(strings.Fields(a.article.Text))
	info := groupDigits(words) + " words"
	if source != "" {
		info += " · " + source
	}
	a.articleInfo.SetText(info)
}

func (a *App) setArticle(text, source string) {
	a.article.SetText(text)
	a.updateArticleInfo(source)
}

// showError shows err in a dialog titled title; the app keeps working.
func (a *App) showError(title string, err error) {
	msg := err.Error()
	// Capitalize a sentence, but not a message that starts with a file name.
	if first, _, _ := strings.Cut(msg, " "); msg != "" && !strings.ContainsAny(first, "./:\\") {
		msg = strings.ToUpper(msg[:1]) + msg[1:]
	}
	l := widget.NewLabel(msg)
	l.Wrapping = fyne.TextWrapWord
	l.Selectable = true
	d := dialog.NewCustom(title, "OK", l, a.win)
	d.Resize(fyne.NewSize(520, 0).Max(d.MinSize()))
	d.Show()
}

// --- articles ---

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

// --- model ---

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

// --- summarizing ---

// runParams is what one summary needs, read from the controls.
type runParams struct {
	system, instruction, article string
	maxNew                       int
	strategy                     inference.Strategy
	lookupTokens                 int
}

func (a *App) collectParams() (runParams, error) {
	p := runParams{
		system:       a.system.Text,
		instruction:  strings.TrimSpace(a.instruction.Text),
		article:      a.article.Text,
		strategy:     inference.Greedy,
		lookupTokens: int(a.draftSlider.Value),
	}
	if a.strategySel.Selected == strategyLookup {
		p.strategy = inference.Lookup
	}
	if err := checkArticle(p.article); err != nil {
		return p, err
	}
	if p.instruction == "" {
		return p, errors.New("the instruction is empty: pick a preset or write what the model should do with the article")
	}
	n, err := parseMaxNew(a.maxNew.Text)
	if err != nil {
		return p, err
	}
	p.maxNew = n
	return p, nil
}

// startSummary is the Summarize button.
func (a *App) startSummary() {
	if a.busy {
		return
	}
	if a.modelDir == "" {
		a.showError("No model folder", errors.New("choose a model folder first (see the Summary pane for where to get one)"))
		return
	}
	p, err := a.collectParams()
	if err != nil {
		a.showError("Cannot summarize", err)
		return
	}
	a.summary.Reset()
	a.summary.SetHint("Press Summarize to summarize the article.")
	a.tokChart.Clear()
	a.memChart.Clear()
	a.accChart.Clear()
	a.stats.Set(nil)
	a.result = ""
	a.runTokens, a.meter = 0, rateMeter{window: 500 * time.Millisecond}
	a.lookupRun = p.strategy == inference.Lookup
	for _, c := range []*Chart{a.tokChart, a.memChart, a.accChart} {
		c.Refresh()
	}
	a.startJob("Summarizing…", func(ctx context.Context, m Model) { a.generate(ctx, m, p) })
}

// generate runs on the job goroutine.
func (a *App) generate(ctx context.Context, m Model, p runParams) {
	info := m.Info()
	prompt, err := m.Prompt(p.system, p.instruction, p.article)
	if err != nil {
		a.do(func() { a.showError("Cannot build the prompt", err) })
		return
	}
	if err := fitsContext(len(prompt), p.maxNew, len(strings.Fields(p.article)), info); err != nil {
		a.do(func() { a.showError("The article is too long for this model", err) })
		return
	}
	a.do(func() {
		a.ctxUsed = len(prompt)
		a.summary.SetHint("Reading the article…")
		if a.lookupRun {
			a.accChart.SetEmptyText("Waiting for the first step")
		} else {
			a.accChart.SetEmptyText("Prompt lookup only")
		}
		a.accChart.Refresh()
		if info.Monitor == nil {
			a.memChart.SetNote("engine only: no GPU")
			a.memChart.Refresh()
		}
		a.updateStatus()
	})

	req := inference.Request{
		Prompt:       prompt,
		MaxNewTokens: p.maxNew,
		Strategy:     p.strategy,
		LookupTokens: p.lookupTokens,
	}
	buf := &streamBuffer{}
	start := time.Now()
	stop, ticked := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ticked)
		t := time.NewTicker(a.refresh)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				a.pushUpdate(buf, info.Monitor, start)
			}
		}
	}()
	rep, err := m.Generate(ctx, req, buf.emit)
	close(stop)
	<-ticked
	a.pushUpdate(buf, info.Monitor, start)
	cancelled := ctx.Err() != nil
	a.do(func() { a.finishRun(rep, err, cancelled, info) })
}

// fitsContext checks that the prompt and the new tokens fit the model's
// context, and otherwise says by how much the article must shrink.
func fitsContext(promptTokens, maxNew, articleWords int, info ModelInfo) error {
	need := promptTokens + maxNew
	if need <= info.MaxContext {
		return nil
	}
	over := need - info.MaxContext
	// Words per token of this article with this tokenizer (the prompt's
	// other parts are small beside an article that is too long).
	words := over * articleWords / max(promptTokens, 1)
	msg := fmt.Sprintf("the prompt is %s tokens and up to %s new tokens were asked for, but %s allows %s tokens in all. Shorten the article by about %s tokens (roughly %s words)",
		groupDigits(promptTokens), groupDigits(maxNew), info.Name, groupDigits(info.MaxContext), groupDigits(over), groupDigits(max(words, 1)))
	if promptTokens < info.MaxContext {
		msg += fmt.Sprintf(" or lower max new tokens to at most %s", groupDigits(info.MaxContext-promptTokens))
	}
	return errors.New(msg + ".")
}

// devSample is one device-wide memory reading.
type devSample struct {
	at          time.Duration
	used, total int64
}

// pushUpdate hands what the run produced since the last call to the UI
// thread, with a device memory reading.
func (a *App) pushUpdate(buf *streamBuffer, mon inference.DeviceMonitor, start time.Time) {
	text, steps := buf.take()
	var dev *devSample
	if mon != nil {
		if used, total, err := mon.DeviceMemory(); err == nil {
			dev = &devSample{at: time.Since(start), used: used, total: total}
		}
	}
	if text == "" && len(steps) == 0 && dev == nil {
		return
	}
	a.do(func() { a.applyUpdate(text, steps, dev) })
}

func (a *App) applyUpdate(text string, steps []inference.StepStats, dev *devSample) {
	if text != "" {
		a.summary.Append(text)
	}
	for _, s := range steps {
		a.runTokens += s.NewTokens
		secs := s.Elapsed.Seconds()
		if rate, ok := a.meter.add(s.Elapsed, a.runTokens); ok && s.Step > 0 {
			a.tokChart.Append(0, secs, rate)
		}
		a.memChart.Append(0, secs, float64(s.Memory.Current)/(1<<20))
		if a.lookupRun && s.Step > 0 {
			a.accChart.Append(0, float64(s.Step), float64(s.Accepted))
		}
		a.ctxUsed = s.Context
	}
	if dev != nil {
		a.memChart.Append(1, dev.at.Seconds(), float64(dev.used)/(1<<20))
		a.memChart.SetNote("device total " + groupDigits(int(dev.total>>20)) + " MB")
	}
	if len(steps) > 0 || dev != nil {
		a.tokChart.Refresh()
		a.memChart.Refresh()
		a.accChart.Refresh()
	}
	a.updateStatus()
}

func (a *App) finishRun(rep *inference.Report, err error, cancelled bool, info ModelInfo) {
	if rep != nil {
		a.stats.Set(reportRows(rep, info.GPU, a.lookupRun))
	}
	switch {
	case err != nil && !cancelled:
		a.result = "Failed"
		a.showError("Summarizing failed", err)
	case cancelled:
		a.result = fmt.Sprintf("Stopped after %d tokens", a.runTokens)
	case rep != nil:
		a.result = fmt.Sprintf("Done: %d tokens at %.1f tokens/s (stopped by %s)", rep.NewTokens, rep.Throughput, stopReasonText(rep.StopReason))
	}
	switch {
	case strings.TrimSpace(a.summary.Text()) != "":
	case cancelled:
		a.summary.SetHint("Stopped before the model wrote anything.")
	case err != nil:
		a.summary.SetHint("The run failed before the model wrote anything.")
	default:
		a.summary.SetHint("The model ended without writing anything.")
	}
}

// --- formatting ---

func formatBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// groupDigits writes n with thousands separators: 6435 -> "6,435".
func groupDigits(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
