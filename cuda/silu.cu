// SiLU gate over the fused gate|up projection: out = silu(gate) * up,
// computed in fp32 and rounded once.
#include "common.cuh"

// grid (ceil(inter/256), tokens), block 256. gu (tokens, 2*inter) fp16 with
// gate in the first inter columns; out (tokens, inter) fp16.
extern "C" __global__ void silu_mul(const __half* __restrict__ gu, __half* __restrict__ out,
                                    int inter) {
  grid_dep_launch();
  grid_dep_wait();
  const int t = blockIdx.y;
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= inter) return;
  const __half* r = gu + (size_t)t * 2 * inter;
  const float g = __half2float(r[j]), u = __half2float(r[inter + j]);
  out[(size_t)t * inter + j] = __float2half_rn(g / (1.0f + expf(-g)) * u);
}
