// SiLU gate over the fused gate|up projection: out = silu(gate) * up,
// computed in fp32 and rounded once (silu.cuh: silu_gate).
#include "common.cuh"
#include "silu.cuh"

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
  out[(size_t)t * inter + j] = silu_gate(r[j], r[inter + j]);
}

// silu_mul_perm is silu_mul on a gate|up output in the fused-SiLU column
// order (awq.go: siluOrder), which the GEMM writes for prefill chunks when
// the weights are packed in it: gate column j at column 16(j/8) + j%8, up
// column j 8 after it. Same launch, same out.
extern "C" __global__ void silu_mul_perm(const __half* __restrict__ gu, __half* __restrict__ out,
                                         int inter) {
  grid_dep_launch();
  grid_dep_wait();
  const int t = blockIdx.y;
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= inter) return;
  const __half* r = gu + (size_t)t * 2 * inter + 16 * (j >> 3) + (j & 7);
  out[(size_t)t * inter + j] = silu_gate(r[0], r[8]);
}
