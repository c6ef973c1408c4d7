package gui

import (
	"fmt"
	"image/color"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/briefapp/brief/inference"
)

// statRow is one line of the statistics panel.
type statRow struct{ name, value string }

// reportRows turns a finished run's report into the statistics panel's
// rows. The names of "Max memory (MB)" and "Throughput (tokens/sec)" are
// the original script's.
func reportRows(r *inference.Report, gpu string, lookup bool) []statRow {
	if gpu == "" {
		gpu = "none (CPU)"
	}
	rows := []statRow{
		{"Prompt tokens", fmt.Sprint(r.PromptTokens)},
		{"New tokens", fmt.Sprint(r.NewTokens)},
		{"Time to first token", formatDuration(r.TimeToFirst)},
		{"Prefill (tokens/sec)", fmt.Sprintf("%.1f", r.PrefillTokensPS)},
		{"Decode (tokens/sec)", fmt.Sprintf("%.1f", r.DecodeTokensPS)},
		{"Max memory (MB)", fmt.Sprintf("%.1f", float64(r.PeakMemory)/(1<<20))},
		{"Throughput (tokens/sec)", fmt.Sprintf("%.2f", r.Throughput)},
		{"GPU", gpu},
	}
	if lookup {
		perStep := 0.0
		if r.Steps > 0 {
			perStep = float64(r.NewTokens-1) / float64(r.Steps)
		}
		rows = append(rows,
			statRow{"Drafts accepted", fmt.Sprintf("%d of %d", r.Accepted, r.Drafted)},
			statRow{"Tokens per step", fmt.Sprintf("%.2f", perStep)})
	}
	return rows
}

func stopReasonText(s string) string {
	switch s {
	case "eos":
		return "end of text"
	case "max_tokens":
		return "max new tokens"
	case "cancelled":
		return "Stop"
	case "context_full":
		return "context full"
	}
	return s
}

func formatDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// statsText writes rows as "name: value" lines, for the clipboard.
func statsText(rows []statRow) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%s: %s\n", r.name, r.value)
	}
	return b.String()
}

// statsPanel shows the statistics of the last run in two columns of
// selectable labels.
type statsPanel struct {
	grid *fyne.Container
	rows []statRow
	obj  fyne.CanvasObject
}

func newStatsPanel() *statsPanel {
	p := &statsPanel{grid: container.New(newFormLayout())}
	p.obj = container.NewThemeOverride(p.grid, compactTheme{})
	p.Set(nil)
	return p
}

// compactTheme packs the statistics' rows tightly: ten rows fit beside the
// charts.
type compactTheme struct{}

func (compactTheme) Color(n fyne.ThemeColorName, v fyne.ThemeVariant) color.Color {
	return fyne.CurrentApp().Settings().Theme().Color(n, v)
}

func (compactTheme) Font(s fyne.TextStyle) fyne.Resource {
	return fyne.CurrentApp().Settings().Theme().Font(s)
}

func (compactTheme) Icon(n fyne.ThemeIconName) fyne.Resource {
	return fyne.CurrentApp().Settings().Theme().Icon(n)
}

func (compactTheme) Size(n fyne.ThemeSizeName) float32 {
	base := fyne.CurrentApp().Settings().Theme().Size(n)
	switch n {
	case theme.SizeNameInnerPadding:
		return base / 4
	case theme.SizeNameText:
		return base - 1
	}
	return base
}

// Set shows rows; nil shows the empty state.
func (p *statsPanel) Set(rows []statRow) {
	p.rows = rows
	p.grid.RemoveAll()
	if len(rows) == 0 {
		l := widget.NewLabel("They appear when a run ends.")
		l.Importance = widget.LowImportance
		p.grid.Add(l)
		p.grid.Add(widget.NewLabel(""))
		return
	}
	for _, r := range rows {
		n := widget.NewLabel(r.name)
		n.TextStyle.Bold = true
		v := widget.NewLabel(r.value)
		v.Selectable = true
		p.grid.Add(n)
		p.grid.Add(v)
	}
}

// Text returns the shown statistics as "name: value" lines.
func (p *statsPanel) Text() string { return statsText(p.rows) }

// newFormLayout lays children out in name/value pairs with the names'
// column as wide as the widest name.
func newFormLayout() fyne.Layout { return &pairLayout{} }

type pairLayout struct{}

func (pairLayout) MinSize(objs []fyne.CanvasObject) fyne.Size {
	var w0, w1, h float32
	for i := 0; i+1 < len(objs); i += 2 {
		a, b := objs[i].MinSize(), objs[i+1].MinSize()
		w0, w1 = max(w0, a.Width), max(w1, b.Width)
		h += max(a.Height, b.Height)
	}
	return fyne.NewSize(w0+w1, h)
}

func (pairLayout) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	var w0 float32
	for i := 0; i+1 < len(objs); i += 2 {
		w0 = max(w0, objs[i].MinSize().Width)
	}
	var y float32
	for i := 0; i+1 < len(objs); i += 2 {
		a, b := objs[i].MinSize(), objs[i+1].MinSize()
		h := max(a.Height, b.Height)
		objs[i].Move(fyne.NewPos(0, y))
		objs[i].Resize(fyne.NewSize(w0, h))
		objs[i+1].Move(fyne.NewPos(w0, y))
		objs[i+1].Resize(fyne.NewSize(max(size.Width-w0, b.Width), h))
		y += h
	}
}
