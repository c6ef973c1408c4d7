// RMSNorm with the residual add fused in front: h += y (when y is given),
// then out = h / sqrt(mean(h^2) + eps) * w. Fusing saves one pass over the
// residual stream per sub-layer.
#include "common.cuh"

// grid (tokens), block 256. h (tokens, hidden) fp32, updated in place;
// y (tokens, hidden) fp16 or NULL; w (hidden) fp16; out (tokens, hidden) fp16.
// The caller offsets the pointers to run on some rows only (the final norm of
// a prefill chunk runs on its last row alone).
extern "C" __global__ void add_rmsnorm(float* __restrict__ h, const __half* __restrict__ y,
                                       const __half* __restrict__ w, __half* __restrict__ out,
                                       int hidden, float eps) {
  const int t = blockIdx.x;
  float* hr = h + (size_t)t * hidden;
  const __half* yr = y ? y + (size_t)t * hidden : nullptr;
  __half* o = out + (size_t)t * hidden;
  float ss = 0.f;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
    float v = hr[i];
    if (yr) {
      v += __half2float(yr[i]);
      hr[i] = v;
    }
    ss += v * v;
  }
  const float inv = rsqrtf(block_sum(ss) / hidden + eps);
  for (int i = threadIdx.x; i < hidden; i += blockDim.x)
    o[i] = __float2half_rn(hr[i] * inv * __half2float(w[i]));
}
