// Version 3 of the mat-vec, kept for the lab's comparison: register
// prefetch of U chunks through a struct copied each step, scale applied per
// chunk. H200: no faster than version 1; its loop was bloated by copies and
// rematerialized index math (NOTES-awq.md, run 4).
#pragma once
#include "../awq_common.cuh"

namespace awq_v3 {
using namespace awq;

// One chunk's loads for one lane.
template <int NT>
struct GemvChunk {
  uint4 q;          // packed weights
  uint32_t z0, z1;  // (s, 1024+z) of rows g, g+8
  uint4 x[NT][2];   // 16 contiguous k of token nt*8+g
};

template <int NT>
__device__ __forceinline__ void gemv_load(GemvChunk<NT>& d, const uint4* wp, const uint32_t* zp,
                                          const uint4* const xp[NT], const bool xv[NT]) {
  d.q = ld_stream(wp);
  d.z0 = __ldg(zp);
  d.z1 = __ldg(zp + 8);
#pragma unroll
  for (int nt = 0; nt < NT; nt++) {
    if (xv[nt]) {
      d.x[nt][0] = __ldg(xp[nt]);
      d.x[nt][1] = __ldg(xp[nt] + 1);
    } else {
      d.x[nt][0] = d.x[nt][1] = make_uint4(0, 0, 0, 0);
    }
  }
}

template <int GROUP, int NT>
__device__ __forceinline__ void gemv_chunk(float acc[NT][4], const GemvChunk<NT>& d) {
  const uint32_t qw[4] = {d.q.x, d.q.y, d.q.z, d.q.w};
  if (GROUP >= kChunk) {
    const __half2 z0 = __high2half2(as_h2(d.z0));
    // 1024+16z = 16(1024+z) - 15360, exact in fp16.
    const __half2 z1 = __hfma2(__high2half2(as_h2(d.z1)), __float2half2_rn(16.f), __float2half2_rn(-15360.f));
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
        const uint32_t* b = reinterpret_cast<const uint32_t*>(&d.x[nt][0]);
        mma_16816(part[nt], a, b[2 * j], b[2 * j + 1]);
      }
    }
    const float s0 = __low2float(as_h2(d.z0)), s1 = __low2float(as_h2(d.z1)) * (1.f / 16.f);
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
      dequant16(qw[j], d.z0, d.z1, a);
#pragma unroll
      for (int nt = 0; nt < NT; nt++) {
        const uint32_t* b = reinterpret_cast<const uint32_t*>(&d.x[nt][0]);
        mma_16816(acc[nt], a, b[2 * j], b[2 * j + 1]);
      }
    }
  }
}

// gemv: NT n-tiles of 8 tokens, U chunks per warp per step (U more in
// flight), GROUP the group size.
template <int GROUP, int NT, int U>
__device__ __forceinline__ void gemv(const uint8_t* __restrict__ w, const __half* __restrict__ x,
                                     __half* __restrict__ y, int tokens, int in, int out) {
  extern __shared__ __align__(16) uint8_t smem[];  // blockDim/32 * NT*4*32 floats
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int outP = out_pad(out), chunks = in / kChunk;
  const int s = blockIdx.x;

  // Chunk c of this lane: weights wp0 + 32c, scale/zero row (64c+16t)/GROUP,
  // x xp0[nt] + 8c (uint4 units).
  const uint4* wp0 = reinterpret_cast<const uint4*>(w) + (size_t)s * chunks * 32 + lane;
  const uint32_t* zp0 = reinterpret_cast<const uint32_t*>(w + sz_offset(in, out)) + s * kStripe + g;
  const uint4* xp0[NT];
  bool xv[NT];
#pragma unroll
  for (int nt = 0; nt < NT; nt++) {
    const int tok = nt * 8 + g;
    xv[nt] = tok < tokens;
    xp0[nt] = reinterpret_cast<const uint4*>(x + (size_t)(xv[nt] ? tok : 0) * in + 16 * t);
  }
  auto load = [&](GemvChunk<NT>& d, int c) {
    const uint4* xp[NT];
#pragma unroll
    for (int nt = 0; nt < NT; nt++) xp[nt] = xp0[nt] + c * (kChunk / 8);
    gemv_load<NT>(d, wp0 + (size_t)c * 32, zp0 + (size_t)((c * kChunk + 16 * t) / GROUP) * outP, xp, xv);
  };

  float acc[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; nt++)
#pragma unroll
    for (int v = 0; v < 4; v++) acc[nt][v] = 0.f;

  // Software pipeline over this warp's chunks warp, warp+nw, ...: step i
  // computes chunks i*U.. while chunks (i+1)*U.. are loading.
  GemvChunk<NT> cur[U], nxt[U];
  const int n = chunks > warp ? (chunks - warp + nw - 1) / nw : 0;
#pragma unroll
  for (int u = 0; u < U; u++)
    if (u < n) load(cur[u], warp + u * nw);
  for (int i = 0; i < n; i += U) {
#pragma unroll
    for (int u = 0; u < U; u++)
      if (i + U + u < n) load(nxt[u], warp + (i + U + u) * nw);
#pragma unroll
    for (int u = 0; u < U; u++)
      if (i + u < n) gemv_chunk<GROUP, NT>(acc, cur[u]);
#pragma unroll
    for (int u = 0; u < U; u++) cur[u] = nxt[u];
  }

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

// Dynamic shared memory of a launch with `warps` warps (awq.go: awqPlan).
__host__ __device__ constexpr int gemv_shared(int warps, int nt) { return warps * nt * 4 * 32 * 4; }

}  // namespace awq_v3
