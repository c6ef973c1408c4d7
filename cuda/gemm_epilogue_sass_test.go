package cuda

import (
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The fused GEMM epilogues give the unfused kernels' bits only if their
// floating-point code is the unfused kernels' (NOTES-gemm-epilogue.md, "Why
// the bits are equal"). This test reads that off the committed fatbins'
// SASS with cuobjdump (CUDA toolkit; skipped where it is not installed), so
// that a later edit that lets nvcc compile silu_gate or rope_rotate
// differently in the GEMM fails here, before a GPU run.

// sassArchs are the cubins the Makefile builds.
var sassArchs = []string{"sm_80", "sm_86", "sm_89", "sm_90"}

// sassFunctions disassembles fatbin file (in fatbin/) for arch and returns
// each function's instructions, without addresses and encodings.
func sassFunctions(t *testing.T, tool, file, arch string) map[string][]string {
	t.Helper()
	out, err := exec.Command(tool, "-sass", "-arch", arch, "fatbin/"+file).Output()
	if err != nil {
		t.Fatalf("%s -sass -arch %s fatbin/%s: %v", tool, arch, file, err)
	}
	fn := regexp.MustCompile(`^\s+Function : (\S+)`)
	addr := regexp.MustCompile(`/\*[0-9a-f]{4,6}\*/|/\* 0x[0-9a-f]+ \*/`)
	funcs := map[string][]string{}
	cur := ""
	for _, line := range strings.Split(string(out), "\n") {
		if m := fn.FindStringSubmatch(line); m != nil {
			cur = m[1]
			continue
		}
		if l := strings.TrimSpace(addr.ReplaceAllString(line, "")); cur != "" && strings.HasSuffix(l, ";") {
			funcs[cur] = append(funcs[cur], l)
		}
	}
	return funcs
}

// fpOps are a function's floating-point instructions with registers,
// predicates and addresses blanked: opcode, modifiers and constants remain.
// widen adds the fp16 -> fp32 conversions (HADD2.F32).
func fpOps(code []string, widen bool) []string {
	pat := `^(@!?P\d+ )?(FFMA|FMUL|FADD|MUFU|FCHK|F2FP|FSETP|FSEL|CALL|F2F|FMNMX|I2FP|FRND)`
	if widen {
		pat = `^(@!?P\d+ )?(FFMA|FMUL|FADD|MUFU|FCHK|F2FP|FSETP|FSEL|CALL|F2F|FMNMX|I2FP|FRND|HADD2\.F32)`
	}
	fp := regexp.MustCompile(pat)
	blank := regexp.MustCompile(`\bU?R\d+|\bP\d+|0x[0-9a-f]+`)
	var ops []string
	for _, l := range code {
		if fp.MatchString(l) {
			ops = append(ops, strings.ReplaceAll(blank.ReplaceAllString(strings.TrimSuffix(l, ";"), "R"), ".reuse", ""))
		}
	}
	return ops
}

// siluRuns are the silu_gate sequences of ops: from expf's first
// instruction (FFMA.SAT) to the fp16 conversion of the result (an F2FP
// with a zero operand).
func siluRuns(ops []string) [][]string {
	var runs [][]string
	for i := 0; i < len(ops); i++ {
		if !strings.HasPrefix(ops[i], "FFMA.SAT") {
			continue
		}
		j := i
		for j < len(ops) && !(strings.HasPrefix(ops[j], "F2FP") && strings.Contains(ops[j], " RZ, ")) {
			j++
		}
		runs = append(runs, ops[i:min(j+1, len(ops))])
		i = j
	}
	return runs
}

// roundedRuns counts the silu_gate sequences of ops (with the HADD2.F32
// widenings) whose gate and up were just rounded to fp16 and widened back:
// between the previous sequence's end and this one's start, one F2FP that
// packs two values, and at least two HADD2.F32 there or inside the
// sequence (where silu_mul_perm widens up too). Without that rounding the
// fused epilogue would feed silu_gate the fp32 sums, not the halves the
// plain GEMM stores.
func roundedRuns(ops []string) int {
	n, pack, widen := 0, 0, 0
	for i := 0; i < len(ops); i++ {
		switch o := ops[i]; {
		case strings.HasPrefix(o, "FFMA.SAT"):
			for i < len(ops) && !(strings.HasPrefix(ops[i], "F2FP") && strings.Contains(ops[i], " RZ, ")) {
				if strings.HasPrefix(ops[i], "HADD2.F32") { // nvcc may widen up inside the sequence
					widen++
				}
				i++
			}
			if pack == 1 && widen >= 2 {
				n++
			}
			pack, widen = 0, 0
		case strings.HasPrefix(o, "F2FP") && !strings.Contains(o, "RZ"):
			pack++
		case strings.HasPrefix(o, "HADD2.F32"):
			widen++
		}
	}
	return n
}

// TestGemmEpilogueSASS: in every cubin, each unrolled copy of silu_gate in
// the fused-SiLU GEMMs is silu_mul_perm's instruction sequence, on inputs
// rounded to fp16 just before, and the fused-RoPE GEMMs use exactly
// rope_append_perm's set of floating-point instructions (powf, sincosf and
// the division, slow paths included) on sums rounded to fp16.
func TestGemmEpilogueSASS(t *testing.T) {
	tool, err := exec.LookPath("cuobjdump")
	if err != nil {
		t.Skip("cuobjdump (CUDA toolkit) not installed")
	}
	for _, arch := range sassArchs {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			silu := sassFunctions(t, tool, "silu.fatbin", arch)
			rope := sassFunctions(t, tool, "rope.fatbin", arch)
			gemm := sassFunctions(t, tool, "awq_gemm.fatbin", arch)
			want := siluRuns(fpOps(silu["silu_mul_perm"], false))
			if len(want) != 1 || len(want[0]) < 10 {
				t.Fatalf("%s: silu_mul_perm has %d silu_gate sequences (%v): the scan is broken", arch, len(want), want)
			}
			for _, k := range []string{"awq_gemm_g128_silu", "awq_gemm_small_g128_silu"} {
				runs := siluRuns(fpOps(gemm[k], false))
				if len(runs) != 16 { // WT n-tiles x 2 tokens per thread, unrolled
					t.Errorf("%s %s: %d silu_gate sequences, want 16", arch, k, len(runs))
				}
				for i, r := range runs {
					if !slices.Equal(r, want[0]) {
						t.Errorf("%s %s: silu_gate copy %d differs from silu_mul_perm's:\n%s\nwant\n%s", arch, k, i, strings.Join(r, "\n"), strings.Join(want[0], "\n"))
					}
				}
				if n := roundedRuns(fpOps(gemm[k], true)); n != len(runs) {
					t.Errorf("%s %s: %d of %d silu_gate copies take their inputs through fp16 (one F2FP pack, two HADD2.F32) as the plain store and silu_mul_perm's loads do", arch, k, n, len(runs))
				}
			}
			set := func(ops []string) []string {
				var s []string
				for _, o := range ops {
					if !strings.HasPrefix(o, "F2FP") { // fp16 packing differs with the store pattern
						s = append(s, o)
					}
				}
				slices.Sort(s)
				return slices.Compact(s)
			}
			ref := set(fpOps(rope["rope_append_perm"], false))
			if len(ref) < 50 {
				t.Fatalf("%s: rope_append_perm has %d distinct floating-point instructions: the scan is broken", arch, len(ref))
			}
			for _, k := range []string{"awq_gemm_g128_rope", "awq_gemm_small_g128_rope"} {
				if got := set(fpOps(gemm[k], false)); !slices.Equal(got, ref) {
					t.Errorf("%s %s: floating-point instructions differ from rope_append_perm's:\n%s\nwant\n%s", arch, k, strings.Join(got, "\n"), strings.Join(ref, "\n"))
				}
				// Each thread's 16 pairs: both sums rounded to fp16 (one F2FP pack
				// of two), widened for the rotation (two HADD2.F32), the two results
				// rounded (two F2FP with a zero operand).
				pack, packRZ, widen := 0, 0, 0
				for _, o := range fpOps(gemm[k], true) {
					switch {
					case strings.HasPrefix(o, "F2FP") && strings.Contains(o, " RZ, "):
						packRZ++
					case strings.HasPrefix(o, "F2FP"):
						pack++
					case strings.HasPrefix(o, "HADD2.F32"):
						widen++
					}
				}
				if pack != 16 || widen != 32 || packRZ != 32 {
					t.Errorf("%s %s: %d fp16 packs of two sums, %d widenings, %d rounded results; want 16, 32, 32", arch, k, pack, widen, packRZ)
				}
			}
		})
	}
}
