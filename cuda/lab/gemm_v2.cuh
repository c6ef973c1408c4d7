// Version 2 of the prefill GEMM, a failed experiment kept for the record:
// generic tile template, XOR-swizzled x rows, x loaded in halves, one-shift
// dequantization. H200: 20-50% slower than version 1 (NOTES-awq.md, run 2):
// its load addressing tripled the instruction count.
#pragma once
#include "../awq_common.cuh"

namespace awq_v2 {
using namespace awq;

// Shared memory of one pipeline stage (awq.go: awqGemmShared).
__host__ __device__ constexpr int gemm_stage_bytes(int ms, int ntok) {
  return ms * 512 + ntok * 128 + 2 * ms * kStripe * 4;
}

template <int MS, int NTOK, int THREADS, int GROUP>
__device__ __forceinline__ void gemm_load(uint8_t* st, const uint8_t* __restrict__ w,
                                          const __half* __restrict__ x, int c, int s0, int n0,
                                          int tokens, int in, int out) {
  const int tid = threadIdx.x;
  const int outP = out_pad(out), stripes = outP / kStripe, chunks = in / kChunk;
  // Weights: MS x 32 pieces of 16 bytes.
#pragma unroll
  for (int idx = tid; idx < MS * 32; idx += THREADS) {
    const int sl = idx / 32, lane = idx % 32, s = s0 + sl;
    const bool ok = s < stripes;
    const uint8_t* src = w + (((size_t)(ok ? s : 0) * chunks + c) * 32 + lane) * 16;
    cp_async16(st + idx * 16, src, ok);
  }
  // x: NTOK rows x 8 pieces, piece p of row r stored at p ^ (r & 7).
  uint8_t* xs = st + MS * 512;
#pragma unroll
  for (int idx = tid; idx < NTOK * 8; idx += THREADS) {
    const int row = idx / 8, piece = idx % 8;
    const bool ok = n0 + row < tokens;
    const __half* src = x + (size_t)(ok ? n0 + row : 0) * in + c * kChunk + piece * 8;
    cp_async16(xs + row * 128 + ((piece ^ (row & 7)) * 16), src, ok);
  }
  // Scale/zero rows of the groups this chunk touches: MS*16 columns x 4 B.
  constexpr int kGroups = GROUP >= kChunk ? 1 : kChunk / GROUP;
  constexpr int kPieces = MS * kStripe * 4 / 16;
  uint8_t* zs = xs + NTOK * 128;
  for (int idx = tid; idx < kGroups * kPieces; idx += THREADS) {
    const int gl = idx / kPieces, piece = idx % kPieces;
    const int gi = c * kChunk / GROUP + gl;
    const int col = s0 * kStripe + piece * 4;
    const bool ok = col < outP;
    const uint8_t* src = w + sz_offset(in, out) + ((size_t)gi * outP + (ok ? col : 0)) * 4;
    cp_async16(zs + idx * 16, src, ok);
  }
}

template <int MS, int NTOK, int WM, int WN, int STAGES, int GROUP>
__device__ __forceinline__ void gemm(const uint8_t* __restrict__ w, const __half* __restrict__ x,
                                     __half* __restrict__ y, int tokens, int in, int out) {
  constexpr int THREADS = WM * WN * 32;
  constexpr int WS = MS / WM;          // stripes per warp
  constexpr int WT = NTOK / WN / 8;    // n-tiles per warp
  constexpr int SB = gemm_stage_bytes(MS, NTOK);
  static_assert(MS % WM == 0 && NTOK % (WN * 8) == 0, "tile shape");
  extern __shared__ __align__(16) uint8_t smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int wm = warp % WM, wn = warp / WM;
  const int chunks = in / kChunk;
  const int s0 = blockIdx.x * MS, n0 = blockIdx.y * NTOK;
  const int gl = GROUP >= kChunk ? 0 : 16 * t / GROUP;  // group slot of this lane's 16 rows

  float acc[WS][WT][4];
#pragma unroll
  for (int i = 0; i < WS; i++)
#pragma unroll
    for (int nt = 0; nt < WT; nt++)
#pragma unroll
      for (int v = 0; v < 4; v++) acc[i][nt][v] = 0.f;

#pragma unroll
  for (int st = 0; st < STAGES - 1; st++) {
    if (st < chunks) gemm_load<MS, NTOK, THREADS, GROUP>(smem + st * SB, w, x, st, s0, n0, tokens, in, out);
    cp_async_commit_group();
  }
  int st = 0;
  for (int c = 0; c < chunks; c++) {
    cp_async_wait_group<STAGES - 2>();
    __syncthreads();  // chunk c landed for all; the stage of chunk c-1 is free again
    {
      const int cn = c + STAGES - 1;
      const int sn = st == 0 ? STAGES - 1 : st - 1;
      if (cn < chunks) gemm_load<MS, NTOK, THREADS, GROUP>(smem + sn * SB, w, x, cn, s0, n0, tokens, in, out);
      cp_async_commit_group();
    }
    const uint8_t* sp = smem + st * SB;
    const uint4* ws = reinterpret_cast<const uint4*>(sp);
    const uint8_t* xs = sp + MS * 512;
    const uint32_t* zs = reinterpret_cast<const uint32_t*>(xs + NTOK * 128);

    uint4 qa[WS];
    uint32_t z0[WS], z1[WS];
#pragma unroll
    for (int i = 0; i < WS; i++) {
      const int sl = wm * WS + i;
      qa[i] = ws[sl * 32 + lane];
      z0[i] = zs[gl * MS * kStripe + sl * kStripe + g];
      z1[i] = zs[gl * MS * kStripe + sl * kStripe + g + 8];
    }
#pragma unroll
    for (int jh = 0; jh < 2; jh++) {
      uint4 xb[WT];  // k-steps 2jh, 2jh+1 of n-tile nt: x row (token) wn*WT*8 + nt*8 + g
#pragma unroll
      for (int nt = 0; nt < WT; nt++) {
        const int row = (wn * WT + nt) * 8 + g;
        xb[nt] = *reinterpret_cast<const uint4*>(xs + row * 128 + (((2 * t + jh) ^ (row & 7)) * 16));
      }
#pragma unroll
      for (int jj = 0; jj < 2; jj++) {
        const int j = 2 * jh + jj;
        uint32_t a[WS][4];
#pragma unroll
        for (int i = 0; i < WS; i++) {
          const uint32_t qw[4] = {qa[i].x, qa[i].y, qa[i].z, qa[i].w};
          dequant16(qw[j], z0[i], z1[i], a[i]);
        }
#pragma unroll
        for (int nt = 0; nt < WT; nt++) {
          const uint32_t* b = reinterpret_cast<const uint32_t*>(&xb[nt]);
#pragma unroll
          for (int i = 0; i < WS; i++) mma_16816(acc[i][nt], a[i], b[2 * jj], b[2 * jj + 1]);
        }
      }
    }
    st = st == STAGES - 1 ? 0 : st + 1;
  }
  cp_async_wait_group<0>();

#pragma unroll
  for (int i = 0; i < WS; i++) {
#pragma unroll
    for (int nt = 0; nt < WT; nt++) {
#pragma unroll
      for (int v = 0; v < 4; v++) {
        const int col = (s0 + wm * WS + i) * kStripe + g + (v >= 2 ? 8 : 0);
        const int tok = n0 + (wn * WT + nt) * 8 + 2 * t + (v & 1);
        if (col < out && tok < tokens) y[(size_t)tok * out + col] = __float2half_rn(acc[i][nt][v]);
      }
    }
  }
}

// The production tile (awq.go: awqGemm*): 128 outputs x 128 tokens, warps
// 4 x 2 of 32 outputs x 64 tokens, 2 stages (42 KB, under the 48 KB default).
constexpr int kGemmMS = 8, kGemmNTok = 128, kGemmWM = 4, kGemmWN = 2, kGemmStages = 2;
constexpr int kGemmThreads = kGemmWM * kGemmWN * 32;
constexpr int kGemmShared = kGemmStages * gemm_stage_bytes(kGemmMS, kGemmNTok);
static_assert(kGemmShared <= 48 * 1024, "over the default dynamic shared memory limit");

}  // namespace awq_v2
