// SiLU gate of one (gate, up) pair, shared by silu.cu (silu_mul,
// silu_mul_perm) and the fused-SiLU gate|up mat-vec epilogue (awq_gemv.cu:
// awq_gemv_g128_n*_silu), so that every path gives the same bits.
#pragma once
#include <cuda_fp16.h>

// silu_gate is half(silu(g) * u) = half(g / (1 + exp(-g)) * u), computed in
// fp32 from the two fp16 values and rounded once. nvcc contracts 1 + expf(-g)
// with expf's final scaling into one FFMA; the expression lives here once so
// that every caller inlines the same code (NOTES-silu-fused.md compares the
// kernels' SASS).
__device__ __forceinline__ __half silu_gate(__half gh, __half uh) {
  const float g = __half2float(gh), u = __half2float(uh);
  return __float2half_rn(g / (1.0f + expf(-g)) * u);
}
