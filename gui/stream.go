package gui

import (
	"strings"
	"sync"
	"time"

	"github.com/briefapp/brief/inference"
)

// streamBuffer collects a run's events between two refreshes of the
// window: the generation goroutine adds, the refresh ticker takes.
type streamBuffer struct {
	mu    sync.Mutex
	text  strings.Builder
	steps []inference.StepStats
}

// emit is the callback handed to Generate.
func (b *streamBuffer) emit(ev inference.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.text.WriteString(ev.Text)
	if ev.Step != nil {
		b.steps = append(b.steps, *ev.Step)
	}
}

// take returns and clears what was collected.
func (b *streamBuffer) take() (string, []inference.StepStats) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.text.String()
	b.text.Reset()
	s := b.steps
	b.steps = nil
	return t, s
}

// rateMeter turns per-step token counts into a tokens/s figure over a
// short trailing window, which is steadier than one step's rate.
type rateMeter struct {
	window time.Duration
	ts     []time.Duration
	cum    []int
}

// add records that total tokens had been made at elapsed, and returns the
// rate over the trailing window (ok false until two points exist).
func (m *rateMeter) add(elapsed time.Duration, total int) (rate float64, ok bool) {
	m.ts = append(m.ts, elapsed)
	m.cum = append(m.cum, total)
	i := len(m.ts) - 1
	j := i - 1
	for j > 0 && elapsed-m.ts[j-1] <= m.window {
		j--
	}
	if j < 0 {
		return 0, false
	}
	// Drop points no window will reach again.
	if j > 64 {
		m.ts, m.cum = append(m.ts[:0], m.ts[j:]...), append(m.cum[:0], m.cum[j:]...)
		i -= j
		j = 0
	}
	dt := (m.ts[i] - m.ts[j]).Seconds()
	if dt <= 0 {
		return 0, false
	}
	return float64(m.cum[i]-m.cum[j]) / dt, true
}
