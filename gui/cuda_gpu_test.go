//go:build cudatest

package gui

import (
	"strings"
	"testing"

	"github.com/briefapp/brief/cuda"
	"github.com/briefapp/brief/inference"
)

// TestCUDAPipelineFlow runs the window on the CUDA engine (GPU machines:
// go test -tags cudatest): same summary as the CPU reference, GPU named,
// device memory charted.
func TestCUDAPipelineFlow(t *testing.T) {
	b := Pipeline{CUDA: func(m *inference.Model) (inference.Engine, inference.DeviceMonitor, error) {
		e, err := cuda.New(m, cuda.Options{})
		if err != nil {
			return nil, nil, err
		}
		mon, err := cuda.OpenMonitor(0)
		if err != nil {
			t.Logf("NVML: %v", err)
			return e, nil, nil
		}
		return e, mon, nil
	}}
	h, dir := newPipelineHarness(t, b)
	want, _ := reference(t, dir, inference.Greedy)
	h.app.engineSel.SetSelected("CUDA")
	h.idle()
	h.noDialog()
	t.Logf("status: %s", h.app.status.Text)
	if !strings.Contains(h.app.status.Text, "Engine: CUDA on ") {
		t.Errorf("status = %q", h.app.status.Text)
	}
	for _, strategy := range []string{strategyGreedy, strategyLookup} {
		h.app.strategySel.SetSelected(strategy)
		h.summarize()
		h.noDialog()
		if got := h.app.summary.Text(); got != want {
			t.Errorf("%s: summary = %q, want the CPU engine's %q", strategy, got, want)
		}
		t.Logf("%s statistics:\n%s", strategy, h.app.stats.Text())
		t.Logf("memory chart: %d engine points, %d device points, note %q", h.app.memChart.Len(0), h.app.memChart.Len(1), h.app.memChart.note)
		if h.app.memChart.title != "GPU memory (MB)" || h.app.memChart.Len(0) == 0 {
			t.Errorf("%s: memory chart %q with %d points", strategy, h.app.memChart.title, h.app.memChart.Len(0))
		}
	}
	if strings.Contains(h.app.stats.Text(), "GPU: none") {
		t.Error("statistics name no GPU")
	}
}
