// Tensor-core attention for verify steps (1..16 tokens, head_dim 64 or 128)
// at long context: the same inputs, absolute key blocks and split partials
// as attn_prefill_body (attention.cu), so attn_reduce combines them
// unchanged, but laid out for few rows and many keys.
//
// A block takes one KV head, one tile of up to 64 rows (token x query head)
// and one absolute key block of B keys (split z covers [(lo/B + z)*B, +B)).
// Each of its 4 warps owns KW-key tiles of that block (warp w: keys
// k_begin + KW*(w + 4i)) and handles every m-tile of 16 rows that holds real
// rows, so a 1-token step (4 real rows) computes one m-tile, not four. The
// warps bring their K and V tiles into their own shared memory with 16-byte
// cp.async, all issued at once, so the whole block's keys are in flight
// together; V stays row-major and ldmatrix.trans gives the P V operand.
// The 4 warps' (m, l, O) partials are then combined in fixed warp order,
// through a scratch area, or, where the block computes one m-tile with one
// key tile a warp (steps of up to 16 rows at the 7B's window), through each
// warp's own K tile, which is dead by then: 69.6 KB of shared memory at
// head_dim 128 instead of 95.7, three blocks per SM instead of two.
//
// Batch invariance (a row's bits do not depend on the other rows of its
// step): the key blocks and each warp's keys are absolute; a row's mma
// results do not depend on the other rows of its m-tile; softmax reductions
// stay within the row's quad; a tile whose keys are all masked for a row
// leaves its (m, l, O) unchanged bit for bit (alpha = 1, p = 0, V finite),
// so skipping it in one step and computing it in another agree; and the
// float operations are spelled with rounding intrinsics, so no contraction
// depends on where the row sits.
#include "common.cuh"
#include "ptx.cuh"

constexpr int kVerifyWarps = 4;

// Dynamic shared memory of attn_verify_body<D, KW>; cuda/engine.go
// (verifySmem) computes the same. solo: one m-tile and one key tile a warp,
// the partials in the K tiles.
__host__ __device__ constexpr int verify_smem(int D, int KW, bool solo) {
  return kVerifyWarps * 2 * KW * (D + 8) * 2                // K and V tiles, each warp its own
         + (solo ? 0
                 : (kVerifyWarps - 1) * (D / 8) * 32 * 16   // O partials of warps 1..3
                       + (kVerifyWarps - 1) * 32 * 16);     // their m and l
}

// grid (row tiles of 64, kv_heads, splits), block 128, dynamic shared
// verify_smem(D, KW). Arguments and outputs as attn_prefill_body's;
// block_keys a multiple of 4*KW.
template <int D, int KW>
__device__ void attn_verify_body(const __half* __restrict__ qkv, const __half* __restrict__ kc,
                                 const __half* __restrict__ vc, const int* __restrict__ params,
                                 int tokens, int heads, int kv_heads, int cap, int window,
                                 float scale, int block_keys, float* __restrict__ ws_acc,
                                 float* __restrict__ ws_ml) {
  constexpr int KS = D + 8;        // K/V row stride in halves: ldmatrix and lds free of bank conflicts
  constexpr int NT = KW / 8;       // n-tiles of S
  constexpr int DT = D / 8;        // n-tiles of O
  constexpr int CH = KW * (D / 8); // 16-byte chunks of a K (or V) tile
  static_assert(KW % 16 == 0 && CH % 32 == 0 && DT % 2 == 0, "tile shape");
  static_assert(KW * KS * 2 >= (DT + 1) * 32 * 16, "a K tile holds a warp's partials");
  extern __shared__ __align__(16) unsigned char vsmem[];

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t4 = lane & 3;
  __half* Ks = reinterpret_cast<__half*>(vsmem) + warp * 2 * KW * KS;  // (KW, KS)
  __half* Vs = Ks + KW * KS;                                           // (KW, KS)
  const uint32_t ks_addr = (uint32_t)__cvta_generic_to_shared(Ks);
  const uint32_t vs_addr = (uint32_t)__cvta_generic_to_shared(Vs);

  const int G = heads / kv_heads;
  const int kv = blockIdx.y, z = blockIdx.z;
  const int nrows = tokens * G;
  const int row0 = blockIdx.x * 64;
  const int qstride = (heads + 2 * kv_heads) * D;
  const int pos0 = params[kParamPos];
  const int p_first = pos0 + row0 / G;
  const int p_last = pos0 + (min(row0 + 64, nrows) - 1) / G;
  const int lo = window > 0 ? max(0, p_first - window + 1) : 0;
  const int k_begin = (lo / block_keys + z) * block_keys;
  const int k_end = min(p_last + 1, k_begin + block_keys);
  const int ntw = block_keys / (kVerifyWarps * KW);  // key tiles per warp
  const int nmt = (min(64, nrows - row0) + 15) / 16;  // m-tiles holding real rows
  const bool solo = nmt == 1 && ntw == 1;

  uint32_t dyn;
  asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(dyn));
  if (dyn < (uint32_t)verify_smem(D, KW, solo) || block_keys <= 0 || block_keys % (kVerifyWarps * KW) != 0 ||
      blockDim.x != kVerifyWarps * 32 || (window > 0 && cap < KW))
    __trap();  // a launch the Go side sized wrongly: fail loudly, never read past the buffers
  // Warp w's (1..3) partials: O (DT, 32) in fragment layout, then m and l (32).
  float4* const part1 = reinterpret_cast<float4*>(vsmem + (solo ? 2 * KW * KS * 2 : kVerifyWarps * 2 * KW * KS * 2));
  const int part_stride = solo ? 2 * KW * KS * 2 / 16 : (DT + 1) * 32;  // float4s from warp w to w + 1
  auto part = [&](int w) { return part1 + (w - 1) * part_stride; };
  const size_t head_base = (size_t)kv * cap * D;
  const float sl2 = __fmul_rn(scale, 1.4426950408889634f);  // scores in log2 units

  // K then V of keys [k0, k0 + KW), each its own group so that scores can
  // start before V lands; zeros outside [lo, k_end), so masked keys never
  // bring NaN from stale slots into P V. Lanes 0-15 (D 128) take one key's
  // 256 bytes: coalesced.
  auto load_tile = [&](int k0) {
    constexpr int CPR = D / 8, RPC = 32 / CPR;  // chunks per key row, rows per 32 chunks
    static_assert(32 % CPR == 0, "a lane keeps its chunk column");
    const int cc = lane % CPR, j0 = lane / CPR;
    const int slot0 = (k0 + j0) % cap;  // later keys step from it, wrapping at most once (KW < cap)
#pragma unroll
    for (int half = 0; half < 2; half++) {
      const __half* src = (half ? vc : kc) + head_base + cc * 8;
      const uint32_t dst = (half ? vs_addr : ks_addr) + (j0 * KS + cc * 8) * 2;
#pragma unroll
      for (int c = 0; c < CH / 32; c++) {
        const int kp = k0 + j0 + RPC * c;
        const bool ok = kp >= lo && kp < k_end;
        const int slot = slot0 + RPC * c < cap ? slot0 + RPC * c : slot0 + RPC * c - cap;
        cp_async_16(dst + RPC * c * KS * 2, src + (ok ? slot * D : 0), ok ? 16 : 0);
      }
      cp_async_commit_group();
    }
  };

  // With one tile a warp, its loads go out before anything else and the tile
  // stays for every m-tile.
  auto live = [&](int k0) { return k0 < k_end && k0 + KW > lo; };  // warp-uniform
  if (ntw == 1 && live(k_begin + KW * warp)) load_tile(k_begin + KW * warp);

#pragma unroll 1
  for (int mt = 0; mt < nmt; mt++) {
    // This thread's two rows of the m-tile: g and g + 8.
    int rpos[2];
    bool rok[2];
    const __half* qrow[2];
#pragma unroll
    for (int h2 = 0; h2 < 2; h2++) {
      const int gr = row0 + mt * 16 + g + 8 * h2;
      rok[h2] = gr < nrows;
      const int gg = rok[h2] ? gr : 0;
      rpos[h2] = pos0 + gg / G;
      qrow[h2] = qkv + (size_t)(gg / G) * qstride + (size_t)(kv * G + gg % G) * D;
    }
    uint32_t qa[D / 16][4];  // Q as A fragments, one per 16 head dimensions
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++) {
      const int c = ks * 16 + t4 * 2;
      qa[ks][0] = *reinterpret_cast<const uint32_t*>(qrow[0] + c);
      qa[ks][1] = *reinterpret_cast<const uint32_t*>(qrow[1] + c);
      qa[ks][2] = *reinterpret_cast<const uint32_t*>(qrow[0] + c + 8);
      qa[ks][3] = *reinterpret_cast<const uint32_t*>(qrow[1] + c + 8);
    }
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    float o[DT][4];
#pragma unroll
    for (int dt = 0; dt < DT; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;

#pragma unroll 1
    for (int i = 0; i < ntw; i++) {
      const int k0 = k_begin + KW * (warp + kVerifyWarps * i);
      if (!live(k0)) continue;  // no key of the tile is visible
      if (ntw > 1) {
        __syncwarp();  // every lane done with the previous tile
        load_tile(k0);
      }
      cp_async_wait_group<1>();  // K landed (no-op for a tile already waited for)
      __syncwarp();

      // S = Q K^T for the tile's keys.
      float s[NT][4];
#pragma unroll
      for (int nt = 0; nt < NT; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < D / 16; ks++) {
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
          const __half* kr = Ks + (nt * 8 + g) * KS + ks * 16 + t4 * 2;
          mma_16816(s[nt], qa[ks], *reinterpret_cast<const uint32_t*>(kr),
                    *reinterpret_cast<const uint32_t*>(kr + 8));
        }
      }
      // Mask, online softmax (log2 units), rescale O.
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int nt = 0; nt < NT; nt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int h2 = e >> 1;
          const int kp = k0 + nt * 8 + t4 * 2 + (e & 1);
          const int p = rpos[h2];
          const bool ok = rok[h2] && kp >= lo && kp < k_end && kp <= p && (window <= 0 || kp > p - window);
          s[nt][e] = ok ? __fmul_rn(s[nt][e], sl2) : -INFINITY;
          mx[h2] = fmaxf(mx[h2], s[nt][e]);
        }
      }
      float alpha[2], mu[2];
#pragma unroll
      for (int h2 = 0; h2 < 2; h2++) {
        mx[h2] = fmaxf(mx[h2], __shfl_xor_sync(0xffffffffu, mx[h2], 1));
        mx[h2] = fmaxf(mx[h2], __shfl_xor_sync(0xffffffffu, mx[h2], 2));
        const float mn = fmaxf(m[h2], mx[h2]);
        mu[h2] = mn == -INFINITY ? 0.f : mn;
        alpha[h2] = exp2f(__fsub_rn(m[h2], mu[h2]));
        m[h2] = mn;
        l[h2] = __fmul_rn(l[h2], alpha[h2]);
      }
#pragma unroll
      for (int nt = 0; nt < NT; nt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          s[nt][e] = exp2f(__fsub_rn(s[nt][e], mu[e >> 1]));
          l[e >> 1] = __fadd_rn(l[e >> 1], s[nt][e]);
        }
      }
#pragma unroll
      for (int dt = 0; dt < DT; dt++) {
        o[dt][0] = __fmul_rn(o[dt][0], alpha[0]), o[dt][1] = __fmul_rn(o[dt][1], alpha[0]);
        o[dt][2] = __fmul_rn(o[dt][2], alpha[1]), o[dt][3] = __fmul_rn(o[dt][3], alpha[1]);
      }

      cp_async_wait_group<0>();  // V landed
      __syncwarp();
      // O += P V: S accumulators of n-tiles 2kk, 2kk+1 are P's A fragment;
      // ldmatrix.trans turns row-major V (key, d) into B fragments: matrix
      // q = lane/8 of the x4 is keys kk*16 + 8(q&1).., dims (dt + q/2)*8..
#pragma unroll
      for (int kk = 0; kk < KW / 16; kk++) {
        uint32_t pa[4] = {pack_half2(s[2 * kk][0], s[2 * kk][1]), pack_half2(s[2 * kk][2], s[2 * kk][3]),
                          pack_half2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                          pack_half2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
        const int vrow = kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7);
#pragma unroll
        for (int dt = 0; dt < DT; dt += 2) {
          uint32_t b[4];
          ldsm_x4_trans(b, vs_addr + (vrow * KS + (dt + (lane >> 4)) * 8) * 2);
          mma_16816(o[dt], pa, b[0], b[1]);
          mma_16816(o[dt + 1], pa, b[2], b[3]);
        }
      }
    }

    // l summed over the quad (every lane of the quad gets the same bits).
#pragma unroll
    for (int h2 = 0; h2 < 2; h2++) {
      l[h2] = __fadd_rn(l[h2], __shfl_xor_sync(0xffffffffu, l[h2], 1));
      l[h2] = __fadd_rn(l[h2], __shfl_xor_sync(0xffffffffu, l[h2], 2));
    }

    // Combine the warps' partials in fixed order 0, 1, 2, 3: warps 1..3 leave
    // theirs in shared memory in fragment layout, warp 0 reads them back.
    if (warp > 0) {
      __syncwarp();  // solo: every lane done with the K tile the partials overwrite
      float4* dst = part(warp) + lane;
#pragma unroll
      for (int dt = 0; dt < DT; dt++) dst[dt * 32] = make_float4(o[dt][0], o[dt][1], o[dt][2], o[dt][3]);
      dst[DT * 32] = make_float4(m[0], m[1], l[0], l[1]);
    }
    __syncthreads();
    if (warp == 0) {
      float wt[2][kVerifyWarps], M[2], L[2];
#pragma unroll
      for (int h2 = 0; h2 < 2; h2++) {
        float mw[kVerifyWarps], lw[kVerifyWarps];
        mw[0] = m[h2], lw[0] = l[h2];
#pragma unroll
        for (int w = 1; w < kVerifyWarps; w++) {
          const float4 v = part(w)[DT * 32 + lane];
          mw[w] = h2 ? v.y : v.x;
          lw[w] = h2 ? v.w : v.z;
        }
        M[h2] = fmaxf(fmaxf(mw[0], mw[1]), fmaxf(mw[2], mw[3]));
#pragma unroll
        for (int w = 0; w < kVerifyWarps; w++) wt[h2][w] = mw[w] == -INFINITY ? 0.f : exp2f(__fsub_rn(mw[w], M[h2]));
        L[h2] = __fmul_rn(wt[h2][0], lw[0]);
#pragma unroll
        for (int w = 1; w < kVerifyWarps; w++) L[h2] = __fmaf_rn(wt[h2][w], lw[w], L[h2]);
      }
#pragma unroll
      for (int dt = 0; dt < DT; dt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) o[dt][e] = __fmul_rn(wt[e >> 1][0], o[dt][e]);
#pragma unroll
        for (int w = 1; w < kVerifyWarps; w++) {
          const float4 v = part(w)[dt * 32 + lane];
          o[dt][0] = __fmaf_rn(wt[0][w], v.x, o[dt][0]);
          o[dt][1] = __fmaf_rn(wt[0][w], v.y, o[dt][1]);
          o[dt][2] = __fmaf_rn(wt[1][w], v.z, o[dt][2]);
          o[dt][3] = __fmaf_rn(wt[1][w], v.w, o[dt][3]);
        }
      }
      // The split's partial: m back to natural-log units, as attn_reduce wants.
#pragma unroll
      for (int h2 = 0; h2 < 2; h2++) {
        const int gr = row0 + mt * 16 + g + 8 * h2;
        if (gr >= nrows) continue;
        const size_t orow = (size_t)(gr / G) * heads + kv * G + gr % G;
        const size_t oo = (size_t)z * tokens * heads + orow;
#pragma unroll
        for (int dt = 0; dt < DT; dt++)
          *reinterpret_cast<float2*>(ws_acc + oo * D + dt * 8 + t4 * 2) = make_float2(o[dt][2 * h2], o[dt][2 * h2 + 1]);
        if (t4 == 0) {
          ws_ml[oo * 2] = M[h2] == -INFINITY ? -INFINITY : __fmul_rn(M[h2], 0.6931471805599453f);
          ws_ml[oo * 2 + 1] = L[h2];
        }
      }
    }
    __syncthreads();  // the partials read before the next m-tile writes them
  }
}

// attn_verify_d*: 32 keys a warp, key blocks of 128 (at head_dim 128
// 95.7 KB of shared memory, 69.6 KB solo: every supported chip; at most 168
// registers, so that three blocks fit an SM); attn_verify_k64_d*: 64 keys a
// warp, key blocks of 256 (165 KB at head_dim 128, 139 KB solo: sm_80 and
// sm_90 only).
#define ATTN_VERIFY(NAME, D, KW, MINB)                                                       \
  extern "C" __global__ void __launch_bounds__(kVerifyWarps * 32, MINB) NAME(                \
      const __half* __restrict__ qkv, const __half* __restrict__ kc,                         \
      const __half* __restrict__ vc, const int* __restrict__ params, int tokens, int heads,  \
      int kv_heads, int cap, int window, float scale, int block_keys,                        \
      float* __restrict__ ws_acc, float* __restrict__ ws_ml) {                               \
    grid_dep_launch();                                                                       \
    grid_dep_wait();                                                                         \
    attn_verify_body<D, KW>(qkv, kc, vc, params, tokens, heads, kv_heads, cap, window, scale, \
                            block_keys, ws_acc, ws_ml);                                      \
  }
ATTN_VERIFY(attn_verify_d64, 64, 32, 3)
ATTN_VERIFY(attn_verify_d128, 128, 32, 3)
ATTN_VERIFY(attn_verify_k64_d64, 64, 64, 1)
ATTN_VERIFY(attn_verify_k64_d128, 128, 64, 1)
