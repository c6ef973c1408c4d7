// Per-pair stores of the fused AWQ epilogues, shared by the mat-vec
// (awq_gemv.cu: rope_epilogue, silu_epilogue) and the GEMM (awq_gemm.cu:
// gemm with kEpiRope / kEpiSilu), so that both write the same bits as the
// unfused kernels (rope.cu, silu.cu). Both kernels end with, per lane, the
// rows g and g+8 of a stripe for one token: in the fused column orders
// (awq.go: ropeOrder, siluOrder) those two rows are one RoPE pair or one
// (gate, up) pair.
#pragma once
#include <cuda_fp16.h>

#include "common.cuh"
#include "rope.cuh"
#include "silu.cuh"

namespace awq {

// RopeArgs are the fused-RoPE epilogue's extra arguments: this layer's
// caches kc, vc (kv_heads, cap, head_dim) fp16, the step parameters, and
// the attention shape.
struct RopeArgs {
  __half* kc;
  __half* vc;
  const int* params;
  int heads, kv_heads, head_dim, cap;
  float theta;
};

// rope_pair_col is the column c of the RoPE pair (c, c + D/2) that rows g
// and g+8 of the ropeOrder stripe starting at device column col0 hold
// (within its head).
__device__ __forceinline__ int rope_pair_col(int col0, int g, int D) { return 8 * ((col0 % D) / 16) + g; }

// rope_pair_store takes the fp16 outputs h1 (row g) and h2 (row g+8) of the
// stripe starting at device column col0 of a q|k|v projection packed in
// ropeOrder, for token tok at position pos, and writes them where
// rope_append would leave them: in the q and k heads (D = head_dim) the pair
// is columns (c, c + D/2) of the head, c = rope_pair_col(col0, g, D),
// rotated as rope_rotate does (inv_freq = rope_inv_freq(c, D, theta), given
// by the caller so that it is computed once per column pair); q goes to its
// own columns of y (tokens, out), k to the K cache slot pos % cap; a v
// stripe keeps the file's order, so h1 and h2 are v columns d and d+8 of one
// head, copied to the V cache slot. The k and v columns of y are not written
// (attention reads k and v from the caches only).
__device__ __forceinline__ void rope_pair_store(__half* __restrict__ y, const RopeArgs& ra, __half h1, __half h2,
                                                int tok, int pos, int col0, int g, float inv_freq, int out) {
  const int D = ra.head_dim, half = D / 2;
  const int qk = (ra.heads + ra.kv_heads) * D;  // the permuted q and k columns
  const size_t slot = (size_t)(pos % ra.cap) * D;
  if (col0 < qk) {
    const int head = col0 / D, c = rope_pair_col(col0, g, D);  // pair (c, c + D/2) of the head
    __half r1, r2;
    rope_rotate_freq(h1, h2, pos, inv_freq, r1, r2);
    if (head < ra.heads) {
      __half* q = y + (size_t)tok * out + (size_t)head * D;
      q[c] = r1;
      q[c + half] = r2;
    } else {
      __half* k = ra.kc + (size_t)(head - ra.heads) * ra.cap * D + slot;
      k[c] = r1;
      k[c + half] = r2;
    }
  } else {
    // Rows g and g+8 lie in one v head (D is a multiple of 16 and stripes
    // start at multiples of 16).
    const int c = col0 - qk + g, head = c / D, d = c % D;
    __half* v = ra.vc + (size_t)head * ra.cap * D + slot;
    v[d] = h1;
    v[d + 8] = h2;
  }
}

}  // namespace awq
