package cuda

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"testing"
)

// TestMain lets a GPU run repeat every test with another verify key block
// (BRIEF_VERIFY_KEY_BLOCK=64, say), verify kernel
// (BRIEF_VERIFY_KERNEL=attn_verify), tensor-core attention variant for
// verify steps (BRIEF_VERIFY_VARIANT=_sync) or attn_verify2
// off (BRIEF_VERIFY_EARLY=0), prefill attention kernel
// (BRIEF_PREFILL_KERNEL=attn_prefill2 or attn_prefill2q) or without
// overlapped launches (BRIEF_OVERLAP=0), or with the fused-SiLU gate|up
// mat-vec off (BRIEF_SILU_FUSED=0), or with the fused GEMM epilogues off
// (BRIEF_GEMM_EPILOGUE=0), or with lm_head's FMA kernels
// (BRIEF_LMHEAD_MMA=0; np picks the tensor-core kernel's non-prefetching
// variant), or without the direct one-split prefill attention
// (BRIEF_PREFILL_DIRECT=0), or with the mma.sync prefill GEMM instead of
// the wgmma one (BRIEF_GEMM_WGMMA=0), or without q|k|v's 12-stripe wgmma
// blocks (BRIEF_GEMM_WG12=0), or with attn_prefill2 on mma.sync instead
// of wgmma (BRIEF_ATTN_WG=0), or with add_rmsnorm for the layers'
// norms (BRIEF_NORM_VT4=0), or with awq_gemm_wg instead of the x-producer
// wgmma GEMM (BRIEF_GEMM_XP=0), or with its inputs in order
// (BRIEF_XP_PERM=0), or with one prefill chunk at a time
// (BRIEF_PREFILL_PIPELINE=0) or with overlapped launches in it
// (BRIEF_PIPE_OVERLAP=1), before a benchmark's winner becomes
// the default. The on/off knobs take 0 or 1; an unknown value stops the
// run before any test.
func TestMain(m *testing.M) {
	lmHead := func() error {
		if os.Getenv("BRIEF_LMHEAD_MMA") == "np" {
			lmHeadMMAVariant = "_np"
			fmt.Fprintf(os.Stderr, "lm_head on the tensor cores, variant %q\n", lmHeadMMAVariant)
			return nil
		}
		return knobFromEnv("BRIEF_LMHEAD_MMA", &lmHeadMMA, "lm_head on the tensor cores (np: its non-prefetching variant)")
	}
	err := errors.Join(
		keyBlockFromEnv(),
		choiceFromEnv("BRIEF_VERIFY_KERNEL", verifyKernels, &verifyKernel, "verify kernel"),
		choiceFromEnv("BRIEF_PREFILL_KERNEL", prefill2Kernels, &prefillKernel, "prefill attention"),
		verifyVariantFromEnv(),
		knobFromEnv("BRIEF_VERIFY_EARLY", &verifyEarly, "verify attention attn_verify2"),
		knobFromEnv("BRIEF_OVERLAP", &overlapLaunches, "overlapped launches"),
		knobFromEnv("BRIEF_SILU_FUSED", &siluFused, "fused-SiLU gate|up mat-vec"),
		knobFromEnv("BRIEF_GEMM_EPILOGUE", &gemmEpilogue, "fused GEMM epilogues"),
		lmHead(),
		knobFromEnv("BRIEF_PREFILL_DIRECT", &prefillDirect, "direct one-split prefill attention"),
		knobFromEnv("BRIEF_GEMM_WGMMA", &gemmWgmma, "wgmma prefill GEMM"),
		knobFromEnv("BRIEF_GEMM_WG12", &gemmWg12, "q|k|v's wgmma GEMM in blocks of 12 stripes"),
		knobFromEnv("BRIEF_GEMM_XP", &gemmXP, "x-producer wgmma prefill GEMM"),
		knobFromEnv("BRIEF_XP_PERM", &xpPerm, "x-producer GEMM inputs stored in its stages' order"),
		knobFromEnv("BRIEF_ATTN_WG", &attnWgmma, "wgmma prefill attention"),
		knobFromEnv("BRIEF_NORM_VT4", &normVT4, "norms with a quarter of the threads"),
		knobFromEnv("BRIEF_SKIP_DEAD_TAIL", &skipDeadTail, "the last layer's dead tail skipped in prefill chunks"),
		knobFromEnv("BRIEF_PREFILL_PIPELINE", &prefillPipeline, "the pipelined prefill (two chunks on two streams)"),
		knobFromEnv("BRIEF_PIPE_OVERLAP", &pipeOverlap, "overlapped launches in the pipelined prefill"),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// knobFromEnv sets *knob from $env: "" leaves it, "0" or "1" sets it (and
// says so on stderr); anything else is an error.
func knobFromEnv(env string, knob *bool, what string) error {
	switch v := os.Getenv(env); v {
	case "":
	case "0", "1":
		*knob = v == "1"
		fmt.Fprintf(os.Stderr, "%s: %s\n", what, map[bool]string{false: "off", true: "on"}[*knob])
	default:
		return fmt.Errorf("%s=%q: want 0 or 1", env, v)
	}
	return nil
}

// choiceFromEnv sets *dst to $env where that names a key of set.
func choiceFromEnv[V any](env string, set map[string]V, dst *string, what string) error {
	v := os.Getenv(env)
	if v == "" {
		return nil
	}
	if _, ok := set[v]; !ok {
		return fmt.Errorf("%s=%q: want one of %v", env, v, slices.Sorted(maps.Keys(set)))
	}
	*dst = v
	fmt.Fprintf(os.Stderr, "%s %s\n", what, v)
	return nil
}

// keyBlockFromEnv sets the verify key block from $BRIEF_VERIFY_KEY_BLOCK.
func keyBlockFromEnv() error {
	v := os.Getenv("BRIEF_VERIFY_KEY_BLOCK")
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 64 || n%64 != 0 {
		return fmt.Errorf("BRIEF_VERIFY_KEY_BLOCK=%q: want a multiple of 64", v)
	}
	verifyBlockKeys = n
	fmt.Fprintf(os.Stderr, "verify key block %d\n", n)
	return nil
}

// verifyVariantFromEnv sets the verify attention variant from
// $BRIEF_VERIFY_VARIANT, where it is set (to "" or _sync).
func verifyVariantFromEnv() error {
	v, ok := os.LookupEnv("BRIEF_VERIFY_VARIANT")
	if !ok {
		return nil
	}
	if v != "" && v != "_sync" {
		return fmt.Errorf("BRIEF_VERIFY_VARIANT=%q: want \"\" or _sync", v)
	}
	verifyVariant = v
	fmt.Fprintf(os.Stderr, "verify attention variant %q\n", v)
	return nil
}

// TestKnobsFromEnv: the test knobs take their values, keep them when
// unset, and refuse what they do not know.
func TestKnobsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env       string
		start     bool
		want, bad bool
	}{{"", true, true, false}, {"0", true, false, false}, {"1", false, true, false}, {"2", true, true, true}, {"off", true, true, true}} {
		t.Setenv("BRIEF_TEST_KNOB", tc.env)
		knob := tc.start
		err := knobFromEnv("BRIEF_TEST_KNOB", &knob, "test knob")
		if (err != nil) != tc.bad || knob != tc.want {
			t.Errorf("%q: knob %v, error %v", tc.env, knob, err)
		}
	}
	set := map[string]int{"a": 1, "b": 2}
	for _, tc := range []struct{ env, want string }{{"", "x"}, {"b", "b"}, {"c", "x"}} {
		t.Setenv("BRIEF_TEST_CHOICE", tc.env)
		dst := "x"
		err := choiceFromEnv("BRIEF_TEST_CHOICE", set, &dst, "test choice")
		if dst != tc.want || (err != nil) != (tc.env == "c") {
			t.Errorf("%q: %q, error %v", tc.env, dst, err)
		}
	}
}
