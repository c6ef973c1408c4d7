package cuda

import (
	"fmt"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Monitor reads device-wide figures through NVML; it implements
// inference.DeviceMonitor. NVML is initialized once and checked before any
// other call: an NVML call after a failed Init kills the process.
type Monitor struct {
	mu   sync.Mutex
	dev  nvml.Device
	name string
	bus  string // PCI bus id, as CUDA writes it
}

var (
	nvmlOnce sync.Once
	nvmlErr  error
)

func initNVML() error {
	nvmlOnce.Do(func() {
		if ret := nvml.Init(); ret != nvml.SUCCESS {
			nvmlErr = fmt.Errorf("%w: NVML did not start (%v)", ErrNoGPU, ret)
		}
	})
	return nvmlErr
}

// OpenMonitor opens, through NVML, the GPU that CUDA numbers ordinal (the
// one an engine on that ordinal runs on), found by its PCI bus id: NVML's
// own numbering can differ from CUDA's.
func OpenMonitor(ordinal int) (*Monitor, error) {
	bus, err := pciBusID(ordinal)
	if err != nil {
		return nil, err
	}
	if err := initNVML(); err != nil {
		return nil, err
	}
	dev, ret := nvml.DeviceGetHandleByPciBusId(bus)
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("NVML: GPU %d (PCI %s): %v", ordinal, bus, ret)
	}
	name, ret := dev.GetName()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("NVML: name of GPU %d (PCI %s): %v", ordinal, bus, ret)
	}
	return &Monitor{dev: dev, name: name, bus: bus}, nil
}

// samePCI reports whether two PCI bus ids name the same device: CUDA
// writes a 4-digit domain ("0000:3b:00.0"), NVML 8 ("00000000:3B:00.0").
func samePCI(a, b string) bool {
	parse := func(s string) (v [4]uint64, ok bool) {
		var dom, bus, dev, fn uint64
		if _, err := fmt.Sscanf(s, "%x:%x:%x.%x", &dom, &bus, &dev, &fn); err != nil {
			return v, false
		}
		return [4]uint64{dom, bus, dev, fn}, true
	}
	x, okA := parse(a)
	y, okB := parse(b)
	return okA && okB && x == y
}

// DeviceName is the GPU's marketing name.
func (m *Monitor) DeviceName() string { return m.name }

// DeviceMemory returns the bytes in use on the device by all processes and
// the device's total.
func (m *Monitor) DeviceMemory() (used, total int64, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mem, ret := m.dev.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return 0, 0, fmt.Errorf("NVML: memory of %s: %v", m.name, ret)
	}
	return int64(mem.Used), int64(mem.Total), nil
}

// Clocks returns the current SM and memory clocks in MHz (for benchmark
// reports: a figure means little without the clock state).
func (m *Monitor) Clocks() (sm, mem int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ret := m.dev.GetClockInfo(nvml.CLOCK_SM)
	if ret != nvml.SUCCESS {
		return 0, 0, fmt.Errorf("NVML: SM clock of %s: %v", m.name, ret)
	}
	mm, ret := m.dev.GetClockInfo(nvml.CLOCK_MEM)
	if ret != nvml.SUCCESS {
		return 0, 0, fmt.Errorf("NVML: memory clock of %s: %v", m.name, ret)
	}
	return int(s), int(mm), nil
}

// Energy returns the joules the device has used since its driver loaded
// (for benchmarks: a prefill at the power limit is bound by its energy).
func (m *Monitor) Energy() (float64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mj, ret := m.dev.GetTotalEnergyConsumption()
	if ret != nvml.SUCCESS {
		return 0, fmt.Errorf("NVML: energy of %s: %v", m.name, ret)
	}
	return float64(mj) / 1e3, nil
}
