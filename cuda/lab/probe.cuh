// Read-only probes: the mat-vec's access pattern with no arithmetic, to
// split "bytes" from "instructions" in the mat-vec's gap to the copy ceiling.
#pragma once
#include "../awq_common.cuh"

// probe_stream: grid-stride 16-byte loads over the whole buffer (ideal).
__global__ void probe_stream(const uint4* __restrict__ p, size_t n, uint32_t* sink) {
  uint32_t acc = 0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    uint4 v = awq::ld_stream(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678) sink[0] = acc;
}

// probe_stripes: the mat-vec's pattern: block = stripe, warps take chunks
// round-robin (ROUNDROBIN) or contiguous ranges, U loads in flight.
template <int U, bool ROUNDROBIN>
__global__ void probe_stripes(const uint4* __restrict__ w, int chunks, uint32_t* sink) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const uint4* base = w + (size_t)blockIdx.x * chunks * 32 + lane;
  uint32_t acc = 0;
  if (ROUNDROBIN) {
    for (int c0 = warp * U; c0 < chunks; c0 += nw * U) {
      uint4 v[U];
#pragma unroll
      for (int u = 0; u < U; u++) v[u] = c0 + u < chunks ? awq::ld_stream(base + (size_t)(c0 + u) * 32) : make_uint4(0, 0, 0, 0);
#pragma unroll
      for (int u = 0; u < U; u++) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
  } else {
    const int per = (chunks + nw - 1) / nw, c1 = min(chunks, (warp + 1) * per);
    for (int c0 = warp * per; c0 < c1; c0 += U) {
      uint4 v[U];
#pragma unroll
      for (int u = 0; u < U; u++) v[u] = c0 + u < c1 ? awq::ld_stream(base + (size_t)(c0 + u) * 32) : make_uint4(0, 0, 0, 0);
#pragma unroll
      for (int u = 0; u < U; u++) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
  }
  if (acc == 0x12345678) sink[0] = acc;
}
