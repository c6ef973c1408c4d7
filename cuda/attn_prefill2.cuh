// Prefill attention on the tensor cores, second generation
// (attn_prefill2_d*, attn_prefill2q_d*): the function, arguments, splits and
// partials of attention.cu's attn_prefill_body (attn_reduce combines them
// unchanged), reorganized the FlashAttention-2 way for chunks of many tokens:
//   - 128 rows (token x query head of one KV group) per block, so each K/V
//     tile in shared memory serves twice attn_prefill's 64 rows: 8 warps x
//     16 rows (attn_prefill2), or 4 warps x 32 rows with Q in shared memory
//     (attn_prefill2q: each K/V fragment feeds two mma);
//   - K and V tiles (64 or 32 keys) arrive by cp.async (16-byte copies,
//     zero-fill outside the block's keys, so stale slots never bring NaN),
//     double buffered: tile i+1 is in flight while tile i is computed;
//   - both stay row-major in shared memory and reach the mma operands by
//     ldmatrix (K) and ldmatrix.trans (V): no scalar transpose;
//   - masks are evaluated only on tiles that cross the causal diagonal, the
//     window's edge or the split's end; a warp skips a tile none of its
//     rows can see.
// Row padding of 8 halves makes every ldmatrix phase (8 rows of 16 bytes)
// hit 8 distinct 16-byte bank groups. Dynamic shared memory prefill2_smem
// (69,632 bytes for head dim 128, above the 48 KB default: the Go launcher
// raises the limit per kernel).
#pragma once

#include "attn_combine.cuh"
#include "common.cuh"
#include "ptx.cuh"
#include "wgmma.cuh"

constexpr int kP2Warps = 8;
constexpr int kP2Rows = kP2Warps * 16;
constexpr int kP2Stages = 2;

// Dynamic shared memory of attn_prefill2<D, MW, KEYS>: two stages of a K
// and a V tile of KEYS keys, and with MW == 2 the block's Q rows;
// engine.go's prefill2Smem is the same formula.
__host__ __device__ constexpr int prefill2_smem(int D, int MW, int KEYS) {
  return (kP2Stages * 2 * KEYS + (MW == 2 ? kP2Rows : 0)) * (D + 8) * 2;
}

// The WG body's stages: tiles i-1..i+2 are live while tile i's softmax
// runs (tile i-1's P V, tile i+1's S, tile i+2 landing), so tile i+3 is
// copied into a fifth (see below).
constexpr int kWgStages = 5;

// Dynamic shared memory of the WG body (attn_prefill_wg.sm90a.cu): the
// stages' K and V tiles unpadded, plus room to align them to 1024 bytes.
__host__ __device__ constexpr int prefill_wg_smem(int D, int KEYS) { return kWgStages * 2 * KEYS * D * 2 + 1024; }

// exp2_ftz: exp2f without its care for results under 2^-126 (a compare and
// two predicated multiplies each), which it flushes to zero. For P that
// changes no bit of the output: such a P is zero once packed to fp16, and
// l, to which it is added, reaches at least 1 in this tile (the row's
// largest score has P = 1), where terms that small are far below half an
// ulp. alpha keeps exp2f.
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// max_tree: the largest of u[0..N), by a tree of depth log2 N.
template <int N>
__device__ __forceinline__ float max_tree(const float* u) {
  if constexpr (N == 1)
    return u[0];
  else
    return fmaxf(max_tree<N / 2>(u), max_tree<N - N / 2>(u + N / 2));
}

// p2_softmax: one tile's masks and online softmax (log2 units) on the
// scores s of a warp's rows, for both bodies; al gets O's rescale, which
// the caller applies (the WG body once the last tile's P V is in).
template <int MW, int KEYS>
__device__ __forceinline__ void p2_softmax(float (&s)[MW][KEYS / 8][4], float (&m)[MW][2], float (&l)[MW][2],
                                           float (&al)[MW][2], const int (&rpos)[MW][2], int k0, int k_end,
                                           int window, int p_first, int p_last, int t4, float sl2) {
  // Masks only where some key of the tile is hidden from some row of
  // the block: the causal diagonal, the window's edge, the split's end.
  const bool full = k0 + KEYS - 1 <= p_first && k0 + KEYS <= k_end &&
                    (window <= 0 || k0 > p_last - window);
  float mt[MW][2];
  if (full) {
    // The row maxima of the raw scores by a tree, scaled once: scaling by
    // sl2 > 0 and rounding are monotone, so this is the maximum of the
    // scaled scores, bit for bit, without a chain of KEYS / 4 dependent
    // compares.
#pragma unroll
    for (int mi = 0; mi < MW; mi++) {
#pragma unroll
      for (int h2 = 0; h2 < 2; h2++) {
        float u[KEYS / 8];
#pragma unroll
        for (int nt = 0; nt < KEYS / 8; nt++) u[nt] = fmaxf(s[mi][nt][2 * h2], s[mi][nt][2 * h2 + 1]);
        mt[mi][h2] = max_tree<KEYS / 8>(u) * sl2;
      }
#pragma unroll
      for (int nt = 0; nt < KEYS / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[mi][nt][e] *= sl2;
    }
  } else {
#pragma unroll
    for (int mi = 0; mi < MW; mi++) {
      mt[mi][0] = mt[mi][1] = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < KEYS / 8; nt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int kp = k0 + nt * 8 + t4 * 2 + (e & 1);
          const int p = rpos[mi][e >> 1];
          const bool ok = kp < k_end && kp <= p && (window <= 0 || kp > p - window);
          s[mi][nt][e] = ok ? s[mi][nt][e] * sl2 : -INFINITY;
          mt[mi][e >> 1] = fmaxf(mt[mi][e >> 1], s[mi][nt][e]);
        }
      }
    }
  }
  // Online softmax (log2 units).
#pragma unroll
  for (int mi = 0; mi < MW; mi++) {
    float alpha[2], mu[2];
#pragma unroll
    for (int h2 = 0; h2 < 2; h2++) {
      float t = mt[mi][h2];
      t = fmaxf(t, __shfl_xor_sync(0xffffffffu, t, 1));
      t = fmaxf(t, __shfl_xor_sync(0xffffffffu, t, 2));
      const float mn = fmaxf(m[mi][h2], t);
      mu[h2] = mn == -INFINITY ? 0.f : mn;
      alpha[h2] = exp2f(m[mi][h2] - mu[h2]);
      m[mi][h2] = mn;
      l[mi][h2] *= alpha[h2];
    }
#pragma unroll
    for (int nt = 0; nt < KEYS / 8; nt++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        s[mi][nt][e] = exp2_ftz(s[mi][nt][e] - mu[e >> 1]);
        l[mi][e >> 1] += s[mi][nt][e];
      }
    }
    al[mi][0] = alpha[0], al[mi][1] = alpha[1];
  }
}

// grid (ceil(tokens*G / 128), kv_heads, splits), block 32 * kP2Rows / (16*MW),
// dynamic shared prefill2_smem(D, MW, KEYS). Arguments and outputs as
// attn_prefill_body's:
// qkv (tokens, (heads + 2*kv_heads) * D) fp16, q already rotated;
// kc, vc (kv_heads, cap, D) fp16 cache ring (slot = pos % cap);
// block_keys: B > 0 for absolute key blocks (a multiple of 64), 0 to share
// the tile's visible keys evenly among the splits (whole key tiles);
// ws_acc (splits, tokens*heads, D) fp32 unnormalized outputs;
// ws_ml (splits, tokens*heads, 2) fp32: max in natural-log units, sum.
// MW is the 16-row m-tiles of each warp: 1 (8 warps, Q fragments held in
// registers for the whole loop) or 2 (4 warps, FlashAttention-2's layout:
// Q in shared memory, reloaded by ldmatrix each tile, so each K and V
// fragment feeds two mma: a quarter less shared-memory traffic per row and
// key with 32-key tiles). KEYS is the key tile: 64 for MW == 1,
// 32 for MW == 2 (64 spills there: 255 registers).
//
// ROWS is the rows of a block (kP2Rows for prefill chunks; 64 for verify
// steps, whose 4..64 rows would leave half a 128-row block idle). EARLY
// (verify steps, a block's keys in at most two tiles): the copies of keys
// written by earlier steps (positions before the step's first, which the
// step's own q|k|v kernel does not touch; the ring holds the window plus a
// chunk, so their slots are not reused by this step) and the zero fills are
// issued before grid_dep_wait, so they travel while the previous kernel
// drains; the step's own keys, Q and everything else wait. The body then
// calls grid_dep_wait itself.
//
// DIRECT (prefill chunks planned with one split, gridDim.z == 1): instead
// of the partials, the block writes out (tokens, heads*D) fp16, what
// attn_reduce would make of them (same operations on the same values, see
// the end), and leaves ws_acc and ws_ml alone.
//
// WG (sm_90a only: attn_prefill_wg.sm90a.cu): each warpgroup's four warps
// (64 rows) compute S = Q K^T and O += P V with wgmma instead of mma.sync
// and ldmatrix. The A operands
// are the same registers (wgmma's A fragment per warp is mma.sync's), the
// accumulators the same fragments, and the k-steps are added in the same
// order, so the bits are those of the mma.sync body. K and V tiles lie
// unpadded in wgmma's 128-byte swizzled layout: per 64 head dims a block
// of KEYS rows of 128 bytes, 16-byte chunk c of key j at chunk c ^ (j % 8)
// (K is B K-major for S, V B N-major for O). Every warpgroup computes
// every tile of the block: where none of its rows sees a key of the tile,
// the tile is masked whole, which leaves m, l and O as they were (as for
// a warp of attn_prefill2 that sees none of a tile's keys). Pipeline (its
// own loop): tile i+1's S is issued before tile i's softmax and runs under
// it, with tile i-1's P V; both are waited for before O is rescaled and
// tile i's P V issued. Tile i+3 is copied after the barrier of tile i+1's
// arrival, into the stage of tile i-2, whose P V every warpgroup waited
// for during tile i-1.
template <int D, int MW, int KEYS, int ROWS = kP2Rows, bool EARLY = false, bool DIRECT = false, bool WG = false>
__device__ void attn_prefill2_body(const __half* __restrict__ qkv, const __half* __restrict__ kc,
                                   const __half* __restrict__ vc, const int* __restrict__ params,
                                   int tokens, int heads, int kv_heads, int cap, int window,
                                   float scale, int block_keys, float* __restrict__ ws_acc,
                                   float* __restrict__ ws_ml, __half* __restrict__ out = nullptr) {
  static_assert(D % 16 == 0 && D >= 32, "head_dim a multiple of 16");
  static_assert(MW == 1 || MW == 2, "one or two m-tiles per warp");
  constexpr int WARPS = ROWS / (16 * MW);
  constexpr int NT = WARPS * 32;
  constexpr int KS = D + 8;                        // K, V and Q row stride in halves
  constexpr int TILE = KEYS * KS;               // halves of one K (or V) tile
  constexpr int CHR = D / 8;                       // 16-byte chunks per row
  constexpr int CPT = KEYS * CHR / NT;          // K (or V) chunks per thread per tile
  static_assert(KEYS * CHR % NT == 0 && ROWS * CHR % NT == 0, "whole chunks per thread");
  static_assert(!EARLY || MW == 1, "early copies with Q in registers only");
  static_assert(!WG || (MW == 1 && KEYS == 64 && ROWS % 64 == 0 && D == 128 && !EARLY),
                "wgmma: warpgroups of 64 rows, 64-key tiles, head dim 128 (attn_prefill_wg.sm90a.cu)");
  extern __shared__ __align__(16) unsigned char p2_smem[];
  __half* const sK = reinterpret_cast<__half*>(p2_smem);  // (stages, KEYS, KS)
  __half* const sV = sK + kP2Stages * TILE;               // (stages, KEYS, KS)
  __half* const sQ = sV + kP2Stages * TILE;               // (128, KS) when MW == 2
  // WG: (stages, D/64, KEYS, 64) halves each, swizzled, from 1024 bytes up.
  constexpr int WTILE = KEYS * D * 2;  // bytes of one K (or V) tile
  const uint32_t sWG = (static_cast<uint32_t>(__cvta_generic_to_shared(p2_smem)) + 1023) & ~1023u;
  const uint32_t sK_addr = WG ? sWG : static_cast<uint32_t>(__cvta_generic_to_shared(sK));
  const uint32_t sV_addr = WG ? sWG + kWgStages * WTILE : static_cast<uint32_t>(__cvta_generic_to_shared(sV));
  const uint32_t sQ_addr = static_cast<uint32_t>(__cvta_generic_to_shared(sQ));

  const int G = heads / kv_heads;
  const int kv = blockIdx.y, z = blockIdx.z, nsplit = gridDim.z;
  const int nrows = tokens * G;
  const int row0 = blockIdx.x * ROWS;
  const int qstride = (heads + 2 * kv_heads) * D;
  const int pos0 = params[kParamPos];
  const int p_first = pos0 + row0 / G;
  const int p_last = pos0 + (min(row0 + ROWS, nrows) - 1) / G;
  const int lo = window > 0 ? max(0, p_first - window + 1) : 0;
  int k_begin, k_end;  // [k_begin, k_end): this block's keys, as attn_prefill_body
  if (block_keys > 0) {
    k_begin = (lo / block_keys + z) * block_keys;
    k_end = min(p_last + 1, k_begin + block_keys);
  } else {
    const int n = p_last - lo + 1;
    int per = (n + nsplit - 1) / nsplit;
    per = (per + KEYS - 1) / KEYS * KEYS;
    k_begin = lo + z * per;
    k_end = min(p_last + 1, k_begin + per);
  }

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const int wrow0 = row0 + warp * 16 * MW;  // the warp's first row
  // This thread's rows: g and g + 8 of each of the warp's m-tiles; rows
  // past the chunk repeat the last row (computed, never stored).
  int rpos[MW][2];
#pragma unroll
  for (int mi = 0; mi < MW; mi++)
#pragma unroll
    for (int h2 = 0; h2 < 2; h2++) rpos[mi][h2] = pos0 + min(wrow0 + mi * 16 + g + 8 * h2, nrows - 1) / G;
  // Positions of the warp's first and last rows, for skipping tiles (the
  // mma.sync body; the WG body computes every tile).
  const int srow0 = wrow0, srows = 16 * MW;
  const int w_first = pos0 + min(srow0, nrows - 1) / G;
  const int w_last = pos0 + min(srow0 + srows - 1, nrows - 1) / G;

  // Key/value tile loads: thread tid copies chunks tid + c*NT (key
  // idx / CHR, 16-byte column idx % CHR): consecutive threads read
  // consecutive 16 bytes of a key row.
  const size_t head_base = (size_t)kv * cap * D;
  // part: 0 every chunk; 1 (EARLY, before the wait) the zero fills and the
  // keys before pos0; 2 (EARLY, after it) the step's own keys.
  auto issue_part = [&](int k0, int stage, int part) {
#pragma unroll
    for (int c = 0; c < CPT; c++) {
      const int idx = tid + c * NT;
      const int j = idx / CHR, cc = idx % CHR, kp = k0 + j;
      const bool in = kp >= lo && kp < k_end;  // absolute blocks may start below lo
      if (part != 0 && (part == 1) != (!in || kp < pos0)) continue;
      const size_t off = head_base + (in ? (size_t)(kp % cap) * D : 0) + cc * 8;
      const uint32_t so = WG ? (uint32_t)(stage * WTILE + (cc / 8) * KEYS * 128 + j * 128 + ((cc % 8) ^ (j % 8)) * 16)
                             : (uint32_t)((stage * TILE + j * KS + cc * 8) * 2);
      cp_async_16(sK_addr + so, kc + off, in ? 16 : 0);
      cp_async_16(sV_addr + so, vc + off, in ? 16 : 0);
    }
  };
  // The WG body's copies. Its 256 threads copy a tile's keys j0 + 16c
  // (c < 4) in 16-byte column cc, and it copies the tiles in order, each
  // KEYS keys on from the last, so a thread's ring slot runs on from call
  // to call with a compare instead of issue_part's modulo a key (cap >=
  // KEYS, which the engine checks). Those modulos sat between a tile's
  // barrier and the next S: a 512-token chunk's attention 3.75 -> 3.09 ms
  // without them (H200, run 195).
  static_assert(!WG || (NT == 256 && CHR == 16 && CPT == 4), "the WG copy layout");
  int wslot = WG ? (k_begin + tid / CHR) % cap : 0;  // the first tile copied starts at k_begin
  auto issue_wg = [&](int k0, int stage) {
    const int j0 = tid / CHR, cc = tid % CHR;
    int slot = wslot;
    wslot += KEYS;
    wslot = wslot >= cap ? wslot - cap : wslot;
    const uint32_t so = (uint32_t)(stage * WTILE + (cc / 8) * KEYS * 128 + j0 * 128 + ((cc % 8) ^ (j0 % 8)) * 16);
    // Most tiles: every key of this thread's in range and its slots in
    // order, so one address and fixed offsets (the general form below
    // spends some 90 integer instructions a tile between the barrier and
    // the next S).
    const int kf = k0 + j0;
    if (kf >= lo && kf + 16 * (CPT - 1) < k_end && slot + 16 * (CPT - 1) < cap) {
      const size_t off = head_base + (size_t)slot * D + cc * 8;
#pragma unroll
      for (int c = 0; c < CPT; c++) {
        cp_async_16(sK_addr + so + c * 16 * 128, kc + off + c * 16 * D, 16);
        cp_async_16(sV_addr + so + c * 16 * 128, vc + off + c * 16 * D, 16);
      }
      return;
    }
#pragma unroll
    for (int c = 0; c < CPT; c++) {
      const int kp = k0 + j0 + 16 * c;
      const bool in = kp >= lo && kp < k_end;
      const size_t off = head_base + (in ? (size_t)slot * D : 0) + cc * 8;
      cp_async_16(sK_addr + so + c * 16 * 128, kc + off, in ? 16 : 0);  // key j0 + 16c: same swizzle as j0
      cp_async_16(sV_addr + so + c * 16 * 128, vc + off, in ? 16 : 0);
      slot += 16;
      slot = slot >= cap ? slot - cap : slot;
    }
  };
  auto issue = [&](int k0, int stage) {
    if constexpr (WG)
      issue_wg(k0, stage);
    else
      issue_part(k0, stage, 0);
  };
  const int ntiles = k_begin < k_end ? (k_end - k_begin + KEYS - 1) / KEYS : 0;
  const bool early = EARLY && ntiles <= kP2Stages;  // both tiles in flight at once
  if (early) {
    for (int it = 0; it < ntiles; it++) issue_part(k_begin + it * KEYS, it, 1);
    cp_async_commit_group();
  }
  if (EARLY) grid_dep_wait();
  if (MW == 2 && ntiles > 0) {
    // The block's Q rows, in the first copy group.
#pragma unroll
    for (int c = 0; c < ROWS * CHR / NT; c++) {
      const int idx = tid + c * NT;
      const int r = idx / CHR, cc = idx % CHR, gr = min(row0 + r, nrows - 1);
      const __half* src = qkv + (size_t)(gr / G) * qstride + (size_t)(kv * G + gr % G) * D + cc * 8;
      cp_async_16(sQ_addr + (uint32_t)((r * KS + cc * 8) * 2), src, 16);
    }
  }
  if (early) {
    for (int it = 0; it < ntiles; it++) issue_part(k_begin + it * KEYS, it, 2);
  } else if (ntiles > 0) {
    issue(k_begin, 0);
  }
  cp_async_commit_group();
  if (WG) {
    if (ntiles > 0) issue(k_begin + KEYS, 1);  // zeros where tile 1 pads an odd count
    cp_async_commit_group();
  }

  // MW == 1: Q as A fragments, one per 16 head dimensions, read once
  // straight from global memory while the first tile is in flight.
  uint32_t qa[MW == 1 ? D / 16 : 1][4];
  if (MW == 1) {
    const int gq0 = min(wrow0 + g, nrows - 1), gq1 = min(wrow0 + g + 8, nrows - 1);
    const __half* q0 = qkv + (size_t)(gq0 / G) * qstride + (size_t)(kv * G + gq0 % G) * D;
    const __half* q1 = qkv + (size_t)(gq1 / G) * qstride + (size_t)(kv * G + gq1 % G) * D;
#pragma unroll
    for (int ks = 0; ks < (MW == 1 ? D / 16 : 1); ks++) {
      const int c = ks * 16 + t4 * 2;
      qa[ks][0] = *reinterpret_cast<const uint32_t*>(q0 + c);
      qa[ks][1] = *reinterpret_cast<const uint32_t*>(q1 + c);
      qa[ks][2] = *reinterpret_cast<const uint32_t*>(q0 + c + 8);
      qa[ks][3] = *reinterpret_cast<const uint32_t*>(q1 + c + 8);
    }
  }
  const float sl2 = scale * 1.4426950408889634f;  // scores in log2 units
  float m[MW][2], l[MW][2];
  float o[MW][D / 8][4];
#pragma unroll
  for (int mi = 0; mi < MW; mi++) {
    m[mi][0] = m[mi][1] = -INFINITY;
    l[mi][0] = l[mi][1] = 0.f;
#pragma unroll
    for (int dt = 0; dt < D / 8; dt++) o[mi][dt][0] = o[mi][dt][1] = o[mi][dt][2] = o[mi][dt][3] = 0.f;
  }

  // ldmatrix row addresses (bytes). K, x4 over key n-tiles 2np, 2np+1 and
  // dims ks*16 + {0, 8}: lanes 8i..8i+7 address matrix i = (key half
  // lane>>4, dim half (lane>>3)&1), giving b0, b1 of n-tile 2np then of
  // 2np+1. V (transposed load), x4 over keys kk*16 + {0, 8} and dim tiles
  // 2dp, 2dp+1: matrix i = (key half (lane>>3)&1, dim tile lane>>4), giving
  // b0, b1 of dim tile 2dp then of 2dp+1. Q (MW == 2), x4 over rows
  // {0, 8} and dims {0, 8} of an m-tile: matrix i = (row half (lane>>3)&1,
  // dim half lane>>4), giving a0..a3.
  const uint32_t k_lane = (uint32_t)((((lane >> 4) * 8 + (lane & 7)) * KS + ((lane >> 3) & 1) * 8) * 2);
  const uint32_t v_lane = (uint32_t)(((((lane >> 3) & 1) * 8 + (lane & 7)) * KS + (lane >> 4) * 8) * 2);
  const uint32_t q_lane = sQ_addr + (uint32_t)(((warp * 16 * MW + ((lane >> 3) & 1) * 8 + (lane & 7)) * KS + (lane >> 4) * 8) * 2);

  float(&od)[D / 2] = *reinterpret_cast<float(*)[D / 2]>(&o[0][0][0]);  // WG: O as wgmma's accumulator
  uint32_t pw[KEYS / 16][4];  // WG: P of the last tile, the A of its P V
  if constexpr (WG) {
    // S runs a tile ahead: tile i+1's S is issued before tile i's softmax
    // and runs under it with tile i-1's P V; both are waited for before O
    // is rescaled (ptxas serializes every wgmma where O is rescaled with
    // a wgmma in flight: C7515). Two S accumulators, used in turn by a
    // loop unrolled by two; every wait and commit is unconditional (a tile
    // count padded to even by a fully masked tile), so no branch surrounds
    // a wgmma. Every warpgroup computes every tile: one it cannot see is
    // masked whole and leaves m, l and O as they were, as it does for a
    // warp that sees none of a tile's keys.
    if (ntiles > 0) {
      const int nt2 = ntiles + (ntiles & 1);
      float a0[KEYS / 2], a1[KEYS / 2];
      auto issue_s = [&](float(&acc)[KEYS / 2], int st) {
#pragma unroll
        for (int i = 0; i < KEYS / 2; i++) acc[i] = 0.f;
        // The descriptor's address field is linear in the address (shared
        // memory is under 2^18 bytes), so each k-step adds a constant to one
        // descriptor a tile rather than building its own.
        const uint64_t kd = wg_desc(sK_addr + (uint32_t)(st * WTILE));
        keep(acc);
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < D / 16; ks++)
          wgmma_m64n64(acc, qa[MW == 1 ? ks : 0], kd + (uint64_t)(((ks / 4) * KEYS * 128 + (ks % 4) * 32) >> 4));
        wgmma_commit();
      };
      // step: tile it's softmax and P V, tile it+1's S (cur holds tile it's
      // S, done; nxt gets tile it+1's). In flight at its start: P V(it-1).
      auto step = [&](int it, float(&cur)[KEYS / 2], float(&nxt)[KEYS / 2]) {
        const int k0 = k_begin + it * KEYS;
        cp_async_wait_group<1>();  // tile it+1 has landed (this thread's copies)
        fence_proxy_async();
        __syncthreads();  // ... everyone's; and every P V of tile it-2 is in
        if (it + 3 < nt2) issue(k0 + 3 * KEYS, (it + 3) % kWgStages);  // into tile it-2's stage
        cp_async_commit_group();
        issue_s(nxt, (it + 1) % kWgStages);  // past the last tile: unused
        keep(cur);
        float s[1][KEYS / 8][4];
        float(&sv)[KEYS / 2] = *reinterpret_cast<float(*)[KEYS / 2]>(&s[0][0][0]);
#pragma unroll
        for (int i = 0; i < KEYS / 2; i++) asm volatile("mov.b32 %0, %1;\n" : "=f"(sv[i]) : "f"(cur[i]));
        float al[1][2];
        p2_softmax<1, KEYS>(s, m, l, al, rpos, k0, k_end, window, p_first, p_last, t4, sl2);
        wgmma_wait<0>();  // S(it+1) and P V(it-1)
        keep(nxt);
        keep(od);
        keep(pw);
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++) {
          o[0][dt][0] *= al[0][0], o[0][dt][1] *= al[0][0];
          o[0][dt][2] *= al[0][1], o[0][dt][3] *= al[0][1];
        }
#pragma unroll
        for (int kk = 0; kk < KEYS / 16; kk++) {
          pw[kk][0] = pack_half2(s[0][2 * kk][0], s[0][2 * kk][1]);
          pw[kk][1] = pack_half2(s[0][2 * kk][2], s[0][2 * kk][3]);
          pw[kk][2] = pack_half2(s[0][2 * kk + 1][0], s[0][2 * kk + 1][1]);
          pw[kk][3] = pack_half2(s[0][2 * kk + 1][2], s[0][2 * kk + 1][3]);
        }
        keep(od);
        keep(pw);
        wgmma_fence();
        const uint64_t vd = wg_desc_mn(sV_addr + (uint32_t)((it % kWgStages) * WTILE), KEYS * 128);
#pragma unroll
        for (int kk = 0; kk < KEYS / 16; kk++) {
          const uint64_t desc = vd + (uint64_t)((kk * 16 * 128) >> 4);
          wgmma_m64n128<1>(*reinterpret_cast<float(*)[64]>(&od[0]), pw[kk], desc);
        }
        wgmma_commit();
      };
      // Prologue: tile 0 in, tile 2 requested, S(0).
      cp_async_wait_group<1>();
      fence_proxy_async();
      __syncthreads();
      if (2 < nt2) issue(k_begin + 2 * KEYS, 2);
      cp_async_commit_group();
      issue_s(a0, 0);
      wgmma_wait<0>();
      keep(a0);
      for (int it = 0; it < nt2; it += 2) {
        step(it, a0, a1);
        step(it + 1, a1, a0);
      }
      wgmma_wait<0>();
      keep(od);
      keep(pw);
      keep(a0);
    }
  }
  // The mma.sync body (the WG body ran its own loop above).
  for (int it = 0; it < (WG ? 0 : ntiles); it++) {
    const int k0 = k_begin + it * KEYS, stage = it & 1;
    if (!early && it + 1 < ntiles) issue(k0 + KEYS, stage ^ 1);
    cp_async_commit_group();
    if (early) {
      cp_async_wait_group<0>();  // both tiles were requested at the start
    } else {
      cp_async_wait_group<1>();  // tile it (and Q) has landed: this thread's copies
    }
    __syncthreads();  // ... and everyone's

    // Skip a tile no row of this warp can see, and every tile for a warp
    // past the chunk's rows (uniform).
    const bool seen = srow0 < nrows && k0 <= w_last && (window <= 0 || k0 + KEYS - 1 > w_first - window);
    if (seen) {
      const uint32_t kb = sK_addr + (uint32_t)(stage * TILE * 2) + k_lane;
      const uint32_t vb = sV_addr + (uint32_t)(stage * TILE * 2) + v_lane;
      float s[MW][KEYS / 8][4];
#pragma unroll
      for (int mi = 0; mi < MW; mi++)
#pragma unroll
        for (int nt = 0; nt < KEYS / 8; nt++) s[mi][nt][0] = s[mi][nt][1] = s[mi][nt][2] = s[mi][nt][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < D / 16; ks++) {
        uint32_t a[MW][4];
#pragma unroll
        for (int mi = 0; mi < MW; mi++) {
          if (MW == 1) {
#pragma unroll
            for (int i = 0; i < 4; i++) a[mi][i] = qa[MW == 1 ? ks : 0][i];
          } else {
            ldsm_x4(a[mi], q_lane + (uint32_t)((mi * 16 * KS + ks * 16) * 2));
          }
        }
#pragma unroll
        for (int np = 0; np < KEYS / 16; np++) {
          uint32_t b[4];
          ldsm_x4(b, kb + (uint32_t)((np * 16 * KS + ks * 16) * 2));
#pragma unroll
          for (int mi = 0; mi < MW; mi++) {
            mma_16816(s[mi][2 * np], a[mi], b[0], b[1]);
            mma_16816(s[mi][2 * np + 1], a[mi], b[2], b[3]);
          }
        }
      }
      float al[MW][2];
      p2_softmax<MW, KEYS>(s, m, l, al, rpos, k0, k_end, window, p_first, p_last, t4, sl2);
#pragma unroll
      for (int mi = 0; mi < MW; mi++)
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++) {
          o[mi][dt][0] *= al[mi][0], o[mi][dt][1] *= al[mi][0];
          o[mi][dt][2] *= al[mi][1], o[mi][dt][3] *= al[mi][1];
        }
      // O += P V: the S accumulators of n-tiles 2kk, 2kk+1 are P's A fragment.
#pragma unroll
      for (int kk = 0; kk < KEYS / 16; kk++) {
        uint32_t pa[MW][4];
#pragma unroll
        for (int mi = 0; mi < MW; mi++) {
          pa[mi][0] = pack_half2(s[mi][2 * kk][0], s[mi][2 * kk][1]);
          pa[mi][1] = pack_half2(s[mi][2 * kk][2], s[mi][2 * kk][3]);
          pa[mi][2] = pack_half2(s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
          pa[mi][3] = pack_half2(s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < D / 16; dp++) {
          uint32_t b[4];
          ldsm_x4_trans(b, vb + (uint32_t)((kk * 16 * KS + dp * 16) * 2));
#pragma unroll
          for (int mi = 0; mi < MW; mi++) {
            mma_16816(o[mi][2 * dp], pa[mi], b[0], b[1]);
            mma_16816(o[mi][2 * dp + 1], pa[mi], b[2], b[3]);
          }
        }
      }
    }
    __syncthreads();  // the stage is free for tile it + 2
  }

  // Partials: m back to natural-log units; l summed over the quad.
#pragma unroll
  for (int mi = 0; mi < MW; mi++) {
#pragma unroll
    for (int h2 = 0; h2 < 2; h2++) {
      float lt = l[mi][h2];
      lt += __shfl_xor_sync(0xffffffffu, lt, 1);
      lt += __shfl_xor_sync(0xffffffffu, lt, 2);
      const int gr = wrow0 + mi * 16 + g + 8 * h2;
      if (gr >= nrows) continue;
      const size_t orow = (size_t)(gr / G) * heads + kv * G + gr % G;
      if (DIRECT) {
        // attn_reduce for nsplit == 1, row orow, on the m and l it would
        // read (m rounded to natural-log units as stored below; lt is the
        // same in the whole quad): its warp_max gives M = fmaxf(-inf, m),
        // its warp_sum adds only +0 to den = w l + 0 (never -0, so
        // unchanged), and num = w acc + 0.
        const float mz = m[mi][h2] == -INFINITY ? -INFINITY : __fmul_rn(m[mi][h2], 0.6931471805599453f);
        const float w = attn_split_weight(mz, fmaxf(-INFINITY, mz));
        const float inv = attn_inv_den(__fmaf_rn(w, lt, 0.f));
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++)
          *reinterpret_cast<__half2*>(out + orow * D + dt * 8 + t4 * 2) =
              __halves2half2(attn_out_half(__fmaf_rn(w, o[mi][dt][2 * h2], 0.f), inv),
                             attn_out_half(__fmaf_rn(w, o[mi][dt][2 * h2 + 1], 0.f), inv));
        continue;
      }
      const size_t oo = (size_t)z * tokens * heads + orow;
#pragma unroll
      for (int dt = 0; dt < D / 8; dt++)
        *reinterpret_cast<float2*>(ws_acc + oo * D + dt * 8 + t4 * 2) =
            make_float2(o[mi][dt][2 * h2], o[mi][dt][2 * h2 + 1]);
      if (t4 == 0) {
        ws_ml[oo * 2] = m[mi][h2] == -INFINITY ? -INFINITY : m[mi][h2] * 0.6931471805599453f;
        ws_ml[oo * 2 + 1] = lt;
      }
    }
  }
}

// Kernel entries of the body, with attention.cu's launch arguments:
// ATTN_P2_PARTIALS writes the split partials (ws_acc, ws_ml), ATTN_P2_OUT
// the attention output out (DIRECT instances). THREADS and MINB are the
// launch bounds, the rest the body's template arguments.
#define ATTN_P2_ARGS                                                                           \
  const __half *__restrict__ qkv, const __half *__restrict__ kc, const __half *__restrict__ vc, \
      const int *__restrict__ params, int tokens, int heads, int kv_heads, int cap, int window, \
      float scale, int block_keys
#define ATTN_P2_PARTIALS(NAME, THREADS, MINB, ...)                                                           \
  extern "C" __global__ void __launch_bounds__(THREADS, MINB)                                                \
      NAME(ATTN_P2_ARGS, float* __restrict__ ws_acc, float* __restrict__ ws_ml) {                            \
    grid_dep_launch();                                                                                       \
    grid_dep_wait();                                                                                         \
    attn_prefill2_body<__VA_ARGS__>(qkv, kc, vc, params, tokens, heads, kv_heads, cap, window, scale,       \
                                    block_keys, ws_acc, ws_ml);                                              \
  }
#define ATTN_P2_OUT(NAME, THREADS, MINB, ...)                                                                \
  extern "C" __global__ void __launch_bounds__(THREADS, MINB) NAME(ATTN_P2_ARGS, __half* __restrict__ out) { \
    grid_dep_launch();                                                                                       \
    grid_dep_wait();                                                                                         \
    attn_prefill2_body<__VA_ARGS__>(qkv, kc, vc, params, tokens, heads, kv_heads, cap, window, scale,       \
                                    block_keys, nullptr, nullptr, out);                                      \
  }
