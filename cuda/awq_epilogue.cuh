// Per-pair stores of the fused AWQ epilogues, shared by the mat-vec
// (awq_gemv.cu: rope_epilogue, silu_epilogue) and the GEMM (awq_gemm.cu:
// gemm with kEpiRope / kEpiSilu), so that both write the same bits as the
// unfused kernels (rope.cu, silu.cu). Both kernels end with, per lane, the
// rows g and g+8 of a stripe for one token: in the fused column orders
// (awq.go: ropeOrder, siluOrder) those two rows are one RoPE pair or one
// (gate, up) pair.
#pragma once
#include <cuda_fp16.h>

#include "awq_common.cuh"
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
// own columns of y (tokens, out), k to the K cache row slot_row (pos % cap,
// which the caller keeps without a division per pair); a v
// stripe keeps the file's order, so h1 and h2 are v columns d and d+8 of one
// head, copied to the V cache slot. The k and v columns of y are not written
// (attention reads k and v from the caches only).
__device__ __forceinline__ void rope_pair_store(__half* __restrict__ y, const RopeArgs& ra, __half h1, __half h2,
                                                int tok, int pos, int slot_row, int col0, int g, float inv_freq,
                                                int out) {
  const int D = ra.head_dim, half = D / 2;
  const int qk = (ra.heads + ra.kv_heads) * D;  // the permuted q and k columns
  const size_t slot = (size_t)slot_row * D;
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

// What a GEMM does with its fp32 sums (gemm_store's EPI): store y, or, on
// weights packed in a fused column order, the fused-SiLU or fused-RoPE
// epilogue (NOTES-gemm-epilogue.md).
constexpr int kEpiStore = 0, kEpiSilu = 1, kEpiRope = 2;

// gemm_store ends a GEMM warp (awq_gemm.cu's mma.sync kernel and
// awq_gemm_wg.sm90a.cu's wgmma kernel, whose accumulators have the same
// layout): acc[i][nt][v] is stripe sb+i's row g (+8 for v >= 2) for token
// nb + 8*nt + 2t (+1 for odd v). kEpiStore writes y (tokens, out); in the
// fused orders rows g and g+8 are one pair, so v and v+2 (v = 0, 1) are one
// token's pair, each rounded to fp16 as the plain store rounds it before the
// pair is combined: kEpiSilu writes the activations (tokens, out/2),
// kEpiRope q|k|v into y and the caches of ra.
// With PX, kEpiSilu writes each row's activations where xp_perm_pair
// puts them (the input of the x-producer GEMM's direct copies).
template <int EPI, int WS, int WT, bool PX = false>
__device__ __forceinline__ void gemm_store(const float (&acc)[WS][WT][4], __half* __restrict__ y, int sb, int nb,
                                           int g, int t, int tokens, int out, const RopeArgs& ra) {
  if constexpr (EPI == kEpiSilu) {
    // siluOrder: stripe s holds gate 8s..8s+7 in rows 0..7 and up in 8..15;
    // act gets silu_mul's value (silu.cuh: silu_gate).
    const int inter = out / 2;
#pragma unroll
    for (int i = 0; i < WS; i++) {
      const int j = (sb + i) * (kStripe / 2) + g;
      const int jy = PX ? 2 * xp_perm_pair(j >> 1) + (j & 1) : j;
#pragma unroll
      for (int nt = 0; nt < WT; nt++) {
#pragma unroll
        for (int v = 0; v < 2; v++) {
          const int tok = nb + nt * 8 + 2 * t + v;
          if (j < inter && tok < tokens)
            y[(size_t)tok * inter + jy] =
                silu_gate(__float2half_rn(acc[i][nt][v]), __float2half_rn(acc[i][nt][v + 2]));
        }
      }
    }
  } else if constexpr (EPI == kEpiRope) {
    // ropeOrder: rope_pair_store rotates and writes as rope_append does.
    // A thread's pairs in one stripe share the column pair, so its
    // frequency is computed once (v stripes compute an unused one).
    // A token's cache row (pos0 + tok) % cap is pos0 % cap + tok, less cap
    // where that passes the end: one division a thread rather than one a
    // pair (run 117: the divisions were about 9 of the 17 us the epilogue
    // added to the 12x128 q|k|v GEMM).
    const int pos0 = ra.params[kParamPos], row0 = pos0 % ra.cap;
#pragma unroll
    for (int i = 0; i < WS; i++) {
      const int col0 = (sb + i) * kStripe;
      const float inv_freq = rope_inv_freq(rope_pair_col(col0, g, ra.head_dim), ra.head_dim, ra.theta);
#pragma unroll
      for (int nt = 0; nt < WT; nt++) {
#pragma unroll
        for (int v = 0; v < 2; v++) {
          const int tok = nb + nt * 8 + 2 * t + v;
          int row = row0 + tok;
          while (row >= ra.cap) row -= ra.cap;
          if (col0 < out && tok < tokens)
            rope_pair_store(y, ra, __float2half_rn(acc[i][nt][v]), __float2half_rn(acc[i][nt][v + 2]), tok,
                            pos0 + tok, row, col0, g, inv_freq, out);
        }
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < WS; i++) {
#pragma unroll
      for (int nt = 0; nt < WT; nt++) {
#pragma unroll
        for (int v = 0; v < 4; v++) {
          const int col = (sb + i) * kStripe + g + (v >= 2 ? 8 : 0);
          const int tok = nb + nt * 8 + 2 * t + (v & 1);
          if (col < out && tok < tokens) y[(size_t)tok * out + col] = __float2half_rn(acc[i][nt][v]);
        }
      }
    }
  }
}

// gemm_store_staged is gemm_store for one stripe a warp (WS = 1) with the
// stores gathered, for kEpiStore and kEpiRope: each lane first writes its
// fp16 values (the same bits gemm_store would store) to buf, this warp's
// NT x 16 halves of shared memory, then the warp writes whole 16-byte
// pieces, 8 columns of a token, where gemm_store would have written them
// one half at a time. Nsight Compute on awq_gemm_xp (run 121) put about a
// tenth of the block's time in gemm_store's 2-byte stores, the store queue
// backing up. (kEpiSilu keeps gemm_store: its 8 activations a token are
// half a sector either way, and staging them made gate|up 1.6% slower in
// the engine, run 125.) In buf a token's row is two 16-byte units, rows g
// and g+8 of the stripe; unit u of row r sits at u ^ ((r >> 2) & 1), so
// that the four rows a store writes at once fall in different banks.
template <int EPI, int WT>
__device__ __forceinline__ void gemm_store_staged(const float (&acc)[1][WT][4], __half* __restrict__ y,
                                                  __half* buf, int stripe, int nb, int g, int t, int lane,
                                                  int tokens, int out, const RopeArgs& ra) {
  static_assert(EPI == kEpiStore || EPI == kEpiRope, "kEpiSilu keeps gemm_store");
  constexpr int NT = 8 * WT;
  const int col0 = stripe * kStripe;
  if (col0 >= out) return;  // a padding stripe: gemm_store writes nothing either
  auto at = [&](int r, int u) { return r * 16 + 8 * (u ^ ((r >> 2) & 1)); };
  int qk = 0, pos0 = 0, row0 = 0;
  float inv_freq = 0.f;
  if constexpr (EPI == kEpiRope) {
    qk = (ra.heads + ra.kv_heads) * ra.head_dim;
    pos0 = ra.params[kParamPos];
    row0 = pos0 % ra.cap;
    inv_freq = rope_inv_freq(rope_pair_col(col0, g, ra.head_dim), ra.head_dim, ra.theta);
  }
#pragma unroll
  for (int nt = 0; nt < WT; nt++) {
#pragma unroll
    for (int v = 0; v < 2; v++) {
      const int r = nt * 8 + 2 * t + v;
      const __half h1 = __float2half_rn(acc[0][nt][v]), h2 = __float2half_rn(acc[0][nt][v + 2]);
      if constexpr (EPI == kEpiRope) {
        __half o1 = h1, o2 = h2;
        if (col0 < qk) rope_rotate_freq(h1, h2, pos0 + nb + r, inv_freq, o1, o2);
        buf[at(r, 0) + g] = o1;
        buf[at(r, 1) + g] = o2;
      } else {
        buf[at(r, 0) + g] = h1;
        buf[at(r, 1) + g] = h2;
      }
    }
  }
  __syncwarp();
#pragma unroll 4
  for (int i = lane; i < NT * 2; i += 32) {
    const int r = i / 2, u = i % 2, tok = nb + r;
    if (tok >= tokens) break;
    const __half* src = buf + at(r, u);
    // dst and n: where the unit's 8 halves go and how many of them exist.
    __half* dst;
    int n = 8;
    if constexpr (EPI == kEpiRope) {
      const int D = ra.head_dim;
      int row = row0 + tok;
      while (row >= ra.cap) row -= ra.cap;
      if (col0 < qk) {
        const int head = col0 / D, c = rope_pair_col(col0, 0, D) + u * (D / 2);
        dst = head < ra.heads ? y + (size_t)tok * out + (size_t)head * D + c
                              : ra.kc + ((size_t)(head - ra.heads) * ra.cap + row) * D + c;
      } else {
        const int c = col0 - qk;
        dst = ra.vc + ((size_t)(c / D) * ra.cap + row) * D + c % D + 8 * u;
      }
    } else {
      dst = y + (size_t)tok * out + col0 + 8 * u;
      n = min(8, out - col0 - 8 * u);
    }
    if (n == 8 && (reinterpret_cast<uintptr_t>(dst) & 15) == 0) {
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
    } else {
      for (int k = 0; k < n; k++) dst[k] = src[k];
    }
  }
}

}  // namespace awq
