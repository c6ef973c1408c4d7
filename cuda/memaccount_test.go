package cuda

import (
	"sync"
	"testing"
)

// TestMemAccount: the peak is the most ever held, also with concurrent
// readers (Engine.Memory reads without the worker).
func TestMemAccount(t *testing.T) {
	var m memAccount
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				if c, p := m.cur.Load(), m.peak.Load(); p < 0 || c < 0 {
					t.Errorf("cur %d peak %d", c, p)
				}
			}
		}
	}()
	for _, step := range []struct{ add, cur, peak int64 }{{100, 100, 100}, {50, 150, 150}, {-120, 30, 150}, {100, 130, 150}, {30, 160, 160}, {-160, 0, 160}} {
		m.add(step.add)
		if c, p := m.cur.Load(), m.peak.Load(); c != step.cur || p != step.peak {
			t.Fatalf("after %+d: cur %d peak %d, want %d %d", step.add, c, p, step.cur, step.peak)
		}
	}
	close(stop)
	wg.Wait()
}
