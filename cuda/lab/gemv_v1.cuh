// Version 1 of the mat-vec (first commit of awq_gemv.cu), kept for the lab's
// comparison: U chunks of loads per warp in registers, then compute; no
// software pipelining across iterations, dequantize with scale per weight.
// H200: gate|up tokens=1 2.1-2.6 TB/s depending on U/warps (NOTES-awq.md).
#pragma once
#include "../awq_common.cuh"

namespace awq_v1 {
using namespace awq;

constexpr int kGemvMaxWarps = 16;

// gemv: NT n-tiles of 8 tokens, U chunks per warp in flight, GROUP the
// quantization group size (a lane's 16 rows never straddle a group).
template <int GROUP, int NT, int U>
__device__ __forceinline__ void gemv(const uint8_t* __restrict__ w, const __half* __restrict__ x,
                                     __half* __restrict__ y, int tokens, int in, int out) {
  __shared__ float red[kGemvMaxWarps][NT * 4][32];  // (warp, value, lane)
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int outP = out_pad(out), chunks = in / kChunk;
  const int s = blockIdx.x;
  const uint4* wp = reinterpret_cast<const uint4*>(w) + (size_t)s * chunks * 32 + lane;
  const uint32_t* sz = reinterpret_cast<const uint32_t*>(w + sz_offset(in, out)) + s * kStripe + g;

  // x rows of this lane's B fragments: token nt*8+g, inputs 16t.. of a chunk.
  const uint4* xr[NT];
  bool xv[NT];
#pragma unroll
  for (int nt = 0; nt < NT; nt++) {
    const int n = nt * 8 + g;
    xv[nt] = n < tokens;
    xr[nt] = reinterpret_cast<const uint4*>(x + (size_t)(xv[nt] ? n : 0) * in + 16 * t);
  }

  float acc[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; nt++)
#pragma unroll
    for (int i = 0; i < 4; i++) acc[nt][i] = 0.f;

  for (int c0 = warp * U; c0 < chunks; c0 += nw * U) {
    uint4 q[U], xb[U][NT][2];
    uint32_t s0[U], s1[U];
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int c = c0 + u;
      if (c < chunks) {
        q[u] = ld_stream(wp + (size_t)c * 32);
        const int gi = (c * kChunk + 16 * t) / GROUP;
        s0[u] = __ldg(sz + (size_t)gi * outP);
        s1[u] = __ldg(sz + (size_t)gi * outP + 8);
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
          if (xv[nt]) {
            xb[u][nt][0] = __ldg(xr[nt] + c * (kChunk / 8));
            xb[u][nt][1] = __ldg(xr[nt] + c * (kChunk / 8) + 1);
          } else {
            xb[u][nt][0] = xb[u][nt][1] = make_uint4(0, 0, 0, 0);
          }
        }
      }
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      if (c0 + u < chunks) {
        const uint32_t qw[4] = {q[u].x, q[u].y, q[u].z, q[u].w};
#pragma unroll
        for (int j = 0; j < 4; j++) {
          uint32_t a[4];
          dequant(qw[j], s0[u], s1[u], a);
#pragma unroll
          for (int nt = 0; nt < NT; nt++) {
            const uint32_t* b = reinterpret_cast<const uint32_t*>(&xb[u][nt][0]);
            mma_16816(acc[nt], a, b[2 * j], b[2 * j + 1]);
          }
        }
      }
    }
  }

#pragma unroll
  for (int nt = 0; nt < NT; nt++)
#pragma unroll
    for (int i = 0; i < 4; i++) red[warp][nt * 4 + i][lane] = acc[nt][i];
  __syncthreads();
  for (int idx = threadIdx.x; idx < NT * 4 * 32; idx += blockDim.x) {
    const int v = idx / 32, l = idx % 32;
    float sum = 0.f;
    for (int k = 0; k < nw; k++) sum += red[k][v][l];
    // Accumulator v = 4nt+i of lane l: row g (+8 for i >= 2), column 2t (+1 for odd i).
    const int nt = v / 4, i = v % 4, lg = l >> 2, lt = l & 3;
    const int col = s * kStripe + lg + (i >= 2 ? 8 : 0);
    const int tok = nt * 8 + 2 * lt + (i & 1);
    if (col < out && tok < tokens) y[(size_t)tok * out + col] = __float2half_rn(sum);
  }
}

}  // namespace awq_v1
