// Embedding gather: the residual stream starts as the token's row of the
// fp16 table, widened to fp32 (the residual stays fp32 through the network).
// The engine gathers inside its first norm (rmsnorm.cu: embed_rmsnorm); this
// kernel is what the tests hold that one to.
#include "common.cuh"

// grid (tokens), block 256. table (vocab, hidden) fp16; h (tokens, hidden) fp32.
extern "C" __global__ void embed_gather(const __half* __restrict__ table,
                                        const int* __restrict__ params,
                                        float* __restrict__ h, int hidden) {
  grid_dep_launch();
  grid_dep_wait();
  const int t = blockIdx.x;
  const int id = params[kParamIds + t];
  const __half* row = table + (size_t)id * hidden;
  float* out = h + (size_t)t * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) out[i] = __half2float(row[i]);
}
