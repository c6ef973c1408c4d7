// RoPE (rotate-half layout, as transformers applies it) on the fused q|k|v
// projection, fused with the KV-cache append: q is rotated in place, k is
// rotated and written with v into the cache slot of its absolute position.
// Angles are computed as transformers does: inv_freq = 1/theta^(2i/D) in
// fp32, angle = pos * inv_freq in fp32.
#include "common.cuh"

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
  const float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
  float s, c;
  sincosf((float)pos * inv_freq, &s, &c);
  __half* x = qkv + row + (size_t)hh * head_dim;
  const float x1 = __half2float(x[i]), x2 = __half2float(x[i + half]);
  const __half r1 = __float2half_rn(x1 * c - x2 * s);
  const __half r2 = __float2half_rn(x2 * c + x1 * s);
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
