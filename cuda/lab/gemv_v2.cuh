// Version 2 of the mat-vec, a failed experiment kept for the record: per-lane
// cp.async rings of S stages in shared memory, scale applied per chunk.
// H200: slower than version 1 on every shape (NOTES-awq.md, run 2).
#pragma once
#include "../awq_common.cuh"

namespace awq_v2 {
using namespace awq;

constexpr int kGemvRingBytes = 512 + 256;  // per warp and stage: weights + scale/zero words

// gemv_shared is the dynamic shared memory of a launch with `warps` warps
// and S stages (awq.go: awqPlan computes the same).
__host__ __device__ constexpr int gemv_shared(int warps, int S) { return warps * S * kGemvRingBytes; }

template <int NT>
__device__ __forceinline__ void load_x(uint4 xb[NT][2], const uint4* const xr[NT], const bool xv[NT], int c) {
#pragma unroll
  for (int nt = 0; nt < NT; nt++) {
    if (xv[nt]) {
      xb[nt][0] = __ldg(xr[nt] + c * (kChunk / 8));
      xb[nt][1] = __ldg(xr[nt] + c * (kChunk / 8) + 1);
    } else {
      xb[nt][0] = xb[nt][1] = make_uint4(0, 0, 0, 0);
    }
  }
}

// gemv: NT n-tiles of 8 tokens, S ring stages, GROUP the group size.
template <int GROUP, int NT, int S>
__device__ __forceinline__ void gemv(const uint8_t* __restrict__ w, const __half* __restrict__ x,
                                     __half* __restrict__ y, int tokens, int in, int out) {
  extern __shared__ __align__(16) uint8_t smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int outP = out_pad(out), chunks = in / kChunk;
  const int s = blockIdx.x;

  uint4* wring = reinterpret_cast<uint4*>(smem) + warp * S * 32 + lane;                 // (S, 32) per warp
  uint2* zring = reinterpret_cast<uint2*>(smem + nw * S * 512) + warp * S * 32 + lane;  // (S, 32) per warp
  const uint4* wsrc = reinterpret_cast<const uint4*>(w) + (size_t)s * chunks * 32 + lane;
  const uint32_t* zsrc = reinterpret_cast<const uint32_t*>(w + sz_offset(in, out)) + s * kStripe + g;
  const int n = chunks > warp ? (chunks - warp + nw - 1) / nw : 0;  // this warp's chunks: warp + i*nw

  const uint4* xr[NT];
  bool xv[NT];
#pragma unroll
  for (int nt = 0; nt < NT; nt++) {
    const int tok = nt * 8 + g;
    xv[nt] = tok < tokens;
    xr[nt] = reinterpret_cast<const uint4*>(x + (size_t)(xv[nt] ? tok : 0) * in + 16 * t);
  }

  // Prologue: S-1 chunks in flight.
#pragma unroll
  for (int i = 0; i < S - 1; i++) {
    if (i < n) {
      const int c = warp + i * nw;
      cp_async16(wring + i * 32, wsrc + (size_t)c * 32, true);
      const size_t zo = (size_t)((c * kChunk + 16 * t) / GROUP) * outP;
      cp_async4(&zring[i * 32].x, zsrc + zo);
      cp_async4(&zring[i * 32].y, zsrc + zo + 8);
    }
    cp_async_commit_group();
  }

  float acc[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; nt++)
#pragma unroll
    for (int v = 0; v < 4; v++) acc[nt][v] = 0.f;

  uint4 xc[NT][2];
  if (n > 0) load_x<NT>(xc, xr, xv, warp);
  int st = 0;  // ring stage of chunk i
  for (int i = 0; i < n; i++) {
    cp_async_wait_group<S - 2>();  // this lane's copies of chunk i have landed
    const uint4 q = wring[st * 32];
    const uint2 z = zring[st * 32];
    {
      // Refill the stage chunk i-1 used (already read back into registers).
      const int in_ = i + S - 1, sn = st == 0 ? S - 1 : st - 1;
      if (in_ < n) {
        const int c = warp + in_ * nw;
        cp_async16(wring + sn * 32, wsrc + (size_t)c * 32, true);
        const size_t zo = (size_t)((c * kChunk + 16 * t) / GROUP) * outP;
        cp_async4(&zring[sn * 32].x, zsrc + zo);
        cp_async4(&zring[sn * 32].y, zsrc + zo + 8);
      }
      cp_async_commit_group();
    }
    uint4 xn[NT][2];
    if (i + 1 < n) load_x<NT>(xn, xr, xv, warp + (i + 1) * nw);

    const uint32_t qw[4] = {q.x, q.y, q.z, q.w};
    if (GROUP >= kChunk) {
      const __half2 z0 = __high2half2(as_h2(z.x));
      // 1024+16z = 16(1024+z) - 15360, exact in fp16.
      const __half2 z1 = __hfma2(__high2half2(as_h2(z.y)), __float2half2_rn(16.f), __float2half2_rn(-15360.f));
      float part[NT][4];
#pragma unroll
      for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int v = 0; v < 4; v++) part[nt][v] = 0.f;
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const uint32_t kMask = 0x000f000f, kMask16 = 0x00f000f0, kMagic = 0x64006400;
        const uint32_t w8 = qw[j] >> 8;
        uint32_t a[4];
        a[0] = as_u32(__hsub2(as_h2(lop3<0xea>(qw[j], kMask, kMagic)), z0));
        a[1] = as_u32(__hsub2(as_h2(lop3<0xea>(qw[j], kMask16, kMagic)), z1));
        a[2] = as_u32(__hsub2(as_h2(lop3<0xea>(w8, kMask, kMagic)), z0));
        a[3] = as_u32(__hsub2(as_h2(lop3<0xea>(w8, kMask16, kMagic)), z1));
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
          const uint32_t* b = reinterpret_cast<const uint32_t*>(&xc[nt][0]);
          mma_16816(part[nt], a, b[2 * j], b[2 * j + 1]);
        }
      }
      const float s0 = __low2float(as_h2(z.x)), s1 = __low2float(as_h2(z.y)) * (1.f / 16.f);
#pragma unroll
      for (int nt = 0; nt < NT; nt++) {
        acc[nt][0] = fmaf(s0, part[nt][0], acc[nt][0]);
        acc[nt][1] = fmaf(s0, part[nt][1], acc[nt][1]);
        acc[nt][2] = fmaf(s1, part[nt][2], acc[nt][2]);
        acc[nt][3] = fmaf(s1, part[nt][3], acc[nt][3]);
      }
    } else {
#pragma unroll
      for (int j = 0; j < 4; j++) {
        uint32_t a[4];
        dequant(qw[j], z.x, z.y, a);
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
          const uint32_t* b = reinterpret_cast<const uint32_t*>(&xc[nt][0]);
          mma_16816(acc[nt], a, b[2 * j], b[2 * j + 1]);
        }
      }
    }
#pragma unroll
    for (int nt = 0; nt < NT; nt++) xc[nt][0] = xn[nt][0], xc[nt][1] = xn[nt][1];
    st = st == S - 1 ? 0 : st + 1;
  }
  cp_async_wait_group<0>();
  __syncthreads();  // every warp is done with its ring: reuse it for the reduction

  float* red = reinterpret_cast<float*>(smem);  // (warp, value, lane)
#pragma unroll
  for (int nt = 0; nt < NT; nt++)
#pragma unroll
    for (int v = 0; v < 4; v++) red[(warp * NT * 4 + nt * 4 + v) * 32 + lane] = acc[nt][v];
  __syncthreads();
  for (int idx = threadIdx.x; idx < NT * 4 * 32; idx += blockDim.x) {
    float sum = 0.f;
    for (int k = 0; k < nw; k++) sum += red[k * NT * 4 * 32 + idx];
    // Accumulator v = 4nt+i of lane l: row g (+8 for i >= 2), token 2t (+1 for odd i).
    const int v = idx / 32, l = idx % 32;
    const int nt = v / 4, i = v % 4;
    const int col = s * kStripe + (l >> 2) + (i >= 2 ? 8 : 0);
    const int tok = nt * 8 + 2 * (l & 3) + (i & 1);
    if (col < out && tok < tokens) y[(size_t)tok * out + col] = __float2half_rn(sum);
  }
}

}  // namespace awq_v2
