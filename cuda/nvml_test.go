package cuda

import (
	"errors"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

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
	// NVML resolved CUDA's GPU 0 by its bus id to a device with that bus id.
	// (On a one-GPU machine this cannot tell NVML's numbering from CUDA's;
	// it checks the lookup and the id formats.)
	info, ret := m.dev.GetPciInfo()
	if ret != nvml.SUCCESS {
		t.Fatalf("NVML PCI info: %v", ret)
	}
	nv := pciString(info.BusId[:])
	if !samePCI(m.bus, nv) {
		t.Errorf("monitor on PCI %s (NVML), CUDA's GPU 0 is %s", nv, m.bus)
	}
	t.Logf("CUDA GPU 0 is PCI %s, NVML's %s", m.bus, nv)
}

// pciString is NVML's NUL-terminated bus id.
func pciString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func TestSamePCI(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"0000:3b:00.0", "00000000:3B:00.0", true},
		{"0000:3b:00.0", "0000:3B:00.0", true},
		{"0001:3b:00.0", "00000000:3B:00.0", false},
		{"0000:3b:00.0", "00000000:3C:00.0", false},
		{"0000:3b:01.0", "00000000:3B:00.0", false},
		{"", "00000000:3B:00.0", false},
		{"GPU-0", "GPU-0", false},
	} {
		if got := samePCI(tc.a, tc.b); got != tc.want {
			t.Errorf("samePCI(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
