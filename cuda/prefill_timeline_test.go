package cuda

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkPrefillTimeline accounts for the reference prompt's prefill on
// the synthetic 7B: for each chunk, its wall time when prefilled alone
// (Prefill of that chunk, which ends in a wait) against the sum of its
// kernels timed one by one at that position (Profile), by family; then the
// whole prefill with each stage's launches left out (skipLaunch), which is
// what that stage costs in place, overlap included. The difference between
// a chunk's wall time and its kernels' sum is what the chunk spends outside
// kernels: host launches, the wait, boundaries.
func BenchmarkPrefillTimeline(b *testing.B) {
	m := benchModel(b)
	prompt := benchPrompt(m)
	e := benchEngine(b, m, prompt)
	defer e.Close()
	ctx := context.Background()

	benchPrefill(b, e, "whole", prompt)

	var sb strings.Builder
	fmt.Fprintf(&sb, "%s, chunk %d\n%5s %5s %9s %9s %9s %9s %9s %9s %9s\n", e.Name(), e.chunk,
		"chunk", "pos", "wall", "kernels", "gemm", "attn", "norm", "other", "outside")
	var tw, tk, tg, ta, tn, to float64
	for rep := range 2 {
		e.Reset()
		for i, start := 0, 0; start < len(prompt); i, start = i+1, start+e.chunk {
			part := prompt[start:min(start+e.chunk, len(prompt))]
			prof, err := e.Profile(len(part), 3)
			if err != nil {
				b.Fatal(err)
			}
			var k, g, a, n float64
			for name, ms := range prof {
				kernel, _, _ := strings.Cut(name, " ")
				k += ms
				switch kernelFamily(kernel) {
				case "AWQ GEMM":
					g += ms
				case "attention", "split reduce":
					a += ms
				case "RMSNorm":
					n += ms
				}
			}
			t0 := time.Now()
			if _, err := e.Prefill(ctx, part); err != nil {
				b.Fatal(err)
			}
			w := float64(time.Since(t0).Microseconds()) / 1e3
			if rep == 1 {
				fmt.Fprintf(&sb, "%5d %5d %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f\n", i, start, w, k, g, a, n, k-g-a-n, w-k)
				tw, tk, tg, ta, tn, to = tw+w, tk+k, tg+g, ta+a, tn+n, to+k-g-a-n
			}
		}
	}
	fmt.Fprintf(&sb, "%5s %5s %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f\n", "sum", "", tw, tk, tg, ta, tn, to, tw-tk)
	// Each chunk is a Prefill of its own, so each is a last chunk: it runs
	// the whole last layer (no skipDeadTail), lm_head and a wait.
	b.Logf("prefill chunk by chunk (ms; each chunk prefilled alone, as a last chunk):\n%s", sb.String())

	stages := []struct {
		name string
		skip func(kernel, tag string) bool
	}{
		{"gate|up", func(_, t string) bool { return t == "gate|up" }},
		{"down_proj", func(_, t string) bool { return t == "down_proj" }},
		{"q|k|v", func(_, t string) bool { return t == "q|k|v" }},
		{"o_proj", func(_, t string) bool { return t == "o_proj" }},
		{"attention", func(k, _ string) bool { return strings.HasPrefix(k, "attn_") }},
		{"add_rmsnorm", func(k, _ string) bool { return strings.HasPrefix(k, "add_rmsnorm") }},
		{"all but the GEMMs", func(k, _ string) bool { return !strings.HasPrefix(k, "awq_gemm") }},
		{"everything", func(string, string) bool { return true }},
	}
	defer func() { skipLaunch = nil }()
	for _, st := range stages {
		skipLaunch = st.skip
		benchPrefill(b, e, "without_"+st.name, prompt)
		skipLaunch = nil
	}
}
