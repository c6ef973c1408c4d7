package gui

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/test"

	"github.com/briefapp/brief/assets"
	"github.com/briefapp/brief/inference"
)

// harness is one window on the test driver with a fake backend.
type harness struct {
	t   *testing.T
	fa  fyne.App
	w   fyne.Window
	q   *uiQueue
	b   *fakeBackend
	app *App
}

const fakeDir = "/models/fake-7b"

func newHarness(t *testing.T, fa fyne.App, m *fakeModel) *harness {
	t.Helper()
	if fa == nil {
		fa = test.NewTempApp(t)
	}
	if m == nil {
		m = newFakeModel()
	}
	h := &harness{t: t, fa: fa, q: newUIQueue(), b: &fakeBackend{models: map[string]*fakeModel{fakeDir: m}}}
	h.start(h.b)
	return h
}

// start opens the window on backend b.
func (h *harness) start(b Backend) {
	h.w = test.NewWindow(nil)
	h.t.Cleanup(h.w.Close)
	h.app = New(h.fa, h.w, Options{Backend: b, Do: h.q.Do, Refresh: 5 * time.Millisecond})
	h.w.Resize(fyne.NewSize(1280, 800))
}

func newFakeModel() *fakeModel {
	return &fakeModel{
		name:       "fake-7b",
		maxContext: 4096,
		words:      strings.SplitAfter("The night sky is dark because the universe has a finite age.\n\nLight from far away has not reached us yet.", " "),
	}
}

func (h *harness) idle() {
	h.t.Helper()
	h.q.until(h.t, "the job to end", func() bool { return !h.app.busy })
}

// summarize presses Summarize and waits for the run to end.
func (h *harness) summarize() {
	h.t.Helper()
	if h.app.summarize.Disabled() {
		h.t.Fatalf("Summarize is disabled; status %q", h.app.status.Text)
	}
	test.Tap(h.app.summarize)
	h.idle()
}

func (h *harness) wantDialog(parts ...string) {
	h.t.Helper()
	got := strings.Join(topDialog(h.w), "\n")
	if got == "" {
		h.t.Fatalf("no dialog shown; want one saying %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(got, p) {
			h.t.Fatalf("dialog says %q, want it to contain %q", got, p)
		}
	}
	dismissDialog(h.t, h.w, "OK")
}

func (h *harness) noDialog() {
	h.t.Helper()
	if d := topDialog(h.w); d != nil {
		h.t.Fatalf("unexpected dialog: %q", d)
	}
}

func writeFile(t *testing.T, name, text string) fyne.URI {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return storage.NewFileURI(p)
}

// open loads uri as the article, as the file dialog does.
func (h *harness) open(uri fyne.URI) {
	h.t.Helper()
	r, err := storage.Reader(uri)
	if err != nil {
		h.t.Fatal(err)
	}
	h.app.loadArticle(uri, r)
	h.q.until(h.t, "the article to load", func() bool { return !strings.HasPrefix(h.app.articleInfo.Text, "reading") })
}

func TestFirstStart(t *testing.T) {
	h := newHarness(t, nil, nil)
	if h.app.article.Text != assets.SampleArticle {
		t.Error("the sample article is not shown on first start")
	}
	if !strings.Contains(h.app.articleInfo.Text, "sample article") {
		t.Errorf("article info = %q", h.app.articleInfo.Text)
	}
	// Empty state: no model folder, Summarize disabled, help text shown.
	if !h.app.summarize.Disabled() {
		t.Error("Summarize enabled without a model folder")
	}
	if !h.app.emptyState.Visible() || h.app.summary.scroll.Visible() {
		t.Error("empty state not shown")
	}
	help := strings.Join(texts(h.app.emptyState), " ")
	for _, want := range []string{"OpenHermes-2.5-Mistral-7B-AWQ", "TheBloke/OpenHermes-2.5-Mistral-7B-AWQ", "Hugging Face", "Choose model folder"} {
		if !strings.Contains(help, want) {
			t.Errorf("empty state lacks %q: %q", want, help)
		}
	}
	if !strings.Contains(h.app.status.Text, "choose a model folder") {
		t.Errorf("status = %q", h.app.status.Text)
	}
	if got := h.app.instruction.Text; got != "Please summarize the article in 5 sentences." {
		t.Errorf("default instruction = %q", got)
	}
	if h.app.system.Text != DefaultSystemPrompt {
		t.Errorf("default system prompt = %q", h.app.system.Text)
	}
	h.noDialog()
}

// TestSummaryFlow: open an article file, choose the model folder, summarize,
// and read the streamed summary, charts, statistics and status.
func TestSummaryFlow(t *testing.T) {
	m := newFakeModel()
	m.monitor = &fakeMonitor{}
	m.gpu = "Fake GPU 80GB"
	h := newHarness(t, nil, m)
	article := "# Dark skies\n\nOlbers asked why the night sky is dark.\n"
	h.open(writeFile(t, "dark.md", article))
	if h.app.article.Text != article || !strings.Contains(h.app.articleInfo.Text, "dark.md") {
		t.Fatalf("article = %q, info %q", h.app.article.Text, h.app.articleInfo.Text)
	}

	h.app.SetModelDir(fakeDir)
	h.idle()
	h.noDialog()
	if !strings.Contains(h.app.status.Text, "fake-7b (4.15 GB)") || !strings.Contains(h.app.status.Text, "CUDA on Fake GPU 80GB") {
		t.Errorf("status after loading = %q", h.app.status.Text)
	}
	if h.app.emptyState.Visible() {
		t.Error("empty state still shown with a model folder")
	}

	h.summarize()
	h.noDialog()
	want := strings.Join(m.words, "")
	if got := h.app.summary.Text(); got != want {
		t.Fatalf("summary = %q, want %q", got, want)
	}
	// One Label per non-empty line.
	if n := len(h.app.summary.labels); n != 2 {
		t.Errorf("%d paragraph labels, want 2", n)
	}
	if got := h.app.summary.labels[1].Text; got != "Light from far away has not reached us yet." {
		t.Errorf("second paragraph = %q", got)
	}
	if !h.app.summary.labels[0].Selectable {
		t.Error("summary text is not selectable")
	}
	// The prompt got the article, the preset instruction and the system prompt.
	if m.lastArgs != [3]string{DefaultSystemPrompt, "Please summarize the article in 5 sentences.", article} {
		t.Errorf("Prompt got %q", m.lastArgs)
	}
	if m.lastReq.MaxNewTokens != 512 || m.lastReq.Strategy != inference.Greedy {
		t.Errorf("request = %+v", m.lastReq)
	}
	// Charts: tokens/s after the first step, engine and device memory.
	if n := h.app.tokChart.Len(0); n != len(m.words)-1 {
		t.Errorf("tokens/s chart has %d points, want %d", n, len(m.words)-1)
	}
	if n := h.app.memChart.Len(0); n != len(m.words) {
		t.Errorf("engine memory chart has %d points, want %d", n, len(m.words))
	}
	if h.app.memChart.title != "GPU memory (MB)" {
		t.Errorf("memory chart title %q", h.app.memChart.title)
	}
	if h.app.memChart.Len(1) == 0 || !strings.Contains(h.app.memChart.note, "81,920 MB") {
		t.Errorf("device memory: %d points, note %q", h.app.memChart.Len(1), h.app.memChart.note)
	}
	if h.app.accChart.Len(0) != 0 {
		t.Error("accepted-drafts chart has points on a greedy run")
	}
	// Statistics, copyable.
	stats := h.app.stats.Text()
	for _, want := range []string{
		"Prompt tokens: ", "New tokens: 20\n", "Time to first token: 1.0 ms", "Prefill (tokens/sec): ",
		"Decode (tokens/sec): ", "Max memory (MB): 300.0\n", "Throughput (tokens/sec): ", "GPU: Fake GPU 80GB\n",
	} {
		if !strings.Contains(stats, want) {
			t.Errorf("statistics lack %q:\n%s", want, stats)
		}
	}
	test.Tap(h.app.copyStat)
	if got := h.fa.Clipboard().Content(); got != stats {
		t.Errorf("copied statistics = %q", got)
	}
	test.Tap(h.app.copyBtn)
	if got := h.fa.Clipboard().Content(); got != want {
		t.Errorf("copied summary = %q", got)
	}
	if !strings.Contains(h.app.status.Text, "Done: 20 tokens") || !strings.Contains(h.app.status.Text, "Context: ") {
		t.Errorf("status = %q", h.app.status.Text)
	}
	if h.app.summarize.Disabled() || !h.app.stop.Disabled() {
		t.Error("controls not back after the run")
	}

	// Save as markdown and as text.
	for _, name := range []string{"s.md", "s.txt"} {
		p := filepath.Join(t.TempDir(), name)
		wr, err := storage.Writer(storage.NewFileURI(p))
		if err != nil {
			t.Fatal(err)
		}
		if err := writeSummary(wr, h.app.summary.Text()); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		wantFile := strings.TrimSpace(want) + "\n"
		if name == "s.md" {
			wantFile = "# Summary\n\n" + wantFile
		}
		if string(got) != wantFile {
			t.Errorf("%s = %q, want %q", name, got, wantFile)
		}
	}

	// A second run reuses the loaded model.
	h.summarize()
	if n := len(m.words); h.app.summary.Text() != want || len(h.b.opened) != 1 {
		t.Errorf("second run: %d opens, summary %q (%d words)", len(h.b.opened), h.app.summary.Text(), n)
	}
}

func TestPromptLookupRun(t *testing.T) {
	m := newFakeModel()
	m.accepted = []int{2, 0, 3}
	h := newHarness(t, nil, m)
	h.app.SetModelDir(fakeDir)
	h.idle()
	h.app.strategySel.SetSelected(strategyLookup)
	h.app.draftSlider.SetValue(7)
	h.app.maxNew.SetText("64")
	h.summarize()
	h.noDialog()
	if m.lastReq.Strategy != inference.Lookup || m.lastReq.LookupTokens != 7 || m.lastReq.MaxNewTokens != 64 {
		t.Fatalf("request = %+v", m.lastReq)
	}
	if got, want := h.app.summary.Text(), strings.Join(m.words, ""); got != want {
		t.Fatalf("summary = %q, want %q", got, want)
	}
	n := h.app.accChart.Len(0)
	if n == 0 {
		t.Fatal("accepted-drafts chart is empty on a prompt lookup run")
	}
	for i := 0; i < n; i++ {
		x, y := h.app.accChart.series[0].ring.at(i)
		if x != float64(i+1) || y != float64(m.accepted[i%3]) {
			t.Errorf("point %d = (%v, %v), want (%d, %d)", i, x, y, i+1, m.accepted[i%3])
		}
	}
	if s := h.app.stats.Text(); !strings.Contains(s, "Drafts accepted: ") || !strings.Contains(s, "Tokens per step: ") {
		t.Errorf("statistics lack prompt lookup figures:\n%s", s)
	}
}

// TestStop: Stop ends the run at the next step and the app keeps working.
func TestStop(t *testing.T) {
	m := newFakeModel()
	m.gate = make(chan struct{})
	h := newHarness(t, nil, m)
	h.app.SetModelDir(fakeDir)
	h.idle()
	test.Tap(h.app.summarize)
	if h.app.stop.Disabled() || !h.app.summarize.Disabled() || !h.app.chooseModel.Disabled() {
		t.Fatal("controls not switched for a running job")
	}
	for i := 0; i < 3; i++ {
		m.gate <- struct{}{}
	}
	h.q.until(t, "4 words on screen", func() bool { return h.app.summary.Text() == strings.Join(m.words[:4], "") })
	test.Tap(h.app.stop)
	h.idle() // no more gate values: only cancellation can end the run
	h.noDialog()
	if got := h.app.summary.Text(); got != strings.Join(m.words[:4], "") {
		t.Errorf("summary after Stop = %q", got)
	}
	if s := h.app.stats.Text(); !strings.Contains(s, "New tokens: 4\n") || !strings.Contains(h.app.status.Text, "Stopped after 4 tokens") {
		t.Errorf("statistics after Stop:\n%s", s)
	}
	if !strings.Contains(h.app.status.Text, "Stopped after 4 tokens") {
		t.Errorf("status = %q", h.app.status.Text)
	}
	// The app keeps working: a full run after the stopped one.
	m.gate = nil
	h.summarize()
	if got := h.app.summary.Text(); got != strings.Join(m.words, "") {
		t.Errorf("run after Stop: summary = %q", got)
	}
}

// TestErrors shows each error as a dialog and checks the app still works
// after it.
func TestErrors(t *testing.T) {
	long := strings.Repeat("word ", 300)
	tests := []struct {
		name  string
		setup func(h *harness)
		want  []string
	}{
		{"bad model folder", func(h *harness) { h.app.SetModelDir("/nowhere/model"); h.idle() },
			[]string{"Cannot open the model", "/nowhere/model: not a model folder: config.json not found"}},
		{"no GPU", func(h *harness) {
			h.app.SetModelDir(fakeDir)
			h.idle()
			h.app.engineSel.SetSelected("CUDA")
			h.idle()
		}, []string{"Cannot open the model", "No NVIDIA GPU found", "CPU engine"}},
		{"PDF without text", func(h *harness) { h.open(writeFile(h.t, "scan.pdf", string(makePDF("0 0 1 rg 72 72 200 200 re f")))) },
			[]string{"Cannot use this article", "scan.pdf: the PDF has no text to extract"}},
		{"non-UTF-8 file", func(h *harness) { h.open(writeFile(h.t, "old.txt", "na\xefve")) },
			[]string{"Cannot use this article", "old.txt: not UTF-8 text"}},
		{"empty article", func(h *harness) {
			h.app.SetModelDir(fakeDir)
			h.idle()
			h.app.article.SetText("   ")
			test.Tap(h.app.summarize)
		}, []string{"Cannot summarize", "The article is empty"}},
		{"article too long", func(h *harness) {
			h.b.models[fakeDir].maxContext = 700
			h.app.SetModelDir(fakeDir)
			h.idle()
			h.app.article.SetText(long)
			h.summarize()
		}, []string{"The article is too long for this model", "fake-7b allows 700 tokens", "Shorten the article by about", "Shorten the article by about 142 tokens (roughly 129 words)", "lower max new tokens to at most 370."}},
		{"engine failure mid-run", func(h *harness) {
			h.b.models[fakeDir].failAt = 3
			h.app.SetModelDir(fakeDir)
			h.idle()
			h.summarize()
			h.b.models[fakeDir].failAt = 0
		}, []string{"Summarizing failed", "kernel attention_decode failed at step 3"}},
		{"bad max new tokens", func(h *harness) {
			h.app.SetModelDir(fakeDir)
			h.idle()
			h.app.maxNew.SetText("lots")
			test.Tap(h.app.summarize)
		}, []string{"Cannot summarize", "Max new tokens must be a whole number"}},
		{"empty custom instruction", func(h *harness) {
			h.app.SetModelDir(fakeDir)
			h.idle()
			h.app.instruction.SetText("")
			test.Tap(h.app.summarize)
		}, []string{"Cannot summarize", "The instruction is empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			tc.setup(h)
			h.wantDialog(tc.want...)
			// The app keeps working: fix the settings and run.
			if h.app.engineSel.Selected != "Auto" {
				h.app.engineSel.SetSelected("Auto")
				h.idle()
			}
			h.app.SetModelDir(fakeDir)
			h.idle()
			h.app.maxNew.SetText("512")
			h.app.presetSel.SetSelected(presets[0].name)
			h.app.article.SetText("A short article about the dark night sky.")
			h.summarize()
			h.noDialog()
			if !strings.Contains(h.app.status.Text, "Done: ") {
				t.Errorf("after the error, a run ends with status %q", h.app.status.Text)
			}
		})
	}
}

func TestDropAndPaste(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.app.dropped([]fyne.URI{writeFile(t, "dropped.txt", "Dropped text.")})
	h.q.until(t, "the dropped file", func() bool { return h.app.article.Text == "Dropped text." })
	h.noDialog()

	h.fa.Clipboard().SetContent("Pasted text.")
	test.Tap(h.app.pasteBtn)
	if h.app.article.Text != "Pasted text." || !strings.Contains(h.app.articleInfo.Text, "pasted") {
		t.Errorf("after Paste: %q (%q)", h.app.article.Text, h.app.articleInfo.Text)
	}
	h.fa.Clipboard().SetContent("")
	test.Tap(h.app.pasteBtn)
	h.wantDialog("Nothing to paste")
	if h.app.article.Text != "Pasted text." {
		t.Error("an empty paste replaced the article")
	}
}

// TestPreferences: settings survive a restart under the same app ID.
func TestPreferences(t *testing.T) {
	fa := test.NewTempApp(t)
	h := newHarness(t, fa, nil)
	h.app.SetModelDir(fakeDir)
	h.idle()
	h.app.engineSel.SetSelected("CPU")
	h.idle()
	h.app.presetSel.SetSelected("TL;DR")
	h.app.system.SetText("You are terse.")
	h.app.strategySel.SetSelected(strategyLookup)
	h.app.draftSlider.SetValue(4)
	h.app.maxNew.SetText("200")
	h.app.instruction.SetText("Explain it to a child.")
	if h.app.presetSel.Selected != customPreset {
		t.Errorf("editing the instruction left preset %q selected", h.app.presetSel.Selected)
	}

	h2 := newHarness(t, fa, nil)
	h2.idle()
	a := h2.app
	if a.modelDir != fakeDir || a.engineSel.Selected != "CPU" || a.model == nil {
		t.Errorf("model folder %q, engine %q, loaded %v", a.modelDir, a.engineSel.Selected, a.model != nil)
	}
	if a.presetSel.Selected != customPreset || a.instruction.Text != "Explain it to a child." {
		t.Errorf("preset %q, instruction %q", a.presetSel.Selected, a.instruction.Text)
	}
	if a.system.Text != "You are terse." || a.strategySel.Selected != strategyLookup || a.draftSlider.Value != 4 || a.maxNew.Text != "200" {
		t.Errorf("system %q, strategy %q, draft %v, max new %q", a.system.Text, a.strategySel.Selected, a.draftSlider.Value, a.maxNew.Text)
	}
	a.presetSel.SetSelected("Key findings")
	if !strings.Contains(a.instruction.Text, "key findings") {
		t.Errorf("preset did not set the instruction: %q", a.instruction.Text)
	}
}

// TestShortcuts: Ctrl+Enter summarizes, Escape stops.
func TestShortcuts(t *testing.T) {
	m := newFakeModel()
	m.gate = make(chan struct{})
	h := newHarness(t, nil, m)
	h.app.SetModelDir(fakeDir)
	h.idle()
	sc := h.w.Canvas().(interface{ TypedShortcut(fyne.Shortcut) })
	sc.TypedShortcut(&desktop.CustomShortcut{KeyName: fyne.KeyReturn, Modifier: fyne.KeyModifierShortcutDefault})
	if !h.app.busy {
		t.Fatal("Ctrl+Enter did not start a run")
	}
	m.gate <- struct{}{}
	h.q.until(t, "2 words on screen", func() bool { return h.app.summary.Text() == strings.Join(m.words[:2], "") })
	h.w.Canvas().OnTypedKey()(&fyne.KeyEvent{Name: fyne.KeyEscape})
	h.idle()
	if !strings.Contains(h.app.status.Text, "Stopped after 2 tokens") {
		t.Errorf("status after Escape = %q", h.app.status.Text)
	}
}

// TestShortcutsInEntries: Ctrl+Enter starts a run while the caret is in the
// article (Fyne hands shortcuts to the focused widget), and the entry keeps
// its own shortcuts.
func TestShortcutsInEntries(t *testing.T) {
	m := newFakeModel()
	m.gate = make(chan struct{})
	h := newHarness(t, nil, m)
	h.app.SetModelDir(fakeDir)
	h.idle()
	h.w.Canvas().Focus(h.app.article)
	h.app.article.SetText("abc")
	h.app.article.TypedShortcut(&fyne.ShortcutSelectAll{})
	if got := h.app.article.SelectedText(); got != "abc" {
		t.Errorf("select-all in the article selected %q", got)
	}
	h.app.article.TypedShortcut(&desktop.CustomShortcut{KeyName: fyne.KeyReturn, Modifier: fyne.KeyModifierShortcutDefault})
	if !h.app.busy {
		t.Fatal("Ctrl+Enter in the article did not start a run")
	}
	if h.app.article.Text != "abc" {
		t.Errorf("Ctrl+Enter changed the article to %q", h.app.article.Text)
	}
	m.gate <- struct{}{}
	h.app.Stop()
	h.idle()
}

// TestShutdown closes the model after stopping a run.
func TestShutdown(t *testing.T) {
	m := newFakeModel()
	m.gate = make(chan struct{})
	h := newHarness(t, nil, m)
	h.app.SetModelDir(fakeDir)
	h.idle()
	test.Tap(h.app.summarize)
	quit := false
	h.app.Shutdown(5*time.Second, func() { quit = true })
	h.q.until(t, "shutdown", func() bool { return quit })
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		t.Error("model not closed on shutdown")
	}
}
