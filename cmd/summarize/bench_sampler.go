package main

import (
	"sync"
	"time"
)

// sampler polls the device monitor every 20 ms for memory in use and
// clocks, from before the engine opens to the end of the run.
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
	defer s.mu.Unlock()
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
