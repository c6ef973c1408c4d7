// One group of 128 inputs for one lane of the group-128 mat-vec: its two
// 64-row chunks, its scale/zero words and x, and the arithmetic on them.
// Shared by gemv_g128 (awq_gemv.cu) and awq_mlp_ring (awq_mlp_ring.cu), so
// that both add the same products in the same order.
#pragma once

#include "awq_common.cuh"

namespace awq {

// word_exact turns one packed word into the A fragment of one MMA k-step
// as the exact integers q-z (rows g) and 16(q-z) (rows g+8).
__device__ __forceinline__ void word_exact(uint32_t w, __half2 z0, __half2 z1, uint32_t a[4]) {
  const uint32_t kMask = 0x000f000f, kMask16 = 0x00f000f0, kMagic = 0x64006400;
  const uint32_t w8 = w >> 8;
  a[0] = as_u32(__hsub2(as_h2(lop3<0xea>(w, kMask, kMagic)), z0));
  a[1] = as_u32(__hsub2(as_h2(lop3<0xea>(w, kMask16, kMagic)), z1));
  a[2] = as_u32(__hsub2(as_h2(lop3<0xea>(w8, kMask, kMagic)), z0));
  a[3] = as_u32(__hsub2(as_h2(lop3<0xea>(w8, kMask16, kMagic)), z1));
}

// chunk_part accumulates one chunk's exact (q-z) products into part.
template <int NT>
__device__ __forceinline__ void chunk_part(float part[NT][4], const uint4 q, const uint4 (&x)[NT][2], __half2 z0,
                                           __half2 z1) {
  const uint32_t qw[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int j = 0; j < 4; j++) {
    uint32_t a[4];
    word_exact(qw[j], z0, z1, a);
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
      const uint32_t* b = reinterpret_cast<const uint32_t*>(&x[nt][0]);
      mma_16816(part[nt], a, b[2 * j], b[2 * j + 1]);
    }
  }
}

template <int NT>
struct Pair {
  uint4 q[2];
  uint4 x[2][NT][2];
  uint32_t z0, z1;
};

// pair_load_w issues a group's weight and scale/zero loads: constant data,
// safe before grid_dep_wait.
template <int NT>
__device__ __forceinline__ void pair_load_w(Pair<NT>& d, const uint4* wc, const uint32_t* zc) {
  d.q[0] = ld_stream(wc);
  d.q[1] = ld_stream(wc + 32);
  d.z0 = __ldg(zc);
  d.z1 = __ldg(zc + 8);
}

// pair_load_x issues a group's x loads (the previous kernel's output).
template <int NT>
__device__ __forceinline__ void pair_load_x(Pair<NT>& d, const uint4* const xc[NT], const bool xv[NT]) {
#pragma unroll
  for (int h = 0; h < 2; h++)
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
      if (xv[nt]) {
        d.x[h][nt][0] = __ldg(xc[nt] + h * 8);
        d.x[h][nt][1] = __ldg(xc[nt] + h * 8 + 1);
      } else {
        d.x[h][nt][0] = d.x[h][nt][1] = make_uint4(0, 0, 0, 0);
      }
    }
}

template <int NT>
__device__ __forceinline__ void pair_load(Pair<NT>& d, const uint4* wc, const uint32_t* zc, const uint4* const xc[NT],
                                          const bool xv[NT]) {
  pair_load_w<NT>(d, wc, zc);
  pair_load_x<NT>(d, xc, xv);
}

// group_sum adds one group's products to acc: chunks(part, z0, z1) adds
// the exact (q-z) products of the group's chunks to part (chunk_part, with
// the group's zeros as fp16 pairs), then each half of part is scaled by
// its row's scale. Shared by gemv_g128, awq_mlp_ring and the group-64 /
// 128 path of gemv_chunk (awq_gemv.cu), so all add in the same order.
template <int NT, class Chunks>
__device__ __forceinline__ void group_sum(float acc[NT][4], uint32_t zw0, uint32_t zw1, Chunks chunks) {
  const __half2 z0 = __high2half2(as_h2(zw0));
  // 1024+16z = 16(1024+z) - 15360, exact in fp16.
  const __half2 z1 = __hfma2(__high2half2(as_h2(zw1)), __float2half2_rn(16.f), __float2half2_rn(-15360.f));
  float part[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; nt++)
#pragma unroll
    for (int v = 0; v < 4; v++) part[nt][v] = 0.f;
  chunks(part, z0, z1);
  const float s0 = __low2float(as_h2(zw0)), s1 = __low2float(as_h2(zw1)) * (1.f / 16.f);
#pragma unroll
  for (int nt = 0; nt < NT; nt++) {
    acc[nt][0] = fmaf(s0, part[nt][0], acc[nt][0]);
    acc[nt][1] = fmaf(s0, part[nt][1], acc[nt][1]);
    acc[nt][2] = fmaf(s1, part[nt][2], acc[nt][2]);
    acc[nt][3] = fmaf(s1, part[nt][3], acc[nt][3]);
  }
}

template <int NT>
__device__ __forceinline__ void pair_compute(float acc[NT][4], const Pair<NT>& d) {
  group_sum<NT>(acc, d.z0, d.z1, [&](float (*part)[4], __half2 z0, __half2 z1) {
    chunk_part<NT>(part, d.q[0], d.x[0], z0, z1);
    chunk_part<NT>(part, d.q[1], d.x[1], z0, z1);
  });
}

}  // namespace awq
