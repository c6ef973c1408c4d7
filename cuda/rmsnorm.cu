// RMSNorm with the residual add fused in front: h += y (when y is given),
// then out = h / sqrt(mean(h^2) + eps) * w. Fusing saves one pass over the
// residual stream per sub-layer. One block per row holds the whole row in
// registers (up to four float4 per thread), so all its loads are in flight
// at once: a decode step runs 65 norms on a single row each (64 of them
// add_rmsnorm_vt4 since session 25, below), where a strided loop was
// bound by one load latency per iteration (about 11 us a launch on an
// H100 before, measured by BenchmarkOpenHermes's profile).
#include "common.cuh"

constexpr int kNormVec = 4;  // float4 per thread at most: hidden <= 16 * blockDim

// The arithmetic of both kernels, so that add_rmsnorm_vt4 gives
// add_rmsnorm's bits: norm_add is h + y of four elements (y fp16 as two
// half2 in a uint2), norm_out four outputs v * inv * w rounded to fp16.
__device__ __forceinline__ float4 norm_add(float4 v, uint2 yy) {
  const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&yy.x));
  const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&yy.y));
  v.x += a.x, v.y += a.y, v.z += b.x, v.w += b.y;
  return v;
}
// norm_widen is four fp16 (two half2 in a uint2) as fp32, as embed_gather
// widens them.
__device__ __forceinline__ float4 norm_widen(uint2 e) {
  const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&e.x));
  const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&e.y));
  return make_float4(a.x, a.y, b.x, b.y);
}
__device__ __forceinline__ uint2 norm_out(float4 v, float inv, uint2 ww) {
  const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&ww.x));
  const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&ww.y));
  __half2 lo = __floats2half2_rn(v.x * inv * a.x, v.y * inv * a.y);
  __half2 hi = __floats2half2_rn(v.z * inv * b.x, v.w * inv * b.y);
  return make_uint2(*reinterpret_cast<uint32_t*>(&lo), *reinterpret_cast<uint32_t*>(&hi));
}

// norm_store writes outputs 4i..4i+3 of a row, in place or, with px, each
// pair where xp_perm_pair puts it.
__device__ __forceinline__ void norm_store(__half* __restrict__ row, int i, uint2 o, bool px) {
  if (px) {
    uint32_t* r = reinterpret_cast<uint32_t*>(row);
    r[xp_perm_pair(2 * i)] = o.x;
    r[xp_perm_pair(2 * i + 1)] = o.y;
  } else {
    reinterpret_cast<uint2*>(row)[i] = o;
  }
}

// norm_w loads a thread's norm weights for rows i = threadIdx.x + k
// blockDim (k < K, i < n4): constant, so the kernels request them before
// their wait, and the last step of the norm no longer waits on a load from
// memory (the weights' few kilobytes are out of L2 again by the next step).
template <int K>
__device__ __forceinline__ void norm_w(uint2 (&wv)[K], const __half* __restrict__ w, int n4) {
  const uint2* wr = reinterpret_cast<const uint2*>(w);
#pragma unroll
  for (int k = 0; k < K; k++) {
    const int i = threadIdx.x + k * blockDim.x;
    wv[k] = i < n4 ? wr[i] : make_uint2(0, 0);
  }
}

// norm_body is add_rmsnorm: grid (tokens), block min(1024, hidden/4 rounded
// up to 32). h (tokens, hidden) fp32, updated in place; y (tokens, hidden)
// fp16 or NULL; w (hidden) fp16; out (tokens, hidden) fp16. hidden % 4 ==
// 0. The caller offsets the pointers to run on some rows only (the final
// norm of a prefill chunk runs on its last row alone).
// With an embedding table (emb), the row is not read from h: it is the
// token's row of the table (params' id t), widened to fp32 as embed_gather
// widens it and written to h, so a step's first norm needs no kernel before
// it; y must then be null.
__device__ __forceinline__ void norm_body(float* __restrict__ h, const __half* __restrict__ y,
                                          const __half* __restrict__ w, __half* __restrict__ out, int hidden,
                                          float eps, const __half* __restrict__ emb = nullptr,
                                          const int* __restrict__ params = nullptr, bool px = false) {
  const int t = blockIdx.x, n4 = hidden / 4;
  uint2 wv[kNormVec];
  norm_w(wv, w, n4);
  grid_dep_wait();
  float4* hr = reinterpret_cast<float4*>(h + (size_t)t * hidden);
  const uint2* yr = y ? reinterpret_cast<const uint2*>(y + (size_t)t * hidden) : nullptr;
  float4 v[kNormVec];
  float ss = 0.f;
  if (emb) {
    const uint2* er = reinterpret_cast<const uint2*>(emb + (size_t)params[kParamIds + t] * hidden);
#pragma unroll
    for (int k = 0; k < kNormVec; k++) {
      const int i = threadIdx.x + k * blockDim.x;
      if (i < n4) v[k] = norm_widen(er[i]);
    }
#pragma unroll
    for (int k = 0; k < kNormVec; k++) {
      const int i = threadIdx.x + k * blockDim.x;
      if (i < n4) hr[i] = v[k];
    }
  } else {
#pragma unroll
    for (int k = 0; k < kNormVec; k++) {
      const int i = threadIdx.x + k * blockDim.x;
      if (i < n4) v[k] = hr[i];
    }
  }
  if (yr) {
#pragma unroll
    for (int k = 0; k < kNormVec; k++) {
      const int i = threadIdx.x + k * blockDim.x;
      if (i < n4) {
        v[k] = norm_add(v[k], yr[i]);
        hr[i] = v[k];
      }
    }
  }
#pragma unroll
  for (int k = 0; k < kNormVec; k++) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i < n4) ss += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
  }
  const float inv = rsqrtf(block_sum(ss) / hidden + eps);
#pragma unroll
  for (int k = 0; k < kNormVec; k++) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i < n4) norm_store(out + (size_t)t * hidden, i, norm_out(v[k], inv, wv[k]), px);
  }
}

extern "C" __global__ void add_rmsnorm(float* __restrict__ h, const __half* __restrict__ y,
                                       const __half* __restrict__ w, __half* __restrict__ out,
                                       int hidden, float eps) {
  grid_dep_launch();
  norm_body(h, y, w, out, hidden, eps);
}

// embed_rmsnorm is embed_gather followed by add_rmsnorm without y, in one
// kernel: the same h and the same outputs. table (vocab, hidden) fp16,
// params as common.cuh; the rest as add_rmsnorm's.
extern "C" __global__ void embed_rmsnorm(const __half* __restrict__ table, const int* __restrict__ params,
                                         float* __restrict__ h, const __half* __restrict__ w,
                                         __half* __restrict__ out, int hidden, float eps) {
  grid_dep_launch();
  norm_body(h, nullptr, w, out, hidden, eps, table, params);
}

// add_rmsnorm_vt4: add_rmsnorm's outputs, bit for bit, with a quarter of
// its threads: for a row of hidden = 4 n4 with n4 a multiple of 128 and at
// most 1024, where add_rmsnorm runs n4 threads of one float4 each, thread t
// here does add_rmsnorm's threads t + k blockDim (k < 4) with their
// expressions, and the sum of squares meets in block_sum's order (those
// threads' warps are t's warp + k nw, nw this block's warps: each summed
// by warp_sum, then all n4/32 warp sums by one warp_sum in warp order). A
// prefill chunk's rows then keep four float4 loads in flight a thread and
// four times the rows in flight an SM; a decode step's one row meets at a
// barrier of 8 warps instead of 32 (greedy 0.6% faster on an H200, run
// 216). grid (tokens), block n4 / 4; arguments as add_rmsnorm's.
constexpr int kVT4 = 4;  // add_rmsnorm_vt4's float4 a thread
__device__ __forceinline__ void norm_vt4_body(float* __restrict__ h, const __half* __restrict__ y,
                                              const __half* __restrict__ w, __half* __restrict__ out, int hidden,
                                              float eps, const __half* __restrict__ emb = nullptr,
                                              const int* __restrict__ params = nullptr, bool px = false) {
  const int t = blockIdx.x, nt = blockDim.x;
  uint2 wv[kVT4];
  norm_w(wv, w, hidden / 4);
  grid_dep_wait();
  float4* hr = reinterpret_cast<float4*>(h + (size_t)t * hidden);
  const uint2* yr = y ? reinterpret_cast<const uint2*>(y + (size_t)t * hidden) : nullptr;
  float4 v[kVT4];
  if (emb) {
    // As norm_body's.
    const uint2* er = reinterpret_cast<const uint2*>(emb + (size_t)params[kParamIds + t] * hidden);
#pragma unroll
    for (int k = 0; k < kVT4; k++) v[k] = norm_widen(er[threadIdx.x + k * nt]);
#pragma unroll
    for (int k = 0; k < kVT4; k++) hr[threadIdx.x + k * nt] = v[k];
  } else {
#pragma unroll
    for (int k = 0; k < kVT4; k++) v[k] = hr[threadIdx.x + k * nt];
  }
  if (yr) {
#pragma unroll
    for (int k = 0; k < kVT4; k++) {
      const int i = threadIdx.x + k * nt;
      v[k] = norm_add(v[k], yr[i]);
      hr[i] = v[k];
    }
  }
  __shared__ float part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = nt >> 5;
#pragma unroll
  for (int k = 0; k < kVT4; k++) {
    float ss = 0.f;
    ss += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
    ss = warp_sum(ss);
    if (lane == 0) part[warp + k * nw] = ss;
  }
  __syncthreads();
  const float inv = rsqrtf(warp_sum(lane < kVT4 * nw ? part[lane] : 0.f) / hidden + eps);
#pragma unroll
  for (int k = 0; k < kVT4; k++)
    norm_store(out + (size_t)t * hidden, threadIdx.x + k * nt, norm_out(v[k], inv, wv[k]), px);
}

extern "C" __global__ void add_rmsnorm_vt4(float* __restrict__ h, const __half* __restrict__ y,
                                           const __half* __restrict__ w, __half* __restrict__ out, int hidden,
                                           float eps) {
  grid_dep_launch();
  norm_vt4_body(h, y, w, out, hidden, eps);
}

// embed_rmsnorm_vt4 is embed_rmsnorm with add_rmsnorm_vt4's threads.
extern "C" __global__ void embed_rmsnorm_vt4(const __half* __restrict__ table, const int* __restrict__ params,
                                             float* __restrict__ h, const __half* __restrict__ w,
                                             __half* __restrict__ out, int hidden, float eps) {
  grid_dep_launch();
  norm_vt4_body(h, nullptr, w, out, hidden, eps, table, params);
}

// The four norms with their outputs where xp_perm_pair puts them: the
// prefill's norms before the x-producer GEMM's direct copies (awq.go:
// xpPerm). Arguments as the plain ones'.
extern "C" __global__ void add_rmsnorm_px(float* __restrict__ h, const __half* __restrict__ y,
                                          const __half* __restrict__ w, __half* __restrict__ out, int hidden,
                                          float eps) {
  grid_dep_launch();
  norm_body(h, y, w, out, hidden, eps, nullptr, nullptr, true);
}
extern "C" __global__ void embed_rmsnorm_px(const __half* __restrict__ table, const int* __restrict__ params,
                                            float* __restrict__ h, const __half* __restrict__ w,
                                            __half* __restrict__ out, int hidden, float eps) {
  grid_dep_launch();
  norm_body(h, nullptr, w, out, hidden, eps, table, params, true);
}
extern "C" __global__ void add_rmsnorm_vt4_px(float* __restrict__ h, const __half* __restrict__ y,
                                              const __half* __restrict__ w, __half* __restrict__ out, int hidden,
                                              float eps) {
  grid_dep_launch();
  norm_vt4_body(h, y, w, out, hidden, eps, nullptr, nullptr, true);
}
extern "C" __global__ void embed_rmsnorm_vt4_px(const __half* __restrict__ table, const int* __restrict__ params,
                                                float* __restrict__ h, const __half* __restrict__ w,
                                                __half* __restrict__ out, int hidden, float eps) {
  grid_dep_launch();
  norm_vt4_body(h, nullptr, w, out, hidden, eps, table, params, true);
}
