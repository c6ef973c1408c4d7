package main

import (
	"slices"
	"sync"
	"time"
)

// sampler polls the device monitor every 20 ms for memory in use and
// clocks, from before the engine opens to the end of the run. While a phase
// is named (setPhase), each sample also reads the clock event reasons and
// the power draw into that phase's figures: a prefill that holds the card
// at its power limit runs below the maximum SM clock.
type sampler struct {
	mon  benchMonitor
	dev  deviceJSON
	quit chan struct{}
	done chan struct{}
	once sync.Once

	mu                   sync.Mutex
	before, peak         int64
	samples              int
	smLo, smHi, mLo, mHi int
	phase                string
	phases               []phaseJSON
}

// phaseJSON is the clock state sampled during one part of the run.
type phaseJSON struct {
	Name         string  `json:"name"`
	Samples      int     `json:"samples"`
	SMClockMHz   [2]int  `json:"sm_clock_mhz"` // lowest and highest
	SMClockMean  float64 `json:"sm_clock_mean_mhz"`
	PowerMaxW    float64 `json:"power_max_w,omitempty"`
	PowerLimitW  float64 `json:"power_limit_w,omitempty"`
	PowerCapped  int     `json:"power_capped_samples"` // samples with a power reason (software cap or brake)
	EventReasons uint64  `json:"clock_event_reasons"`  // every reason seen, ORed
	smSum        float64 // of the samples' SM clocks, for the mean
}

// NVML clock event reasons that mean the board's power held the clocks.
const powerReasons = 0x4 | 0x80 // SW power cap, HW power brake

// setPhase names the part of the run the next samples belong to ("" for
// none). A nil sampler (no monitor) ignores it.
func (s *sampler) setPhase(name string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phase = name
}

func startSampler(mon benchMonitor) *sampler {
	s := &sampler{mon: mon, quit: make(chan struct{}), done: make(chan struct{})}
	s.dev.Name = mon.DeviceName()
	s.dev.SMClockMHz, s.dev.MemClockMHz, _ = mon.Clocks()
	s.dev.MaxSMClockMHz, s.dev.MaxMemClockMHz, _ = mon.MaxClocks()
	if bw, err := mon.PeakBandwidth(); err == nil {
		s.dev.PeakBandwidthGBps = bw / 1e9
	}
	if used, _, err := mon.DeviceMemory(); err == nil {
		s.before, s.peak = used, used
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.quit:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *sampler) sample() {
	used, _, err := s.mon.DeviceMemory()
	sm, mem, cerr := s.mon.Clocks()
	s.mu.Lock()
	phase := s.phase
	s.mu.Unlock()
	var reasons uint64
	var watts, limit float64
	var rerr, perr error
	if phase != "" {
		reasons, rerr = s.mon.ThrottleReasons()
		watts, limit, perr = s.mon.Power()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if phase != "" && cerr == nil {
		s.notePhase(phase, sm, reasons, rerr, watts, limit, perr)
	}
	if err == nil {
		s.peak = max(s.peak, used)
		s.samples++
	}
	if cerr == nil {
		if s.smLo == 0 || sm < s.smLo {
			s.smLo = sm
		}
		if s.mLo == 0 || mem < s.mLo {
			s.mLo = mem
		}
		s.smHi, s.mHi = max(s.smHi, sm), max(s.mHi, mem)
	}
}

// notePhase adds one sample to phase's figures (s.mu held).
func (s *sampler) notePhase(phase string, sm int, reasons uint64, rerr error, watts, limit float64, perr error) {
	i := slices.IndexFunc(s.phases, func(p phaseJSON) bool { return p.Name == phase })
	if i < 0 {
		s.phases = append(s.phases, phaseJSON{Name: phase, SMClockMHz: [2]int{sm, sm}})
		i = len(s.phases) - 1
	}
	p := &s.phases[i]
	p.Samples++
	p.SMClockMHz = [2]int{min(p.SMClockMHz[0], sm), max(p.SMClockMHz[1], sm)}
	p.smSum += float64(sm)
	p.SMClockMean = p.smSum / float64(p.Samples)
	if rerr == nil {
		p.EventReasons |= reasons
		if reasons&powerReasons != 0 {
			p.PowerCapped++
		}
	}
	if perr == nil {
		p.PowerMaxW, p.PowerLimitW = max(p.PowerMaxW, watts), limit
	}
}

// stop ends the polling with a last sample (so even a short run has one).
func (s *sampler) stop() {
	s.once.Do(func() { close(s.quit); <-s.done; s.sample() })
}

// device returns the device figures read so far.
func (s *sampler) device() *deviceJSON {
	d := s.dev
	return &d
}

// noteThrottle records the clock event reasons while the GPU is warm.
func (s *sampler) noteThrottle() {
	if r, err := s.mon.ThrottleReasons(); err == nil {
		s.mu.Lock()
		s.dev.ThrottleReasons = r
		s.mu.Unlock()
	}
}

// fill writes the sampled figures into r (after stop).
func (s *sampler) fill(r *benchJSON) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Device != nil {
		r.Device.RunSMClockMHz = [2]int{s.smLo, s.smHi}
		r.Device.RunMemClockMHz = [2]int{s.mLo, s.mHi}
		r.Device.ThrottleReasons = s.dev.ThrottleReasons
		r.Device.Phases = slices.Clone(s.phases)
		if bw := r.Device.PeakBandwidthGBps; bw > 0 && r.Decode.GBps > 0 {
			r.Decode.PctPeak = 100 * r.Decode.GBps / bw
		}
	}
	if s.samples > 0 {
		r.Memory.DevicePeakMB = mib(s.peak)
		r.Memory.DeviceBeforeMB = mib(s.before)
		r.Memory.DeviceSamples = s.samples
	}
}
