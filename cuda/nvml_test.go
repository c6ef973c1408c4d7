package cuda

import (
	"errors"
	"testing"

	"github.com/briefapp/brief/inference"
)

var _ inference.DeviceMonitor = (*Monitor)(nil)

// TestMonitor: without NVML, OpenMonitor returns an error (never a crash);
// with it, the memory figures are sane.
func TestMonitor(t *testing.T) {
	m, err := OpenMonitor(0)
	if errors.Is(err, ErrNoGPU) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	used, total, err := m.DeviceMemory()
	if err != nil {
		t.Fatal(err)
	}
	if total <= 0 || used < 0 || used > total {
		t.Errorf("%s: used %d of %d", m.DeviceName(), used, total)
	}
	sm, mem, err := m.Clocks()
	t.Logf("%s: %d MiB used of %d, SM %d MHz, memory %d MHz (%v)", m.DeviceName(), used>>20, total>>20, sm, mem, err)
}
