package cuda

import (
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
// the wgmma one (BRIEF_GEMM_WGMMA=0),
// before a benchmark's winner becomes the default.
func TestMain(m *testing.M) {
	if v := os.Getenv("BRIEF_VERIFY_KEY_BLOCK"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 64 || n%64 != 0 {
			fmt.Fprintf(os.Stderr, "BRIEF_VERIFY_KEY_BLOCK=%q: want a multiple of 64\n", v)
			os.Exit(2)
		}
		verifyBlockKeys = n
		fmt.Fprintf(os.Stderr, "verify key block %d\n", n)
	}
	if v := os.Getenv("BRIEF_VERIFY_KERNEL"); v != "" {
		if _, ok := verifyKernels[v]; !ok {
			fmt.Fprintf(os.Stderr, "BRIEF_VERIFY_KERNEL=%q: want one of %v\n", v, slices.Sorted(maps.Keys(verifyKernels)))
			os.Exit(2)
		}
		verifyKernel = v
		fmt.Fprintf(os.Stderr, "verify kernel %s\n", v)
	}
	if v := os.Getenv("BRIEF_PREFILL_KERNEL"); v != "" {
		if _, ok := prefill2Kernels[v]; !ok {
			fmt.Fprintf(os.Stderr, "BRIEF_PREFILL_KERNEL=%q: want one of %v\n", v, slices.Sorted(maps.Keys(prefill2Kernels)))
			os.Exit(2)
		}
		prefillKernel = v
		fmt.Fprintf(os.Stderr, "prefill attention %s\n", v)
	}
	if v, ok := os.LookupEnv("BRIEF_VERIFY_VARIANT"); ok {
		if v != "" && v != "_sync" {
			fmt.Fprintf(os.Stderr, "BRIEF_VERIFY_VARIANT=%q: want \"\" or _sync\n", v)
			os.Exit(2)
		}
		verifyVariant = v
		fmt.Fprintf(os.Stderr, "verify attention variant %q\n", v)
	}
	if os.Getenv("BRIEF_VERIFY_EARLY") == "0" {
		verifyEarly = false
		fmt.Fprintln(os.Stderr, "verify attention attn_verify2 off")
	}
	if os.Getenv("BRIEF_OVERLAP") == "0" {
		overlapLaunches = false
		fmt.Fprintln(os.Stderr, "overlapped launches off")
	}
	switch v := os.Getenv("BRIEF_SILU_FUSED"); v {
	case "", "1":
	case "0":
		siluFused = false
		fmt.Fprintln(os.Stderr, "fused-SiLU gate|up mat-vec off")
	default:
		fmt.Fprintf(os.Stderr, "BRIEF_SILU_FUSED=%q: want 0 or 1\n", v)
		os.Exit(2)
	}
	switch v := os.Getenv("BRIEF_GEMM_EPILOGUE"); v {
	case "", "1":
	case "0":
		gemmEpilogue = false
		fmt.Fprintln(os.Stderr, "fused GEMM epilogues off")
	default:
		fmt.Fprintf(os.Stderr, "BRIEF_GEMM_EPILOGUE=%q: want 0 or 1\n", v)
		os.Exit(2)
	}
	switch v := os.Getenv("BRIEF_LMHEAD_MMA"); v {
	case "", "1":
	case "0":
		lmHeadMMA = false
		fmt.Fprintln(os.Stderr, "lm_head on the CUDA cores (FMA kernels)")
	case "np":
		lmHeadMMAVariant = "_np"
		fmt.Fprintf(os.Stderr, "lm_head on the tensor cores, variant %q\n", lmHeadMMAVariant)
	default:
		fmt.Fprintf(os.Stderr, "BRIEF_LMHEAD_MMA=%q: want 0, 1 or np\n", v)
		os.Exit(2)
	}
	switch v := os.Getenv("BRIEF_PREFILL_DIRECT"); v {
	case "":
	case "0", "1":
		prefillDirect = v == "1"
		fmt.Fprintf(os.Stderr, "direct one-split prefill attention %v\n", prefillDirect)
	default:
		fmt.Fprintf(os.Stderr, "BRIEF_PREFILL_DIRECT=%q: want 0 or 1\n", v)
		os.Exit(2)
	}
	switch v := os.Getenv("BRIEF_GEMM_WGMMA"); v {
	case "", "1":
	case "0":
		gemmWgmma = false
		fmt.Fprintln(os.Stderr, "wgmma prefill GEMM off")
	default:
		fmt.Fprintf(os.Stderr, "BRIEF_GEMM_WGMMA=%q: want 0 or 1\n", v)
		os.Exit(2)
	}
	os.Exit(m.Run())
}
