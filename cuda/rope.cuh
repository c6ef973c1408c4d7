// RoPE's rotation of one column pair, shared by rope.cu (rope_append,
// rope_append_perm), the fused q|k|v mat-vec epilogue (awq_gemv.cu:
// awq_gemv_g128_n*_rope) and the fused q|k|v GEMM epilogue (awq_gemm.cu:
// awq_gemm*_g128_rope), so that every path gives the same bits.
#pragma once
#include <cuda_fp16.h>

// rope_inv_freq is the frequency of column pair i of a head: 1/theta^(2i/D)
// in fp32, as transformers computes it.
__device__ __forceinline__ float rope_inv_freq(int i, int head_dim, float theta) {
  return 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
}

// rope_rotate_freq is rope_rotate with the pair's rope_inv_freq given (the
// GEMM epilogue computes it once for the 16 tokens a thread rotates).
__device__ __forceinline__ void rope_rotate_freq(__half x1h, __half x2h, int pos, float inv_freq, __half& r1,
                                                 __half& r2) {
  float s, c;
  sincosf(__fmul_rn((float)pos, inv_freq), &s, &c);
  const float x1 = __half2float(x1h), x2 = __half2float(x2h);
  r1 = __float2half_rn(__fmaf_rn(x1, c, -__fmul_rn(x2, s)));
  r2 = __float2half_rn(__fmaf_rn(x1, s, __fmul_rn(x2, c)));
}

// rope_rotate rotates columns (i, i+head_dim/2) = (x1, x2) of one head at
// position pos (rotate-half layout, as transformers applies it): inv_freq =
// 1/theta^(2i/D) and the angle pos*inv_freq in fp32, as transformers
// computes them. The products are written as explicit intrinsics so no
// caller's fma contraction can change the bits (they are the ones nvcc
// chose for the original expressions x1*c - x2*s and x2*c + x1*s).
__device__ __forceinline__ void rope_rotate(__half x1h, __half x2h, int pos, int i, int head_dim, float theta,
                                            __half& r1, __half& r2) {
  rope_rotate_freq(x1h, x2h, pos, rope_inv_freq(i, head_dim, theta), r1, r2);
}
