package gui

import (
	"image/color"
	"math"
	"strconv"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// Chart is a live chart of one or more series over a shared x axis. Each
// series keeps its last points in a ring buffer, so appending costs the
// same however long a run goes; the renderer draws them as canvas.Lines in
// the theme's colours. Like every widget it is used from the UI thread
// only; Append does not refresh, so callers can coalesce.
type Chart struct {
	widget.BaseWidget

	title   string
	note    string // right of the title, e.g. the device's total memory
	empty   string // shown while there is no data
	series  []*series
	formatX func(float64) string
	formatY func(float64) string
}

// series is one line (or set of bars) of a Chart.
type series struct {
	name  string
	color fyne.ThemeColorName
	bars  bool
	ring  ring
}

// ring is a fixed-size ring buffer of points, oldest first.
type ring struct {
	xs, ys []float64
	start  int // index of the oldest point
	n      int
}

func newRing(capacity int) ring {
	return ring{xs: make([]float64, capacity), ys: make([]float64, capacity)}
}

func (r *ring) add(x, y float64) {
	c := len(r.xs)
	if r.n < c {
		i := (r.start + r.n) % c
		r.xs[i], r.ys[i] = x, y
		r.n++
		return
	}
	r.xs[r.start], r.ys[r.start] = x, y
	r.start = (r.start + 1) % c
}

func (r *ring) at(i int) (x, y float64) {
	j := (r.start + i) % len(r.xs)
	return r.xs[j], r.ys[j]
}

func (r *ring) reset() { r.start, r.n = 0, 0 }

// NewChart returns an empty chart; empty is the text shown without data.
func NewChart(title, empty string) *Chart {
	c := &Chart{
		title:   title,
		empty:   empty,
		formatX: func(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) + " s" },
		formatY: formatAxis,
	}
	c.ExtendBaseWidget(c)
	return c
}

// AddSeries adds a series drawn in the theme colour col, keeping its last
// capacity points; bars draws a vertical bar per point instead of a line.
// It returns the series' index for Append.
func (c *Chart) AddSeries(name string, col fyne.ThemeColorName, capacity int, bars bool) int {
	c.series = append(c.series, &series{name: name, color: col, bars: bars, ring: newRing(capacity)})
	return len(c.series) - 1
}

// SetFormatX sets how the x axis' end labels are written.
func (c *Chart) SetFormatX(f func(float64) string) { c.formatX = f }

// Append adds a point to series s. It does not refresh the chart.
func (c *Chart) Append(s int, x, y float64) {
	if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
		return
	}
	c.series[s].ring.add(x, y)
}

// Len returns the number of points series s holds.
func (c *Chart) Len(s int) int { return c.series[s].ring.n }

// SetTitle sets the chart's title.
func (c *Chart) SetTitle(title string) { c.title = title }

// SetNote sets the text right of the title.
func (c *Chart) SetNote(note string) { c.note = note }

// SetEmptyText sets the text shown while the chart has no data.
func (c *Chart) SetEmptyText(s string) { c.empty = s }

// Clear drops every point and the note.
func (c *Chart) Clear() {
	for _, s := range c.series {
		s.ring.reset()
	}
	c.note = ""
}

// MinSize keeps the chart readable.
func (c *Chart) MinSize() fyne.Size {
	c.ExtendBaseWidget(c)
	return fyne.NewSize(180, 275)
}

// CreateRenderer implements fyne.Widget.
func (c *Chart) CreateRenderer() fyne.WidgetRenderer {
	c.ExtendBaseWidget(c)
	r := &chartRenderer{
		c:     c,
		bg:    canvas.NewRectangle(color.Transparent),
		title: canvas.NewText(c.title, color.Black),
		note:  canvas.NewText("", color.Black),
		empty: canvas.NewText("", color.Black),
		yMax:  canvas.NewText("", color.Black),
		yMid:  canvas.NewText("", color.Black),
		yMin:  canvas.NewText("0", color.Black),
		xMin:  canvas.NewText("", color.Black),
		xMax:  canvas.NewText("", color.Black),
		xAxis: canvas.NewLine(color.Black),
		yAxis: canvas.NewLine(color.Black),
		grid:  canvas.NewLine(color.Black),
	}
	r.title.TextStyle.Bold = true
	r.note.Alignment = fyne.TextAlignTrailing
	r.empty.Alignment = fyne.TextAlignCenter
	r.yMax.Alignment = fyne.TextAlignTrailing
	r.yMid.Alignment = fyne.TextAlignTrailing
	r.yMin.Alignment = fyne.TextAlignTrailing
	r.xMax.Alignment = fyne.TextAlignTrailing
	r.Refresh()
	return r
}

type chartRenderer struct {
	c                  *Chart
	bg                 *canvas.Rectangle
	title, note, empty *canvas.Text
	yMax, yMid, yMin   *canvas.Text
	xMin, xMax         *canvas.Text
	xAxis, yAxis, grid *canvas.Line
	legend             []*canvas.Text
	lines              []*canvas.Line // pool; the first used are drawn
	used               int
	objects            []fyne.CanvasObject
	xLo, xHi, yHi      float64
	hasData            bool
}

func (r *chartRenderer) Destroy() {}

func (r *chartRenderer) MinSize() fyne.Size { return r.c.MinSize() }

func (r *chartRenderer) Objects() []fyne.CanvasObject { return r.objects }

// Refresh recomputes the scales and colours; Layout places everything.
func (r *chartRenderer) Refresh() {
	c := r.c
	th := c.Theme()
	v := fyne.CurrentApp().Settings().ThemeVariant()
	fg := th.Color(theme.ColorNameForeground, v)
	dim := th.Color(theme.ColorNamePlaceHolder, v)
	axis := th.Color(theme.ColorNameDisabled, v)
	small := th.Size(theme.SizeNameCaptionText)

	r.bg.FillColor = th.Color(theme.ColorNameInputBackground, v)
	r.bg.CornerRadius = th.Size(theme.SizeNameInputRadius)
	for _, t := range []*canvas.Text{r.title, r.note, r.yMax, r.yMid, r.yMin, r.xMin, r.xMax, r.empty} {
		t.Color = dim
		t.TextSize = small
	}
	r.title.Color = fg
	r.title.Text = c.title
	r.note.Text = c.note
	r.empty.Text = c.empty
	for _, l := range []*canvas.Line{r.xAxis, r.yAxis} {
		l.StrokeColor = axis
		l.StrokeWidth = 1
	}
	r.grid.StrokeColor = withAlpha(axis, 0x50)
	r.grid.StrokeWidth = 1

	for len(r.legend) < len(c.series) {
		r.legend = append(r.legend, canvas.NewText("", color.Black))
	}
	r.legend = r.legend[:len(c.series)]
	anyData := false
	for _, s := range c.series {
		anyData = anyData || s.ring.n > 0
	}
	for i, s := range c.series {
		// With data, the legend names only the series that have some.
		r.legend[i].Text = s.name
		if anyData && s.ring.n == 0 {
			r.legend[i].Text = ""
		}
		r.legend[i].TextSize = small
		r.legend[i].Color = th.Color(s.color, v)
	}

	// Scales over what the rings hold.
	r.hasData = false
	r.xLo, r.xHi, r.yHi = math.Inf(1), math.Inf(-1), 0
	segments := 0
	for _, s := range c.series {
		for i := 0; i < s.ring.n; i++ {
			x, y := s.ring.at(i)
			r.xLo, r.xHi = math.Min(r.xLo, x), math.Max(r.xHi, x)
			r.yHi = math.Max(r.yHi, y)
			r.hasData = true
		}
		if s.bars {
			segments += s.ring.n
		} else if s.ring.n > 1 {
			segments += s.ring.n - 1
		}
	}
	r.yHi = niceCeil(r.yHi)
	if r.hasData {
		r.yMax.Text = c.formatY(r.yHi)
		r.yMid.Text = c.formatY(r.yHi / 2)
		r.xMin.Text = c.formatX(r.xLo)
		r.xMax.Text = c.formatX(r.xHi)
		r.empty.Text = ""
	} else {
		r.yMax.Text, r.yMid.Text, r.xMin.Text, r.xMax.Text = "", "", "", ""
	}
	r.yMin.Text = ""
	if r.hasData {
		r.yMin.Text = "0"
	}

	for len(r.lines) < segments {
		r.lines = append(r.lines, canvas.NewLine(color.Black))
	}
	r.used = segments

	r.objects = r.objects[:0]
	r.objects = append(r.objects, r.bg, r.grid, r.xAxis, r.yAxis, r.title, r.note, r.empty,
		r.yMax, r.yMid, r.yMin, r.xMin, r.xMax)
	for _, t := range r.legend {
		r.objects = append(r.objects, t)
	}
	for _, l := range r.lines[:r.used] {
		r.objects = append(r.objects, l)
	}
	r.Layout(c.Size())
	canvas.Refresh(c)
}

// Layout places the frame and turns the points into line coordinates.
func (r *chartRenderer) Layout(size fyne.Size) {
	c := r.c
	th := c.Theme()
	v := fyne.CurrentApp().Settings().ThemeVariant()
	pad := th.Size(theme.SizeNameInnerPadding) / 2
	small := th.Size(theme.SizeNameCaptionText)
	textH := fyne.MeasureText("0", small, fyne.TextStyle{}).Height

	r.bg.Resize(size)
	r.bg.Move(fyne.NewPos(0, 0))
	r.title.Move(fyne.NewPos(pad, pad))
	r.title.Resize(fyne.NewSize(size.Width-2*pad, textH))
	r.note.Move(fyne.NewPos(pad, pad))
	r.note.Resize(fyne.NewSize(size.Width-2*pad, textH))

	labelW := float32(0)
	for _, t := range []*canvas.Text{r.yMax, r.yMid} {
		labelW = max(labelW, fyne.MeasureText(t.Text, small, t.TextStyle).Width)
	}
	labelW = max(labelW, fyne.MeasureText("0", small, fyne.TextStyle{}).Width)
	left := pad + labelW + pad
	top := pad + textH + pad
	legendY := size.Height - pad - textH
	bottom := legendY - textH // x labels above the legend
	right := size.Width - pad
	if right-left < 10 || bottom-top < 10 {
		return
	}

	// Legend along the bottom.
	lx := left
	for _, t := range r.legend {
		if t.Text == "" {
			continue
		}
		t.Move(fyne.NewPos(lx, legendY))
		w := fyne.MeasureText(t.Text, small, t.TextStyle).Width
		t.Resize(fyne.NewSize(w, textH))
		lx += w + 2*pad
	}

	r.xAxis.Position1, r.xAxis.Position2 = fyne.NewPos(left, bottom), fyne.NewPos(right, bottom)
	r.yAxis.Position1, r.yAxis.Position2 = fyne.NewPos(left, top), fyne.NewPos(left, bottom)
	mid := (top + bottom) / 2
	r.grid.Position1, r.grid.Position2 = fyne.NewPos(left, mid), fyne.NewPos(right, mid)
	place := func(t *canvas.Text, y float32) {
		t.Move(fyne.NewPos(pad, y-textH/2))
		t.Resize(fyne.NewSize(labelW, textH))
	}
	place(r.yMax, top)
	place(r.yMid, mid)
	place(r.yMin, bottom)
	r.xMin.Move(fyne.NewPos(left, bottom))
	r.xMin.Resize(fyne.NewSize((right-left)/2, textH))
	r.xMax.Move(fyne.NewPos((left+right)/2, bottom))
	r.xMax.Resize(fyne.NewSize((right-left)/2, textH))
	r.empty.Move(fyne.NewPos(left, mid-textH/2))
	r.empty.Resize(fyne.NewSize(right-left, textH))

	// Data.
	xSpan := r.xHi - r.xLo
	inset := float32(0)
	for _, s := range c.series {
		if s.bars {
			inset = 4 // keep the first and last bar inside the frame
		}
	}
	px := func(x float64) float32 {
		if xSpan <= 0 {
			return (left + right) / 2
		}
		return left + 1 + inset + float32((x-r.xLo)/xSpan)*(right-left-1-2*inset)
	}
	py := func(y float64) float32 {
		return bottom - float32(y/r.yHi)*(bottom-top)
	}
	k := 0
	for _, s := range c.series {
		col := th.Color(s.color, v)
		if s.bars {
			width := float32(1)
			if s.ring.n > 0 {
				width = min(6, max(1, (right-left)/float32(s.ring.n)*0.6))
			}
			for i := 0; i < s.ring.n; i++ {
				x, y := s.ring.at(i)
				l := r.lines[k]
				k++
				l.StrokeColor, l.StrokeWidth = col, width
				l.Position1, l.Position2 = fyne.NewPos(px(x), bottom), fyne.NewPos(px(x), py(y))
			}
			continue
		}
		for i := 1; i < s.ring.n; i++ {
			x0, y0 := s.ring.at(i - 1)
			x1, y1 := s.ring.at(i)
			l := r.lines[k]
			k++
			l.StrokeColor, l.StrokeWidth = col, 1.5
			l.Position1, l.Position2 = fyne.NewPos(px(x0), py(y0)), fyne.NewPos(px(x1), py(y1))
		}
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 for v <= 0).
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// formatAxis writes an axis value briefly: 1.5, 20, 1.2k, 3.4M.
func formatAxis(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	case a >= 10 || v == math.Trunc(v):
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}

func withAlpha(c color.Color, a uint8) color.Color {
	r, g, b, _ := c.RGBA()
	return color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: a}
}
