// Greedy choice on the device: the index of each row's largest logit, the
// lowest index among ties (as torch.argmax), so logits never cross to the host.
#include "common.cuh"

// grid (rows), block 1024. logits (rows, vocab) fp32; out (rows) int32.
extern "C" __global__ void argmax_rows(const float* __restrict__ logits, int* __restrict__ out,
                                       int vocab) {
  grid_dep_launch();
  grid_dep_wait();
  __shared__ float sv[32];
  __shared__ int si[32];
  const float* r = logits + (size_t)blockIdx.x * vocab;
  float best = -INFINITY;
  int bi = 0x7fffffff;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = r[i];
    if (v > best) best = v, bi = i;  // ascending i: the first max stays
  }
  // Reduce (value desc, index asc).
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (ov > best || (ov == best && oi < bi)) best = ov, bi = oi;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) sv[warp] = best, si[warp] = bi;
  __syncthreads();
  if (warp == 0) {
    const int nw = blockDim.x >> 5;
    best = lane < nw ? sv[lane] : -INFINITY;
    bi = lane < nw ? si[lane] : 0x7fffffff;
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, best, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > best || (ov == best && oi < bi)) best = ov, bi = oi;
    }
    if (lane == 0) out[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
  }
}

// greedy_chain turns a one-token step's greedy id into the next step's
// parameters (position + 1, token), so that steps can follow each other on
// the device without the host between them (greedy.go). It runs after the
// step's last kernel, when nothing of the step reads params any more.
// grid 1, block 32. params as common.cuh; next (1) int32.
extern "C" __global__ void greedy_chain(int* __restrict__ params, const int* __restrict__ next) {
  grid_dep_wait();
  if (threadIdx.x == 0) {
    params[kParamPos] += 1;
    params[kParamIds] = next[0];
  }
}
