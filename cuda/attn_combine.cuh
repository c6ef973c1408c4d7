// How attention's key splits combine into a row's output: attn_reduce
// (attention.cu) uses these for any split count, and attn_prefill2*_direct
// (attn_prefill.cu), whose single split needs no reduce, applies the same
// operations to the values it would otherwise have written as partials, so
// both give the same bits. Every rounding is explicit: nothing here may be
// contracted differently in the two kernels.
#pragma once

#include <cuda_fp16.h>

// attn_split_weight is split z's weight e^(m_z - M) under the row's max M
// (m_z in natural-log units), or 0 for a split that saw no key.
__device__ __forceinline__ float attn_split_weight(float mz, float M) {
  return mz == -INFINITY ? 0.f : expf(mz - M);
}

// attn_inv_den is 1 / den of the weighted sums sum_z w_z l_z (0 when no
// key was seen).
__device__ __forceinline__ float attn_inv_den(float den) {
  return den > 0.f ? __fdiv_rn(1.f, den) : 0.f;
}

// attn_out_half is one output element: the weighted sum num of the splits'
// unnormalized outputs, normalized and rounded to fp16.
__device__ __forceinline__ __half attn_out_half(float num, float inv_den) {
  return __float2half_rn(__fmul_rn(num, inv_den));
}
