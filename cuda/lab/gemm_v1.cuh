// Version 1 of the prefill GEMM (first commit of awq_gemm.cu), kept for the
// lab's comparison: block 128 outputs x 64 tokens, warps 4x2 of 32x32,
// 3 cp.async stages, padded x rows. H200: 244 TFLOP/s at 512 tokens.
#pragma once
#include "../awq_common.cuh"

namespace awq_v1 {
using namespace awq;

constexpr int kGemmStripes = 8;   // stripes per block (128 output columns)
constexpr int kGemmTokens = 64;   // tokens per block
constexpr int kGemmStages = 3;    // cp.async pipeline depth
constexpr int kGemmXStride = 72;  // halves per x row in shared memory: +16 B keeps LDS.128 conflict-free
constexpr int kGemmThreads = 256;

constexpr int kGemmWBytes = kGemmStripes * 512;
constexpr int kGemmXBytes = kGemmTokens * kGemmXStride * 2;
constexpr int kGemmSZBytes = 2 * kGemmStripes * kStripe * 4;  // up to 2 groups per chunk (group 32)
constexpr int kGemmStageBytes = kGemmWBytes + kGemmXBytes + kGemmSZBytes;
constexpr int kGemmShared = kGemmStages * kGemmStageBytes;
static_assert(kGemmShared == 43008, "awq.go: awqGemmShared");
static_assert(kGemmShared <= 48 * 1024, "over the default dynamic shared memory limit");

template <int GROUP>
__device__ __forceinline__ void gemm_load(uint8_t* st, const uint8_t* __restrict__ w,
                                          const __half* __restrict__ x, int c, int s0, int n0,
                                          int tokens, int in, int out) {
  const int tid = threadIdx.x;
  const int stripes = out_pad(out) / kStripe, chunks = in / kChunk, outP = out_pad(out);
  // Weights: one 16-byte piece per thread.
  {
    const int sl = tid / 32, lane = tid % 32;
    const int s = s0 + sl;
    const bool ok = s < stripes;
    const uint8_t* src = w + (((size_t)(ok ? s : 0) * chunks + c) * 32 + lane) * 16;
    cp_async16(st + tid * 16, src, ok);
  }
  // x: 64 rows x 8 pieces.
  __half* xs = reinterpret_cast<__half*>(st + kGemmWBytes);
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int idx = tid + r * kGemmThreads;
    const int row = idx / 8, piece = idx % 8;
    const bool ok = n0 + row < tokens;
    const __half* src = x + (size_t)(ok ? n0 + row : 0) * in + c * kChunk + piece * 8;
    cp_async16(xs + row * kGemmXStride + piece * 8, src, ok);
  }
  // Scale/zero rows of the groups this chunk touches: 128 columns x 4 B each.
  constexpr int kGroups = GROUP >= kChunk ? 1 : kChunk / GROUP;
  if (tid < kGroups * 32) {
    const int gl = tid / 32, piece = tid % 32;
    const int gi = c * kChunk / GROUP + gl;
    const int col = s0 * kStripe + piece * 4;
    const bool ok = col < outP;
    const uint8_t* src = w + sz_offset(in, out) + ((size_t)gi * outP + (ok ? col : 0)) * 4;
    cp_async16(st + kGemmWBytes + kGemmXBytes + tid * 16, src, ok);
  }
}

template <int GROUP>
__device__ __forceinline__ void gemm(const uint8_t* __restrict__ w, const __half* __restrict__ x,
                                     __half* __restrict__ y, int tokens, int in, int out) {
  extern __shared__ __align__(16) uint8_t smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int wm = warp % 4, wn = warp / 4;  // stripes 2wm, 2wm+1; tokens 32wn..
  const int chunks = in / kChunk;
  const int s0 = blockIdx.x * kGemmStripes, n0 = blockIdx.y * kGemmTokens;
  // A lane's 16 rows of a chunk lie in group slot gl of the stage's table.
  const int gl = GROUP >= kChunk ? 0 : 16 * t / GROUP;

  float acc[2][4][4];
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int nt = 0; nt < 4; nt++)
#pragma unroll
      for (int v = 0; v < 4; v++) acc[i][nt][v] = 0.f;

#pragma unroll
  for (int st = 0; st < kGemmStages - 1; st++) {
    if (st < chunks) gemm_load<GROUP>(smem + st * kGemmStageBytes, w, x, st, s0, n0, tokens, in, out);
    cp_async_commit_group();
  }
  for (int c = 0; c < chunks; c++) {
    cp_async_wait_group<kGemmStages - 2>();
    __syncthreads();  // chunk c landed for all; stage (c-1)%S is free again
    {
      const int cn = c + kGemmStages - 1;
      if (cn < chunks)
        gemm_load<GROUP>(smem + (cn % kGemmStages) * kGemmStageBytes, w, x, cn, s0, n0, tokens, in, out);
      cp_async_commit_group();
    }
    const uint8_t* st = smem + (c % kGemmStages) * kGemmStageBytes;
    const uint4* ws = reinterpret_cast<const uint4*>(st);
    const __half* xs = reinterpret_cast<const __half*>(st + kGemmWBytes);
    const uint32_t* szs = reinterpret_cast<const uint32_t*>(st + kGemmWBytes + kGemmXBytes);

    uint4 qa[2];
    uint32_t sz0[2], sz1[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const int sl = 2 * wm + i;
      qa[i] = ws[sl * 32 + lane];
      sz0[i] = szs[gl * 128 + sl * kStripe + g];
      sz1[i] = szs[gl * 128 + sl * kStripe + g + 8];
    }
    uint4 xb[4][2];
#pragma unroll
    for (int nt = 0; nt < 4; nt++) {
      const __half* row = xs + (wn * 32 + nt * 8 + g) * kGemmXStride + 16 * t;
      xb[nt][0] = *reinterpret_cast<const uint4*>(row);
      xb[nt][1] = *reinterpret_cast<const uint4*>(row + 8);
    }
#pragma unroll
    for (int j = 0; j < 4; j++) {
      uint32_t a[2][4];
#pragma unroll
      for (int i = 0; i < 2; i++) {
        const uint32_t qw[4] = {qa[i].x, qa[i].y, qa[i].z, qa[i].w};
        dequant(qw[j], sz0[i], sz1[i], a[i]);
      }
#pragma unroll
      for (int nt = 0; nt < 4; nt++) {
        const uint32_t* b = reinterpret_cast<const uint32_t*>(&xb[nt][0]);
#pragma unroll
        for (int i = 0; i < 2; i++) mma_16816(acc[i][nt], a[i], b[2 * j], b[2 * j + 1]);
      }
    }
  }
  cp_async_wait_group<0>();

#pragma unroll
  for (int i = 0; i < 2; i++) {
#pragma unroll
    for (int nt = 0; nt < 4; nt++) {
#pragma unroll
      for (int v = 0; v < 4; v++) {
        const int col = (s0 + 2 * wm + i) * kStripe + g + (v >= 2 ? 8 : 0);
        const int tok = n0 + wn * 32 + nt * 8 + 2 * t + (v & 1);
        if (col < out && tok < tokens) y[(size_t)tok * out + col] = __float2half_rn(acc[i][nt][v]);
      }
    }
  }
}

}  // namespace awq_v1
