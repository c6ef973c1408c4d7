// Peak rate of mma.sync.m16n8k16 (fp16 in, fp32 accumulate) on this GPU:
// 8 independent accumulators per warp, operands in registers, no memory.
#pragma once
#include "../awq_common.cuh"

__global__ void peak_hmma(int iters, float* sink) {
  uint32_t a[4] = {0x3c003c00u ^ threadIdx.x, 0x3c003c00u, 0x3c003c00u, 0x3c003c00u};
  const uint32_t b0 = 0x3c003c00u ^ blockIdx.x, b1 = 0x3c003c00u;
  float c[8][4] = {};
  for (int i = 0; i < iters; i++) {
#pragma unroll
    for (int k = 0; k < 8; k++) mma_16816(c[k], a, b0, b1);
  }
  float s = 0;
#pragma unroll
  for (int k = 0; k < 8; k++) s += c[k][0] + c[k][1] + c[k][2] + c[k][3];
  if (s == 1234.5f) sink[0] = s;
}
