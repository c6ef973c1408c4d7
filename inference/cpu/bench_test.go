package cpu

import (
	"context"
	"fmt"
	"testing"

	"github.com/briefapp/brief/inference"
)

// benchConfig is a 25M-parameter shape: big enough that matrix rows, not
// goroutine start-up, dominate.
func benchConfig() inference.Config {
	return inference.Config{Hidden: 512, Layers: 8, Heads: 8, KVHeads: 4, HeadDim: 64, Intermediate: 1536,
		Vocab: 8000, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositions: 2048}
}

// BenchmarkVerify measures one step over k tokens after a 256-token
// prefill; the ratio k=11 / k=1 is what prompt lookup pays per step here.
func BenchmarkVerify(b *testing.B) {
	cfg := benchConfig()
	w := randWeights(cfg, 1)
	for _, k := range []int{1, 4, 11, 16} {
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			e := newEngine(&cfg, w, Options{})
			prompt := make([]int, 256)
			if _, err := e.Prefill(context.Background(), prompt); err != nil {
				b.Fatal(err)
			}
			toks := make([]int, k)
			for b.Loop() {
				if _, err := e.Verify(toks); err != nil {
					b.Fatal(err)
				}
				e.Rollback(256)
			}
		})
	}
}

func BenchmarkPrefill(b *testing.B) {
	cfg := benchConfig()
	e := newEngine(&cfg, randWeights(cfg, 1), Options{})
	prompt := make([]int, 512)
	for b.Loop() {
		e.Reset()
		if _, err := e.Prefill(context.Background(), prompt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(prompt))*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
