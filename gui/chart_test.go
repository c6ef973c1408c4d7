package gui

import (
	"math"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"
)

// renderChart draws c at 320x170 with the test theme and compares the
// image with testdata/name (written to testdata/failed/ on a mismatch).
func renderChart(t *testing.T, name string, c *Chart) {
	t.Helper()
	w := test.NewWindow(c)
	defer w.Close()
	w.SetPadded(false)
	w.Resize(fyne.NewSize(320, 170))
	test.AssertImageMatches(t, name, w.Canvas().Capture())
}

func TestChartGolden(t *testing.T) {
	test.NewTempApp(t)

	empty := NewChart("Decode speed (tokens/s)", "Tokens/s appear while a summary streams")
	empty.AddSeries("tokens/s", theme.ColorNamePrimary, 100, false)
	renderChart(t, "chart_empty.png", empty)

	speed := NewChart("Decode speed (tokens/s)", "")
	s := speed.AddSeries("tokens/s", theme.ColorNamePrimary, 100, false)
	for i := 0; i < 60; i++ {
		x := float64(i) * 0.05
		speed.Append(s, x, 520+60*math.Sin(x*4)-float64(i))
	}
	renderChart(t, "chart_speed.png", speed)

	mem := NewChart("Memory (MB)", "")
	eng := mem.AddSeries("engine", theme.ColorNamePrimary, 100, false)
	dev := mem.AddSeries("device (all processes)", theme.ColorNameWarning, 100, false)
	for i := 0; i < 40; i++ {
		x := float64(i) * 0.1
		mem.Append(eng, x, 4200+float64(i)*5)
		mem.Append(dev, x, 4900+float64(i)*5)
	}
	mem.SetNote("device total 81,559 MB")
	renderChart(t, "chart_memory.png", mem)

	acc := NewChart("Accepted drafts per step", "")
	bars := acc.AddSeries("accepted", theme.ColorNameSuccess, 100, true)
	acc.SetFormatX(func(x float64) string { return "step " + formatAxis(x) })
	for i := 1; i <= 30; i++ {
		acc.Append(bars, float64(i), float64((i*7)%11))
	}
	renderChart(t, "chart_accepted.png", acc)
}

// TestChartRing: a full ring keeps the newest points, oldest first.
func TestChartRing(t *testing.T) {
	test.NewTempApp(t)
	c := NewChart("t", "")
	s := c.AddSeries("s", theme.ColorNamePrimary, 4, false)
	for i := 0; i < 10; i++ {
		c.Append(s, float64(i), float64(i*i))
	}
	c.Append(s, math.NaN(), 1) // dropped
	if c.Len(s) != 4 {
		t.Fatalf("Len = %d, want 4", c.Len(s))
	}
	for i := 0; i < 4; i++ {
		x, y := c.series[s].ring.at(i)
		if want := float64(6 + i); x != want || y != want*want {
			t.Errorf("point %d = (%v, %v), want (%v, %v)", i, x, y, want, want*want)
		}
	}
	r := test.WidgetRenderer(c).(*chartRenderer)
	c.Refresh()
	if r.used != 3 || r.yHi != 100 || r.xLo != 6 || r.xHi != 9 {
		t.Errorf("renderer: %d segments, y max %v, x %v..%v", r.used, r.yHi, r.xLo, r.xHi)
	}
	c.Clear()
	c.Refresh()
	if c.Len(s) != 0 || r.used != 0 || r.hasData {
		t.Error("Clear left data")
	}
}

func TestNiceCeilAndFormat(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{{0, 1}, {-3, 1}, {0.7, 1}, {1, 1}, {1.2, 2}, {3, 5}, {7, 10}, {523, 1000}, {4980, 5000}, {5001, 10000}} {
		if got := niceCeil(tc.in); got != tc.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   float64
		want string
	}{{0, "0"}, {0.5, "0.5"}, {2.5, "2.5"}, {250, "250"}, {5000, "5000"}, {25000, "25k"}, {2e6, "2M"}} {
		if got := formatAxis(tc.in); got != tc.want {
			t.Errorf("formatAxis(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
