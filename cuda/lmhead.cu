// lm_head: logits = x W^T for 1..16 tokens, W the fp16 (vocab, hidden)
// matrix. Memory-bound (262 MB for the 7B): a warp reads its vocabulary rows
// once with 16-byte loads and applies them to every token, so a verify step
// costs about what one token costs. With many tokens the x loads (one per
// token per 16-byte chunk of W) outnumber the W loads, so a warp takes R rows
// and applies each x chunk it loads to all of them. A row's sums are formed
// in the same order whatever R and NT are, so every token's logits are the
// same bits in a step of any size (batch invariance, see attention.cu).
#include "common.cuh"

constexpr int kLMWarps = 8;  // warps per block

// grid (ceil(vocab/(8*R))), block 256. W (vocab, hidden) fp16; x (tokens,
// hidden) fp16; logits (tokens, vocab) fp32. hidden % 8 == 0, tokens <= NT.
template <int NT, int R>
__device__ void lm_head_body(const __half* __restrict__ W, const __half* __restrict__ x,
                             float* __restrict__ logits, int tokens, int vocab, int hidden) {
  const int lane = threadIdx.x & 31;
  const int row0 = (blockIdx.x * kLMWarps + (threadIdx.x >> 5)) * R;
  if (row0 >= vocab) return;
  float acc[R][NT];
  const uint4* wr[R];
#pragma unroll
  for (int r = 0; r < R; r++) {
    wr[r] = reinterpret_cast<const uint4*>(W + (size_t)min(row0 + r, vocab - 1) * hidden);
#pragma unroll
    for (int t = 0; t < NT; t++) acc[r][t] = 0.f;
  }
  const int chunks = hidden / 8;
  for (int c = lane; c < chunks; c += 32) {
    float2 wf[R][4];
#pragma unroll
    for (int r = 0; r < R; r++) {
      const uint4 wv = __ldcs(wr[r] + c);  // streamed once: keep it out of L1
      const __half2* wh = reinterpret_cast<const __half2*>(&wv);
#pragma unroll
      for (int k = 0; k < 4; k++) wf[r][k] = __half22float2(wh[k]);
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
      if (t < tokens) {
        const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + (size_t)t * hidden) + c);
        const __half2* xh = reinterpret_cast<const __half2*>(&xv);
        float2 xf[4];
#pragma unroll
        for (int k = 0; k < 4; k++) xf[k] = __half22float2(xh[k]);
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
          for (int k = 0; k < 4; k++) {
            acc[r][t] = fmaf(wf[r][k].x, xf[k].x, acc[r][t]);
            acc[r][t] = fmaf(wf[r][k].y, xf[k].y, acc[r][t]);
          }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; r++)
#pragma unroll
    for (int t = 0; t < NT; t++) {
      if (t < tokens) {
        const float v = warp_sum(acc[r][t]);
        if (lane == 0 && row0 + r < vocab) logits[(size_t)t * vocab + row0 + r] = v;
      }
    }
}

// lm_head_<NT>: R rows a warp, lmHeadRows(NT) on the Go side.
#define LM_HEAD(NT, R)                                                                     \
  extern "C" __global__ void __launch_bounds__(256) lm_head_##NT(                          \
      const __half* __restrict__ W, const __half* __restrict__ x, float* __restrict__ logits, \
      int tokens, int vocab, int hidden) {                                                 \
    grid_dep_launch();                                                                       \
    grid_dep_wait();                                                                         \
    lm_head_body<NT, R>(W, x, logits, tokens, vocab, hidden);                              \
  }
LM_HEAD(1, 1)
LM_HEAD(2, 1)
LM_HEAD(4, 2)
LM_HEAD(8, 4)
LM_HEAD(16, 4)
