// Greedy choice on the device: the index of each row's largest logit, the
// lowest index among ties (as torch.argmax), so logits never cross to the host.
#include "common.cuh"

// row_argmax is row r's greedy id (vocab logits), in thread 0 of the
// block; block a multiple of 32 threads, at most 1024.
__device__ __forceinline__ int row_argmax(const float* __restrict__ r, int vocab) {
  __shared__ float sv[32];
  __shared__ int si[32];
  float best = -INFINITY;
  int bi = 0x7fffffff;
  // kArgmaxLoads logits a thread requested at once, then scanned: one
  // round trip to L2 for the 7B's 32,000 where a load a turn took 32.
  constexpr int kArgmaxLoads = 32;
  for (int i0 = threadIdx.x; i0 < vocab; i0 += kArgmaxLoads * blockDim.x) {
    float v[kArgmaxLoads];
#pragma unroll
    for (int k = 0; k < kArgmaxLoads; k++) {
      const int i = i0 + k * blockDim.x;
      v[k] = i < vocab ? r[i] : -INFINITY;
    }
#pragma unroll
    for (int k = 0; k < kArgmaxLoads; k++)
      if (v[k] > best) best = v[k], bi = i0 + k * blockDim.x;  // ascending index: the first max stays
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
  }
  return bi == 0x7fffffff ? 0 : bi;
}

// grid (rows), block 1024. logits (rows, vocab) fp32; out (rows) int32.
extern "C" __global__ void argmax_rows(const float* __restrict__ logits, int* __restrict__ out,
                                       int vocab) {
  grid_dep_launch();
  grid_dep_wait();
  const int id = row_argmax(logits + (size_t)blockIdx.x * vocab, vocab);
  if (threadIdx.x == 0) out[blockIdx.x] = id;
}

// argmax_chain is a greedy step's last kernel (greedy.go): argmax_rows of
// one row, which then becomes the next step's parameters (position + 1,
// token), so that steps follow each other on the device without the host
// between them. It also stores the id in ids[pos % slots], page-locked host
// memory that the host reads once the step's event has passed, so no copy
// follows the step.
// It does not let a successor launch early: the next step's first kernels
// may read params before their wait (awq_gemv.cu), so params must be final
// when they start. grid 1, block 1024. logits (vocab) fp32; out (1), ids
// (slots) int32.
extern "C" __global__ void argmax_chain(const float* __restrict__ logits, int* __restrict__ out, int vocab,
                                        int* __restrict__ params, int* __restrict__ ids, int slots) {
  grid_dep_wait();
  const int id = row_argmax(logits, vocab);
  if (threadIdx.x == 0) {
    const int pos = params[kParamPos];
    out[0] = id;
    params[kParamPos] = pos + 1;
    params[kParamIds] = id;
    ids[pos % slots] = id;
  }
}
