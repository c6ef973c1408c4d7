package cuda

import (
	"strings"
	"testing"
)

// BenchmarkGemmEnergy times the reference prompt's prefill on the
// synthetic 7B with only the AWQ GEMMs launched, twice over, reporting ms,
// J and W a prefill: at the power limit the prefill's time follows its
// energy, so this is what the GEMMs cost. Built with BRIEF_XP_PROBE (see
// awq_gemm_xp.sm90a.cu) it measures what the kernel's x loads, its
// dequantization's arithmetic or its weight loads add; those builds compute
// wrong values and are for this benchmark only.
func BenchmarkGemmEnergy(b *testing.B) {
	m := benchModel(b)
	prompt := benchPrompt(m)
	e := benchEngine(b, m, prompt)
	defer e.Close()
	if err := e.JITError(); err != nil {
		b.Fatalf("no PTX kernels: %v", err)
	}
	b.Logf("prefill GEMM: %s", e.PrefillGEMM())
	defer func() { skipLaunch = nil }()
	for _, round := range []string{"a", "b"} {
		skipLaunch = func(k, _ string) bool { return !strings.HasPrefix(k, "awq_gemm") }
		benchPrefill(b, e, "gemms_"+round, prompt)
		skipLaunch = nil
		benchPrefill(b, e, "whole_"+round, prompt)
	}
}
