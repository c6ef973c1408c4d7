// RoPE (rotate-half layout, as transformers applies it) on the fused q|k|v
// projection, fused with the KV-cache append: q is rotated in place, k is
// rotated and written with v into the cache slot of its absolute position.
// Angles are computed as transformers does: inv_freq = 1/theta^(2i/D) in
// fp32, angle = pos * inv_freq in fp32 (rope.cuh: rope_rotate).
#include "common.cuh"
#include "rope.cuh"

// grid (tokens, heads + kv_heads), block head_dim/2.
// qkv (tokens, (heads + 2*kv_heads) * head_dim) fp16;
// kc, vc (kv_heads, cap, head_dim) fp16: this layer's cache, a ring of cap
// slots (slot = pos % cap).
extern "C" __global__ void rope_append(__half* __restrict__ qkv, __half* __restrict__ kc,
                                       __half* __restrict__ vc, const int* __restrict__ params,
                                       int heads, int kv_heads, int head_dim, int cap,
                                       float theta) {
  grid_dep_launch();
  grid_dep_wait();
  const int t = blockIdx.x, hh = blockIdx.y, i = threadIdx.x;
  const int half = head_dim / 2;
  const int pos = params[kParamPos] + t;
  const size_t row = (size_t)t * (heads + 2 * kv_heads) * head_dim;
  __half* x = qkv + row + (size_t)hh * head_dim;
  __half r1, r2;
  rope_rotate(x[i], x[i + half], pos, i, head_dim, theta, r1, r2);
  if (hh < heads) {
    x[i] = r1;
    x[i + half] = r2;
    return;
  }
  const int kv = hh - heads;
  const size_t slot = ((size_t)kv * cap + (size_t)(pos % cap)) * head_dim;
  kc[slot + i] = r1;
  kc[slot + i + half] = r2;
  const __half* v = qkv + row + (size_t)(heads + kv_heads + kv) * head_dim;
  vc[slot + i] = v[i];
  vc[slot + i + half] = v[i + half];
}

// rope_append_perm is rope_append for a q|k|v projection packed in the
// fused-RoPE column order (awq.go: ropeOrder), as the prefill GEMM writes
// it: in each head, device column 16(i/8) + i%8 holds column i (i < D/2) and
// the device column 8 after it holds column i + D/2; v is not permuted. q is
// written back rotated to its own columns, as rope_append leaves it.
// Launch and arguments as rope_append.
extern "C" __global__ void rope_append_perm(__half* __restrict__ qkv, __half* __restrict__ kc,
                                            __half* __restrict__ vc, const int* __restrict__ params,
                                            int heads, int kv_heads, int head_dim, int cap,
                                            float theta) {
  grid_dep_launch();
  grid_dep_wait();
  const int t = blockIdx.x, hh = blockIdx.y, i = threadIdx.x;
  const int half = head_dim / 2;
  const int pos = params[kParamPos] + t;
  const size_t row = (size_t)t * (heads + 2 * kv_heads) * head_dim;
  __half* x = qkv + row + (size_t)hh * head_dim;
  const int pc = 16 * (i / 8) + i % 8;
  const __half x1 = x[pc], x2 = x[pc + 8];
  __half r1, r2;
  rope_rotate(x1, x2, pos, i, head_dim, theta, r1, r2);
  __syncthreads();  // q is rewritten in place: every thread has read its pair
  if (hh < heads) {
    x[i] = r1;
    x[i + half] = r2;
    return;
  }
  const int kv = hh - heads;
  const size_t slot = ((size_t)kv * cap + (size_t)(pos % cap)) * head_dim;
  kc[slot + i] = r1;
  kc[slot + i + half] = r2;
  const __half* v = qkv + row + (size_t)(heads + kv_heads + kv) * head_dim;
  vc[slot + i] = v[i];
  vc[slot + i + half] = v[i + half];
}
