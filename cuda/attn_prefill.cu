// Prefill attention on the tensor cores, second generation (attn_prefill2_d*):
// the function, arguments, splits and partials of attention.cu's
// attn_prefill_body (attn_reduce combines them unchanged), reorganized the
// FlashAttention-2 way for chunks of many tokens:
//   - 8 warps x 16 rows = 128 rows (token x query head of one KV group) per
//     block, so each K/V tile in shared memory serves twice the rows;
//   - K and V tiles of 64 keys arrive by cp.async (16-byte copies, zero-fill
//     outside the block's keys, so stale slots never bring NaN), double
//     buffered: tile i+1 is in flight while tile i is computed;
//   - both stay row-major in shared memory and reach the mma operands by
//     ldmatrix (K) and ldmatrix.trans (V): no scalar transpose;
//   - masks are evaluated only on tiles that cross the causal diagonal, the
//     window edge or the split's end; a warp skips a tile none of its rows
//     can see.
// Row padding of 8 halves makes every ldmatrix phase (8 rows of 16 bytes)
// hit 8 distinct 16-byte bank groups. Dynamic shared memory:
// prefill2_smem(D) (69,632 bytes for D = 128, above the 48 KB default: the
// Go launcher raises the limit per kernel).
#include "common.cuh"

constexpr int kP2Warps = 8;
constexpr int kP2Rows = kP2Warps * 16;
constexpr int kP2Keys = 64;
constexpr int kP2Stages = 2;

// Dynamic shared memory of attn_prefill2_d<D>; engine.go's prefill2Smem is
// the same formula.
__host__ __device__ constexpr int prefill2_smem(int D) {
  return kP2Stages * 2 * kP2Keys * (D + 8) * 2;
}

__device__ __forceinline__ void p2_mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t p2_pack(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

__device__ __forceinline__ void p2_ldsm_x4(uint32_t* r, uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

__device__ __forceinline__ void p2_ldsm_x4_trans(uint32_t* r, uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// 16 bytes global -> shared; src_bytes 0 writes zeros (src must still be a
// valid address).
__device__ __forceinline__ void p2_cp16(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void p2_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void p2_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// grid (ceil(tokens*G / 128), kv_heads, splits), block 256, dynamic shared
// prefill2_smem(D). Arguments and outputs as attn_prefill_body's:
// qkv (tokens, (heads + 2*kv_heads) * D) fp16, q already rotated;
// kc, vc (kv_heads, cap, D) fp16 cache ring (slot = pos % cap);
// block_keys: B > 0 for absolute key blocks (a multiple of 64), 0 to share
// the tile's visible keys evenly among the splits (whole 64-key tiles);
// ws_acc (splits, tokens*heads, D) fp32 unnormalized outputs;
// ws_ml (splits, tokens*heads, 2) fp32: max in natural-log units, sum.
template <int D>
__device__ void attn_prefill2_body(const __half* __restrict__ qkv, const __half* __restrict__ kc,
                                   const __half* __restrict__ vc, const int* __restrict__ params,
                                   int tokens, int heads, int kv_heads, int cap, int window,
                                   float scale, int block_keys, float* __restrict__ ws_acc,
                                   float* __restrict__ ws_ml) {
  static_assert(D % 16 == 0 && D >= 32, "head_dim a multiple of 16");
  constexpr int KS = D + 8;                        // K and V row stride in halves
  constexpr int TILE = kP2Keys * KS;               // halves of one K (or V) tile
  constexpr int CHR = D / 8;                       // 16-byte chunks per key row
  constexpr int CPT = kP2Keys * CHR / (kP2Warps * 32);  // chunks per thread per tile
  static_assert(kP2Keys * CHR % (kP2Warps * 32) == 0, "whole chunks per thread");
  extern __shared__ __align__(16) unsigned char p2_smem[];
  __half* const sK = reinterpret_cast<__half*>(p2_smem);  // (stages, 64, KS)
  __half* const sV = sK + kP2Stages * TILE;               // (stages, 64, KS)
  const uint32_t sK_addr = static_cast<uint32_t>(__cvta_generic_to_shared(sK));
  const uint32_t sV_addr = static_cast<uint32_t>(__cvta_generic_to_shared(sV));

  const int G = heads / kv_heads;
  const int kv = blockIdx.y, z = blockIdx.z, nsplit = gridDim.z;
  const int nrows = tokens * G;
  const int row0 = blockIdx.x * kP2Rows;
  const int qstride = (heads + 2 * kv_heads) * D;
  const int pos0 = params[kParamPos];
  const int p_first = pos0 + row0 / G;
  const int p_last = pos0 + (min(row0 + kP2Rows, nrows) - 1) / G;
  const int lo = window > 0 ? max(0, p_first - window + 1) : 0;
  int k_begin, k_end;  // [k_begin, k_end): this block's keys, as attn_prefill_body
  if (block_keys > 0) {
    k_begin = (lo / block_keys + z) * block_keys;
    k_end = min(p_last + 1, k_begin + block_keys);
  } else {
    const int n = p_last - lo + 1;
    int per = (n + nsplit - 1) / nsplit;
    per = (per + kP2Keys - 1) / kP2Keys * kP2Keys;
    k_begin = lo + z * per;
    k_end = min(p_last + 1, k_begin + per);
  }

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3;
  // This thread's two rows, g and g + 8 of the warp's 16; rows past the
  // chunk repeat the last row (computed, never stored).
  int rpos[2];
  const __half* qrow[2];
#pragma unroll
  for (int h2 = 0; h2 < 2; h2++) {
    const int gr = min(row0 + warp * 16 + g + 8 * h2, nrows - 1);
    rpos[h2] = pos0 + gr / G;
    qrow[h2] = qkv + (size_t)(gr / G) * qstride + (size_t)(kv * G + gr % G) * D;
  }
  // Positions of the warp's first and last rows, for skipping tiles.
  const int w_first = pos0 + min(row0 + warp * 16, nrows - 1) / G;
  const int w_last = pos0 + min(row0 + warp * 16 + 15, nrows - 1) / G;

  // Key/value tile loads: thread tid copies chunks tid + c*256 (key
  // idx / CHR, 16-byte column idx % CHR): consecutive threads read
  // consecutive 16 bytes of a key row.
  const size_t head_base = (size_t)kv * cap * D;
  auto issue = [&](int k0, int stage) {
#pragma unroll
    for (int c = 0; c < CPT; c++) {
      const int idx = tid + c * kP2Warps * 32;
      const int j = idx / CHR, cc = idx % CHR, kp = k0 + j;
      const bool in = kp >= lo && kp < k_end;  // absolute blocks may start below lo
      const size_t off = head_base + (in ? (size_t)(kp % cap) * D : 0) + cc * 8;
      const uint32_t so = (uint32_t)((stage * TILE + j * KS + cc * 8) * 2);
      p2_cp16(sK_addr + so, kc + off, in ? 16 : 0);
      p2_cp16(sV_addr + so, vc + off, in ? 16 : 0);
    }
  };
  const int ntiles = k_begin < k_end ? (k_end - k_begin + kP2Keys - 1) / kP2Keys : 0;
  if (ntiles > 0) issue(k_begin, 0);
  p2_commit();

  // Q as A fragments, one per 16 head dimensions (read once, straight from
  // global memory while the first tile is in flight).
  uint32_t qa[D / 16][4];
#pragma unroll
  for (int ks = 0; ks < D / 16; ks++) {
    const int c = ks * 16 + t4 * 2;
    qa[ks][0] = *reinterpret_cast<const uint32_t*>(qrow[0] + c);
    qa[ks][1] = *reinterpret_cast<const uint32_t*>(qrow[1] + c);
    qa[ks][2] = *reinterpret_cast<const uint32_t*>(qrow[0] + c + 8);
    qa[ks][3] = *reinterpret_cast<const uint32_t*>(qrow[1] + c + 8);
  }
  const float sl2 = scale * 1.4426950408889634f;  // scores in log2 units
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  float o[D / 8][4];
#pragma unroll
  for (int dt = 0; dt < D / 8; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;

  // ldmatrix row addresses (bytes within a stage). K, x4 over key n-tiles
  // 2np, 2np+1 and dims ks*16 + {0, 8}: lanes 8i..8i+7 address matrix i =
  // (key half lane>>4, dim half (lane>>3)&1), giving b0, b1 of n-tile 2np
  // then of 2np+1. V (transposed load), x4 over keys kk*16 + {0, 8} and dim
  // tiles 2dp, 2dp+1: matrix i = (key half (lane>>3)&1, dim tile lane>>4),
  // giving b0, b1 of dim tile 2dp then of 2dp+1.
  const uint32_t k_lane = (uint32_t)((((lane >> 4) * 8 + (lane & 7)) * KS + ((lane >> 3) & 1) * 8) * 2);
  const uint32_t v_lane = (uint32_t)(((((lane >> 3) & 1) * 8 + (lane & 7)) * KS + (lane >> 4) * 8) * 2);

  for (int it = 0; it < ntiles; it++) {
    const int k0 = k_begin + it * kP2Keys, stage = it & 1;
    if (it + 1 < ntiles) issue(k0 + kP2Keys, stage ^ 1);
    p2_commit();
    p2_wait<1>();  // tile it has landed (this thread's copies)
    __syncthreads();  // ... and everyone's

    // Skip a tile no row of this warp can see (warp-uniform).
    const bool seen = k0 <= w_last && (window <= 0 || k0 + kP2Keys - 1 > w_first - window);
    if (seen) {
      const uint32_t kb = sK_addr + (uint32_t)(stage * TILE * 2) + k_lane;
      const uint32_t vb = sV_addr + (uint32_t)(stage * TILE * 2) + v_lane;
      float s[kP2Keys / 8][4];
#pragma unroll
      for (int nt = 0; nt < kP2Keys / 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < D / 16; ks++) {
#pragma unroll
        for (int np = 0; np < kP2Keys / 16; np++) {
          uint32_t b[4];
          p2_ldsm_x4(b, kb + (uint32_t)((np * 16 * KS + ks * 16) * 2));
          p2_mma(s[2 * np], qa[ks], b[0], b[1]);
          p2_mma(s[2 * np + 1], qa[ks], b[2], b[3]);
        }
      }
      // Masks only where some key of the tile is hidden from some row of
      // the block: the causal diagonal, the window's edge, the split's end.
      const bool full = k0 + kP2Keys - 1 <= p_first && k0 + kP2Keys <= k_end &&
                        (window <= 0 || k0 > p_last - window);
      float mt[2] = {-INFINITY, -INFINITY};
      if (full) {
#pragma unroll
        for (int nt = 0; nt < kP2Keys / 8; nt++) {
#pragma unroll
          for (int e = 0; e < 4; e++) {
            s[nt][e] *= sl2;
            mt[e >> 1] = fmaxf(mt[e >> 1], s[nt][e]);
          }
        }
      } else {
#pragma unroll
        for (int nt = 0; nt < kP2Keys / 8; nt++) {
#pragma unroll
          for (int e = 0; e < 4; e++) {
            const int kp = k0 + nt * 8 + t4 * 2 + (e & 1);
            const int p = rpos[e >> 1];
            const bool ok = kp < k_end && kp <= p && (window <= 0 || kp > p - window);
            s[nt][e] = ok ? s[nt][e] * sl2 : -INFINITY;
            mt[e >> 1] = fmaxf(mt[e >> 1], s[nt][e]);
          }
        }
      }
      // Online softmax (log2 units), rescale O.
      float alpha[2], mu[2];
#pragma unroll
      for (int h2 = 0; h2 < 2; h2++) {
        mt[h2] = fmaxf(mt[h2], __shfl_xor_sync(0xffffffffu, mt[h2], 1));
        mt[h2] = fmaxf(mt[h2], __shfl_xor_sync(0xffffffffu, mt[h2], 2));
        const float mn = fmaxf(m[h2], mt[h2]);
        mu[h2] = mn == -INFINITY ? 0.f : mn;
        alpha[h2] = exp2f(m[h2] - mu[h2]);
        m[h2] = mn;
        l[h2] *= alpha[h2];
      }
#pragma unroll
      for (int nt = 0; nt < kP2Keys / 8; nt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          s[nt][e] = exp2f(s[nt][e] - mu[e >> 1]);
          l[e >> 1] += s[nt][e];
        }
      }
#pragma unroll
      for (int dt = 0; dt < D / 8; dt++) {
        o[dt][0] *= alpha[0], o[dt][1] *= alpha[0];
        o[dt][2] *= alpha[1], o[dt][3] *= alpha[1];
      }
      // O += P V: the S accumulators of n-tiles 2kk, 2kk+1 are P's A fragment.
#pragma unroll
      for (int kk = 0; kk < kP2Keys / 16; kk++) {
        const uint32_t pa[4] = {p2_pack(s[2 * kk][0], s[2 * kk][1]), p2_pack(s[2 * kk][2], s[2 * kk][3]),
                                p2_pack(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                p2_pack(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int dp = 0; dp < D / 16; dp++) {
          uint32_t b[4];
          p2_ldsm_x4_trans(b, vb + (uint32_t)((kk * 16 * KS + dp * 16) * 2));
          p2_mma(o[2 * dp], pa, b[0], b[1]);
          p2_mma(o[2 * dp + 1], pa, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // the stage is free for tile it + 2
  }

  // Partials: m back to natural-log units; l summed over the quad.
#pragma unroll
  for (int h2 = 0; h2 < 2; h2++) {
    l[h2] += __shfl_xor_sync(0xffffffffu, l[h2], 1);
    l[h2] += __shfl_xor_sync(0xffffffffu, l[h2], 2);
    const int gr = row0 + warp * 16 + g + 8 * h2;
    if (gr >= nrows) continue;
    const size_t orow = (size_t)(gr / G) * heads + kv * G + gr % G;
    const size_t oo = (size_t)z * tokens * heads + orow;
#pragma unroll
    for (int dt = 0; dt < D / 8; dt++)
      *reinterpret_cast<float2*>(ws_acc + oo * D + dt * 8 + t4 * 2) = make_float2(o[dt][2 * h2], o[dt][2 * h2 + 1]);
    if (t4 == 0) {
      ws_ml[oo * 2] = m[h2] == -INFINITY ? -INFINITY : m[h2] * 0.6931471805599453f;
      ws_ml[oo * 2 + 1] = l[h2];
    }
  }
}

#define ATTN_PREFILL2(D)                                                                     \
  extern "C" __global__ void __launch_bounds__(kP2Warps * 32, 1) attn_prefill2_d##D(         \
      const __half* __restrict__ qkv, const __half* __restrict__ kc,                         \
      const __half* __restrict__ vc, const int* __restrict__ params, int tokens, int heads,  \
      int kv_heads, int cap, int window, float scale, int block_keys,                        \
      float* __restrict__ ws_acc, float* __restrict__ ws_ml) {                               \
    attn_prefill2_body<D>(qkv, kc, vc, params, tokens, heads, kv_heads, cap, window, scale,  \
                          block_keys, ws_acc, ws_ml);                                        \
  }
ATTN_PREFILL2(64)
ATTN_PREFILL2(128)
