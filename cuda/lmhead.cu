// lm_head: logits = x W^T for 1..16 tokens, W the fp16 (vocab, hidden)
// matrix. Memory-bound (262 MB for the 7B): one warp per vocabulary row
// reads the row once with 16-byte loads and applies it to every token, so a
// verify step costs about what one token costs.
#include "common.cuh"

constexpr int kLMWarps = 8;  // rows per block

// grid (ceil(vocab/8)), block 256. W (vocab, hidden) fp16; x (tokens, hidden)
// fp16; logits (tokens, vocab) fp32. hidden % 8 == 0, tokens <= NT.
template <int NT>
__device__ void lm_head_body(const __half* __restrict__ W, const __half* __restrict__ x,
                             float* __restrict__ logits, int tokens, int vocab, int hidden) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kLMWarps + (threadIdx.x >> 5);
  if (row >= vocab) return;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; t++) acc[t] = 0.f;
  const uint4* wr = reinterpret_cast<const uint4*>(W + (size_t)row * hidden);
  const int chunks = hidden / 8;
  for (int c = lane; c < chunks; c += 32) {
    const uint4 wv = __ldcs(wr + c);  // streamed once: keep it out of L1
    const __half2* wh = reinterpret_cast<const __half2*>(&wv);
    float2 wf[4];
#pragma unroll
    for (int k = 0; k < 4; k++) wf[k] = __half22float2(wh[k]);
#pragma unroll
    for (int t = 0; t < NT; t++) {
      if (t < tokens) {
        const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + (size_t)t * hidden) + c);
        const __half2* xh = reinterpret_cast<const __half2*>(&xv);
#pragma unroll
        for (int k = 0; k < 4; k++) {
          const float2 xf = __half22float2(xh[k]);
          acc[t] = fmaf(wf[k].x, xf.x, acc[t]);
          acc[t] = fmaf(wf[k].y, xf.y, acc[t]);
        }
      }
    }
  }
#pragma unroll
  for (int t = 0; t < NT; t++) {
    if (t < tokens) {
      const float v = warp_sum(acc[t]);
      if (lane == 0) logits[(size_t)t * vocab + row] = v;
    }
  }
}

#define LM_HEAD(NT)                                                                        \
  extern "C" __global__ void __launch_bounds__(256) lm_head_##NT(                          \
      const __half* __restrict__ W, const __half* __restrict__ x, float* __restrict__ logits, \
      int tokens, int vocab, int hidden) {                                                 \
    lm_head_body<NT>(W, x, logits, tokens, vocab, hidden);                                 \
  }
LM_HEAD(1)
LM_HEAD(2)
LM_HEAD(4)
LM_HEAD(8)
LM_HEAD(16)
