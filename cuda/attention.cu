// Attention over the KV cache for a step's tokens: grouped-query, causal,
// sliding window (query at position i sees keys i-W < j <= i), split over
// the key range (flash-decoding) and combined by attn_reduce. The same kernel
// serves decode/verify (1..16 tokens; the split over keys gives the
// parallelism) and prefill chunks (many row tiles; online softmax keeps a
// tile's scores out of memory). fp32 scores and accumulators.
//
// Batch invariance: with block_keys > 0 the splits are absolute key blocks
// [k*B, (k+1)*B) and key tiles start at multiples of 32, so a query's result
// is bit-for-bit the same whatever other tokens share its step (the float
// operations that could be contracted differently per instance are spelled
// with explicit rounding intrinsics). Prompt lookup relies on it: verifying
// k drafted tokens must choose exactly what k single steps would.
//
// A block takes one KV head, one tile of "rows" (query token x query head of
// that KV group, ROWS = 4 warps x RW rows each) and one share of the keys the
// tile can see. Keys come through shared memory 32 at a time: lane j scores
// key j for each of its warp's rows, then lanes switch to head dimensions
// to accumulate p * v.
#include "attn_combine.cuh"
#include "common.cuh"
#include "ptx.cuh"

constexpr int kAttnWarps = 4;
constexpr int kKeyTile = 32;

// Dynamic shared memory of attn_body<D, RW>; the Go side computes the same.
__host__ __device__ constexpr int attn_smem(int D, int RW) {
  return kAttnWarps * RW * D * 4 + kAttnWarps * RW * kKeyTile * 4 + 2 * kKeyTile * (D + 2) * 2;
}

// grid (row tiles, kv_heads, splits), block 128, dynamic shared attn_smem.
// qkv (tokens, (heads + 2*kv_heads) * D) fp16, q already rotated;
// kc, vc (kv_heads, cap, D) fp16, this layer's cache ring (slot = pos % cap);
// block_keys: B > 0 for absolute key blocks (split z = block lo/B + z), 0 to
// share the tile's keys evenly among the splits;
// ws_acc (splits, tokens*heads, D) fp32 unnormalized outputs;
// ws_ml (splits, tokens*heads, 2) fp32 running max and sum of each split.
template <int D, int RW>
__device__ void attn_body(const __half* __restrict__ qkv, const __half* __restrict__ kc,
                          const __half* __restrict__ vc, const int* __restrict__ params,
                          int tokens, int heads, int kv_heads, int cap, int window, float scale,
                          int block_keys, float* __restrict__ ws_acc, float* __restrict__ ws_ml) {
  constexpr int ROWS = kAttnWarps * RW;
  constexpr int DL = (D + 31) / 32;  // head dimensions per lane in the p*v phase
  constexpr int KS = D + 2;          // K/V row stride in halves: an odd word count, no bank conflicts
  extern __shared__ float smem[];
  float* Qs = smem;                   // (ROWS, D), pre-scaled
  float* Ps = Qs + ROWS * D;          // (ROWS, 32) probabilities of the current key tile
  __half* Ks = reinterpret_cast<__half*>(Ps + ROWS * kKeyTile);  // (32, KS)
  __half* Vs = Ks + kKeyTile * KS;                               // (32, KS)

  const int G = heads / kv_heads;
  const int kv = blockIdx.y, z = blockIdx.z, nsplit = gridDim.z;
  const int nrows = tokens * G;
  const int row0 = blockIdx.x * ROWS;
  const int qstride = (heads + 2 * kv_heads) * D;
  const int pos0 = params[kParamPos];

  // Keys any row of the tile can see, and this block's share of them.
  const int p_first = pos0 + row0 / G;
  const int p_last = pos0 + (min(row0 + ROWS, nrows) - 1) / G;
  const int lo = window > 0 ? max(0, p_first - window + 1) : 0;
  int k_begin, k_end;  // [k_begin, k_end): this block's keys
  if (block_keys > 0) {
    k_begin = (lo / block_keys + z) * block_keys;
    k_end = min(p_last + 1, k_begin + block_keys);
  } else {
    const int n = p_last - lo + 1;
    int per = (n + nsplit - 1) / nsplit;
    per = (per + kKeyTile - 1) / kKeyTile * kKeyTile;
    k_begin = lo + z * per;
    k_end = min(p_last + 1, k_begin + per);
  }

  for (int idx = threadIdx.x; idx < ROWS * D; idx += blockDim.x) {
    const int r = idx / D, d = idx % D, gr = row0 + r;
    float v = 0.f;
    if (gr < nrows) {
      const int t = gr / G, h = kv * G + gr % G;
      v = __half2float(qkv[(size_t)t * qstride + h * D + d]) * scale;
    }
    Qs[idx] = v;
  }

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float m[RW], l[RW], acc[RW][DL];
#pragma unroll
  for (int i = 0; i < RW; i++) {
    m[i] = -INFINITY;
    l[i] = 0.f;
#pragma unroll
    for (int dd = 0; dd < DL; dd++) acc[i][dd] = 0.f;
  }

  // 16-byte loads of K and V rows (D % 8 == 0), zeros outside the keys the
  // tile may see, so masked keys never bring NaN from stale slots. The next
  // tile's loads are issued before the current tile is computed.
  constexpr int CH = kKeyTile * (D / 8);  // 16-byte chunks of a K (or V) tile
  constexpr int CPT = (CH + kAttnWarps * 32 - 1) / (kAttnWarps * 32);
  const size_t head_base = (size_t)kv * cap * D;
  uint4 pk[CPT], pv[CPT];
  auto fetch = [&](int k0) {
#pragma unroll
    for (int c = 0; c < CPT; c++) {
      const int idx = threadIdx.x + c * kAttnWarps * 32;
      const int j = idx / (D / 8), cc = idx % (D / 8), kp = k0 + j;
      pk[c] = pv[c] = make_uint4(0, 0, 0, 0);
      if (idx < CH && kp >= lo && kp < k_end) {
        const size_t off = head_base + (size_t)(kp % cap) * D + cc * 8;
        pk[c] = *reinterpret_cast<const uint4*>(kc + off);
        pv[c] = *reinterpret_cast<const uint4*>(vc + off);
      }
    }
  };
  if (k_begin < k_end) fetch(k_begin);
  for (int k0 = k_begin; k0 < k_end; k0 += kKeyTile) {
    __syncthreads();  // Q loaded / previous tile consumed
#pragma unroll
    for (int c = 0; c < CPT; c++) {
      const int idx = threadIdx.x + c * kAttnWarps * 32;
      if (idx < CH) {
        const int j = idx / (D / 8), cc = idx % (D / 8);
        uint32_t* kd = reinterpret_cast<uint32_t*>(Ks + j * KS + cc * 8);
        uint32_t* vd = reinterpret_cast<uint32_t*>(Vs + j * KS + cc * 8);
        kd[0] = pk[c].x, kd[1] = pk[c].y, kd[2] = pk[c].z, kd[3] = pk[c].w;
        vd[0] = pv[c].x, vd[1] = pv[c].y, vd[2] = pv[c].z, vd[3] = pv[c].w;
      }
    }
    __syncthreads();
    if (k0 + kKeyTile < k_end) fetch(k0 + kKeyTile);

    // Scores: lane j takes key k0 + j.
    const int kp = k0 + lane;
    float s[RW];
#pragma unroll
    for (int i = 0; i < RW; i++) s[i] = 0.f;
    const __half* kr = Ks + lane * KS;
#pragma unroll 8
    for (int d = 0; d < D; d += 2) {
      const float2 kf = __half22float2(*reinterpret_cast<const __half2*>(kr + d));
#pragma unroll
      for (int i = 0; i < RW; i++) {
        const float2 q = *reinterpret_cast<const float2*>(Qs + (warp * RW + i) * D + d);
        s[i] = __fmaf_rn(q.x, kf.x, __fmaf_rn(q.y, kf.y, s[i]));
      }
    }

    // Mask, online softmax, rescale the accumulators.
#pragma unroll
    for (int i = 0; i < RW; i++) {
      const int gr = row0 + warp * RW + i;
      const int p = pos0 + gr / G;
      const bool ok = gr < nrows && kp < k_end && kp <= p && (window <= 0 || kp > p - window);
      const float sv = ok ? s[i] : -INFINITY;
      const float mn = fmaxf(m[i], warp_max(sv));
      const float pe = ok ? expf(sv - mn) : 0.f;
      const float alpha = mn == -INFINITY ? 1.f : expf(m[i] - mn);
      l[i] = __fadd_rn(__fmul_rn(l[i], alpha), warp_sum(pe));
      m[i] = mn;
      Ps[(warp * RW + i) * kKeyTile + lane] = pe;
#pragma unroll
      for (int dd = 0; dd < DL; dd++) acc[i][dd] = __fmul_rn(acc[i][dd], alpha);
    }
    __syncwarp();

    // acc += p * v: lanes take head dimensions lane, lane+32, ...
#pragma unroll 4
    for (int j = 0; j < kKeyTile; j++) {
      float v[DL];
#pragma unroll
      for (int dd = 0; dd < DL; dd++) {
        const int d = lane + 32 * dd;
        v[dd] = d < D ? __half2float(Vs[j * KS + d]) : 0.f;
      }
#pragma unroll
      for (int i = 0; i < RW; i++) {
        const float pj = Ps[(warp * RW + i) * kKeyTile + j];
#pragma unroll
        for (int dd = 0; dd < DL; dd++) acc[i][dd] = __fmaf_rn(pj, v[dd], acc[i][dd]);
      }
    }
  }

#pragma unroll
  for (int i = 0; i < RW; i++) {
    const int gr = row0 + warp * RW + i;
    if (gr >= nrows) continue;
    const int t = gr / G, h = kv * G + gr % G;
    const size_t o = (size_t)z * tokens * heads + (size_t)t * heads + h;
#pragma unroll
    for (int dd = 0; dd < DL; dd++) {
      const int d = lane + 32 * dd;
      if (d < D) ws_acc[o * D + d] = acc[i][dd];
    }
    if (lane == 0) {
      ws_ml[o * 2] = m[i];
      ws_ml[o * 2 + 1] = l[i];
    }
  }

}

#define ATTN_PARTIAL(D, RW)                                                                  \
  extern "C" __global__ void __launch_bounds__(kAttnWarps * 32) attn_d##D##_r##RW(           \
      const __half* __restrict__ qkv, const __half* __restrict__ kc,                         \
      const __half* __restrict__ vc, const int* __restrict__ params, int tokens, int heads,  \
      int kv_heads, int cap, int window, float scale, int block_keys,                        \
      float* __restrict__ ws_acc, float* __restrict__ ws_ml) {                               \
    grid_dep_launch();                                                                       \
    grid_dep_wait();                                                                         \
    attn_body<D, RW>(qkv, kc, vc, params, tokens, heads, kv_heads, cap, window, scale,       \
                     block_keys, ws_acc, ws_ml);                                             \
  }
#define ATTN_ALL_RW(D) \
  ATTN_PARTIAL(D, 1)   \
  ATTN_PARTIAL(D, 2)   \
  ATTN_PARTIAL(D, 4)   \
  ATTN_PARTIAL(D, 8)   \
  ATTN_PARTIAL(D, 16)
// Head dims 64 and 128 run on the tensor cores (attn_prefill*, below).
ATTN_ALL_RW(8)
ATTN_ALL_RW(16)
ATTN_ALL_RW(32)

// Combine the splits of each row: out = sum_z w_z acc_z / sum_z w_z l_z with
// w_z = e^(m_z - M). The weights are computed once per row by the first
// warp (a fixed reduction tree for a given split count, so verify steps stay
// batch-invariant), then every thread sums its head dimension over the
// splits in order. grid (tokens*heads), block head_dim (<= 256 splits).
// out (tokens, heads*D) fp16.
constexpr int kMaxSplits = 256;
// Each thread requests its first kReducePre partials before the weights
// exist, so their loads overlap the first warp's work instead of following
// the barrier a few at a time (a verify step at the reference context has
// 34 splits). The sum is the same sequence of fmas either way.
constexpr int kReducePre = 40;

extern "C" __global__ void attn_reduce(const float* __restrict__ ws_acc,
                                       const float* __restrict__ ws_ml, __half* __restrict__ out,
                                       int rows, int nsplit, int head_dim) {
  grid_dep_launch();
  grid_dep_wait();
  __shared__ float wz[kMaxSplits];
  __shared__ float inv_den;
  const int r = blockIdx.x, lane = threadIdx.x & 31;
  const int d0 = threadIdx.x;
  const size_t zstride = (size_t)rows * head_dim;
  float pre[kReducePre];
  {
    // Past the last split (or head dimension) a load repeats the last one,
    // for a value the sums below never use.
    const float* p = ws_acc + (size_t)r * head_dim + min(d0, head_dim - 1);
#pragma unroll
    for (int z = 0; z < kReducePre; z++) {
      pre[z] = ld_cg_f32(p);
      if (z + 1 < nsplit) p += zstride;
    }
  }
  if (threadIdx.x < 32) {
    // A lane's first two splits' (max, sum), requested together: one round
    // trip where a loop turn each took two, and none again for the sums.
    // The maxima and the sums meet in the same order as in the loops after.
    float2 ml[2];
#pragma unroll
    for (int k = 0; k < 2; k++) {
      const int z = lane + 32 * k;
      ml[k] = z < nsplit ? ld_cg_f32x2(ws_ml + ((size_t)z * rows + r) * 2) : make_float2(-INFINITY, 0.f);
    }
    float M = fmaxf(fmaxf(-INFINITY, ml[0].x), ml[1].x);
    for (int z = lane + 64; z < nsplit; z += 32) M = fmaxf(M, ws_ml[((size_t)z * rows + r) * 2]);
    M = warp_max(M);
    float den = 0.f;
#pragma unroll
    for (int k = 0; k < 2; k++) {
      const int z = lane + 32 * k;
      if (z < nsplit) {
        const float w = attn_split_weight(ml[k].x, M);
        wz[z] = w;
        den = __fmaf_rn(w, ml[k].y, den);
      }
    }
    for (int z = lane + 64; z < nsplit; z += 32) {
      const size_t o = (size_t)z * rows + r;
      const float mz = ws_ml[o * 2];
      const float w = attn_split_weight(mz, M);
      wz[z] = w;
      den = __fmaf_rn(w, ws_ml[o * 2 + 1], den);
    }
    den = warp_sum(den);
    if (lane == 0) inv_den = attn_inv_den(den);
  }
  __syncthreads();
  for (int d = d0; d < head_dim; d += blockDim.x) {
    float num = 0.f;
    int z = 0;
    if (d == d0) {
#pragma unroll
      for (; z < kReducePre; z++)
        if (z < nsplit) num = __fmaf_rn(wz[z], pre[z], num);
      z = min(nsplit, kReducePre);
    }
#pragma unroll 4
    for (; z < nsplit; z++) num = __fmaf_rn(wz[z], ws_acc[z * zstride + (size_t)r * head_dim + d], num);
    out[(size_t)r * head_dim + d] = attn_out_half(num, inv_den);
  }
}

// ---------------------------------------------------------------------------
// Tensor-core attention (head_dim 64 or 128), for prefill chunks and, with
// absolute key blocks, verify steps: a row's arithmetic does not depend on
// the other rows of its block (each mma output is its own dot product, the
// softmax reductions stay within the row's quad), so it is batch-invariant
// as attn_body is. The same rows, splits and partials as attn_body, but
// each warp owns 16 rows and computes
// S = Q K^T and O += P V with mma.sync.m16n8k16 (fp16 operands, fp32
// accumulators), FlashAttention-2 style: the S accumulators become the P
// operand in registers. Keys come 64 at a time; V is stored transposed in
// shared memory so both B operands are single 32-bit loads. Row padding of
// 8 halves keeps the loads free of bank conflicts.

constexpr int kPrefillKeys = 64;

template <int D, bool PREFETCH>
__device__ void attn_prefill_body(const __half* __restrict__ qkv, const __half* __restrict__ kc,
                                  const __half* __restrict__ vc, const int* __restrict__ params,
                                  int tokens, int heads, int kv_heads, int cap, int window,
                                  float scale, int block_keys, float* __restrict__ ws_acc,
                                  float* __restrict__ ws_ml) {
  constexpr int ROWS = kAttnWarps * 16;
  constexpr int KS = D + 8;              // K row stride (halves)
  constexpr int VS = kPrefillKeys + 8;   // transposed V row stride (halves)
  __shared__ __align__(16) __half Ks[kPrefillKeys * KS];
  __shared__ __align__(16) __half Vt[D * VS];

  const int G = heads / kv_heads;
  const int kv = blockIdx.y, z = blockIdx.z, nsplit = gridDim.z;
  const int nrows = tokens * G;
  const int row0 = blockIdx.x * ROWS;
  const int qstride = (heads + 2 * kv_heads) * D;
  const int pos0 = params[kParamPos];
  const int p_first = pos0 + row0 / G;
  const int p_last = pos0 + (min(row0 + ROWS, nrows) - 1) / G;
  const int lo = window > 0 ? max(0, p_first - window + 1) : 0;
  int k_begin, k_end;  // as in attn_body; block_keys a multiple of 64
  if (block_keys > 0) {
    k_begin = (lo / block_keys + z) * block_keys;
    k_end = min(p_last + 1, k_begin + block_keys);
  } else {
    const int n = p_last - lo + 1;
    int per = (n + nsplit - 1) / nsplit;
    per = (per + kPrefillKeys - 1) / kPrefillKeys * kPrefillKeys;
    k_begin = lo + z * per;
    k_end = min(p_last + 1, k_begin + per);
  }

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t4 = lane & 3;
  // This thread's two rows: g and g + 8 of the warp's 16.
  int rpos[2];
  bool rok[2];
  const __half* qrow[2];
#pragma unroll
  for (int h2 = 0; h2 < 2; h2++) {
    const int gr = row0 + warp * 16 + g + 8 * h2;
    rok[h2] = gr < nrows;
    const int gg = rok[h2] ? gr : 0;
    rpos[h2] = pos0 + gg / G;
    qrow[h2] = qkv + (size_t)(gg / G) * qstride + (size_t)(kv * G + gg % G) * D;
  }
  // Q as A fragments, one per 16 head dimensions.
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

  // The next tile's loads are issued before the current tile is computed.
  constexpr int CH = kPrefillKeys * (D / 8);
  constexpr int CPT = CH / (kAttnWarps * 32);
  const size_t head_base = (size_t)kv * cap * D;
  uint4 pk[CPT], pv[CPT];
  auto fetch = [&](int k0) {
#pragma unroll
    for (int c = 0; c < CPT; c++) {
      const int idx = threadIdx.x + c * kAttnWarps * 32;
      const int j = idx % kPrefillKeys, cc = idx / kPrefillKeys, kp = k0 + j;
      pk[c] = pv[c] = make_uint4(0, 0, 0, 0);
      if (kp >= lo && kp < k_end) {
        const size_t off = head_base + (size_t)(kp % cap) * D + cc * 8;
        pk[c] = *reinterpret_cast<const uint4*>(kc + off);
        pv[c] = *reinterpret_cast<const uint4*>(vc + off);
      }
    }
  };
  // A warp whose 16 rows are all padding (a verify step of 1..12 tokens
  // fills 4 to 48 of the block's 64 rows) only helps load the tiles: its
  // scores would be masked anyway, and computing them cost shared-memory
  // bandwidth the real rows need. Each real row's arithmetic is unchanged.
  const bool active = row0 + warp * 16 < nrows;
  if (PREFETCH && k_begin < k_end) fetch(k_begin);
  for (int k0 = k_begin; k0 < k_end; k0 += kPrefillKeys) {
    __syncthreads();
    if (!PREFETCH) fetch(k0);
#pragma unroll
    for (int c = 0; c < CPT; c++) {
      const int idx = threadIdx.x + c * kAttnWarps * 32;
      const int j = idx % kPrefillKeys, cc = idx / kPrefillKeys;
      *reinterpret_cast<uint4*>(Ks + j * KS + cc * 8) = pk[c];
      const __half* vh = reinterpret_cast<const __half*>(&pv[c]);
#pragma unroll
      for (int i = 0; i < 8; i++) Vt[(cc * 8 + i) * VS + j] = vh[i];
    }
    __syncthreads();
    if (PREFETCH && k0 + kPrefillKeys < k_end) fetch(k0 + kPrefillKeys);
    if (!active) continue;

    float s[kPrefillKeys / 8][4];
#pragma unroll
    for (int nt = 0; nt < kPrefillKeys / 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++) {
#pragma unroll
      for (int nt = 0; nt < kPrefillKeys / 8; nt++) {
        const __half* kr = Ks + (nt * 8 + g) * KS + ks * 16 + t4 * 2;
        mma_16816(s[nt], qa[ks], *reinterpret_cast<const uint32_t*>(kr),
                 *reinterpret_cast<const uint32_t*>(kr + 8));
      }
    }
    // Mask, online softmax (log2 units), rescale O.
    float mt[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < kPrefillKeys / 8; nt++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int h2 = e >> 1;
        const int kp = k0 + nt * 8 + t4 * 2 + (e & 1);
        const int p = rpos[h2];
        const bool ok = rok[h2] && kp >= lo && kp < k_end && kp <= p && (window <= 0 || kp > p - window);
        s[nt][e] = ok ? s[nt][e] * sl2 : -INFINITY;
        mt[h2] = fmaxf(mt[h2], s[nt][e]);
      }
    }
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
    for (int nt = 0; nt < kPrefillKeys / 8; nt++) {
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
    for (int kk = 0; kk < kPrefillKeys / 16; kk++) {
      uint32_t pa[4] = {pack_half2(s[2 * kk][0], s[2 * kk][1]), pack_half2(s[2 * kk][2], s[2 * kk][3]),
                        pack_half2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                        pack_half2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dt = 0; dt < D / 8; dt++) {
        const __half* vr = Vt + (dt * 8 + g) * VS + kk * 16 + t4 * 2;
        mma_16816(o[dt], pa, *reinterpret_cast<const uint32_t*>(vr), *reinterpret_cast<const uint32_t*>(vr + 8));
      }
    }
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

// attn_prefill_d* issue the next key tile's loads before computing the
// current one (255 registers at head dim 128); attn_prefill_sync_d* load
// each tile when it is needed (225). Both run two blocks per SM.
#define ATTN_PREFILL(NAME, D, PF)                                                            \
  extern "C" __global__ void __launch_bounds__(kAttnWarps * 32) NAME(                        \
      const __half* __restrict__ qkv, const __half* __restrict__ kc,                         \
      const __half* __restrict__ vc, const int* __restrict__ params, int tokens, int heads,  \
      int kv_heads, int cap, int window, float scale, int block_keys,                        \
      float* __restrict__ ws_acc, float* __restrict__ ws_ml) {                               \
    grid_dep_launch();                                                                       \
    grid_dep_wait();                                                                         \
    attn_prefill_body<D, PF>(qkv, kc, vc, params, tokens, heads, kv_heads, cap, window,      \
                             scale, block_keys, ws_acc, ws_ml);                              \
  }
ATTN_PREFILL(attn_prefill_d64, 64, true)
ATTN_PREFILL(attn_prefill_d128, 128, true)
ATTN_PREFILL(attn_prefill_sync_d64, 64, false)
ATTN_PREFILL(attn_prefill_sync_d128, 128, false)
