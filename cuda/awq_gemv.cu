// AWQ 4-bit mat-vec for decode and draft verification: y = x W for 1..16
// tokens in one launch, the weights read once from HBM whatever the count.
//
// Design (version 5 for group 128, version 4 for groups 32/64; versions 1-3
// are in cuda/lab, figures in NOTES-awq.md):
// - The weights are the A operand of mma.sync.m16n8k16 (16 output columns x
//   16 inputs), the tokens its N operand: 1..8 tokens cost one MMA per
//   k-step, 9..16 two. The tensor cores have ample headroom; the kernel is
//   bound by streaming the packed weights from HBM and by the instructions
//   spent per 16-byte word, so the inner loop is kept lean.
// - One block per stripe of 16 output columns; its warps split the 64-row
//   chunks (v4: round-robin; v5: contiguous runs of whole groups, so the two
//   chunks of a 128-group share one scale/zero load and one fp32 flush). The
//   warps' partial sums meet in shared memory at the end.
// - Each warp keeps the next chunk's loads (weights, scale/zero words, x) in
//   flight in registers while it computes the current one (ping-pong, no
//   register copies), and the loop is kept free of recomputed index math.
// - Dequantization (group >= 64): the lop3 magic-number trick gives fp16
//   1024+q (mask 0x000f000f, rows g) or 1024+16q (0x00f000f0, rows g+8), so
//   one shift serves a word; subtracting 1024+z (1024+16z) is exact, the MMA
//   sees the exact integers q-z (16(q-z)), and the scale (s, s/16) is
//   applied once per chunk to the fp32 partial sums. Group 32 puts two
//   groups in one k-step, so there each weight is scaled in fp16 first.
// A version with per-lane cp.async rings in shared memory (v2) was slower.
#include "awq_common.cuh"
#include "awq_epilogue.cuh"

namespace awq {

// One chunk's loads for one lane.
template <int NT>
struct GemvChunk {
  uint4 q;          // packed weights
  uint32_t z0, z1;  // (s, 1024+z) of rows g, g+8
  uint4 x[NT][2];   // 16 contiguous k of token nt*8+g
};

// gemv_load issues one chunk's loads: weights at wc, scale/zero row
// (64c+16t)/GROUP of the stripe's column zp, x at xc[nt].
template <int GROUP, int NT>
__device__ __forceinline__ void gemv_load(GemvChunk<NT>& d, const uint4* wc, const uint32_t* zp,
                                          const uint4* const xc[NT], const bool xv[NT], int c, int t, int outP) {
  d.q = ld_stream(wc);
  const uint32_t* z = zp + ((c * kChunk + 16 * t) / GROUP) * outP;
  d.z0 = __ldg(z);
  d.z1 = __ldg(z + 8);
#pragma unroll
  for (int nt = 0; nt < NT; nt++) {
    if (xv[nt]) {
      d.x[nt][0] = __ldg(xc[nt]);
      d.x[nt][1] = __ldg(xc[nt] + 1);
    } else {
      d.x[nt][0] = d.x[nt][1] = make_uint4(0, 0, 0, 0);
    }
  }
}

template <int GROUP, int NT>
__device__ __forceinline__ void gemv_chunk(float acc[NT][4], const GemvChunk<NT>& d) {
  const uint32_t qw[4] = {d.q.x, d.q.y, d.q.z, d.q.w};
  if (GROUP >= kChunk) {
    const __half2 z0 = __high2half2(as_h2(d.z0));
    // 1024+16z = 16(1024+z) - 15360, exact in fp16.
    const __half2 z1 = __hfma2(__high2half2(as_h2(d.z1)), __float2half2_rn(16.f), __float2half2_rn(-15360.f));
    float part[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
      for (int v = 0; v < 4; v++) part[nt][v] = 0.f;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const uint32_t kMask = 0x000f000f, kMask16 = 0x00f000f0, kMagic = 0x64006400;
      const uint32_t w8 = qw[j] >> 8;
      uint32_t a[4];
      a[0] = as_u32(__hsub2(as_h2(lop3<0xea>(qw[j], kMask, kMagic)), z0));
      a[1] = as_u32(__hsub2(as_h2(lop3<0xea>(qw[j], kMask16, kMagic)), z1));
      a[2] = as_u32(__hsub2(as_h2(lop3<0xea>(w8, kMask, kMagic)), z0));
      a[3] = as_u32(__hsub2(as_h2(lop3<0xea>(w8, kMask16, kMagic)), z1));
#pragma unroll
      for (int nt = 0; nt < NT; nt++) {
        const uint32_t* b = reinterpret_cast<const uint32_t*>(&d.x[nt][0]);
        mma_16816(part[nt], a, b[2 * j], b[2 * j + 1]);
      }
    }
    const float s0 = __low2float(as_h2(d.z0)), s1 = __low2float(as_h2(d.z1)) * (1.f / 16.f);
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
      acc[nt][0] = fmaf(s0, part[nt][0], acc[nt][0]);
      acc[nt][1] = fmaf(s0, part[nt][1], acc[nt][1]);
      acc[nt][2] = fmaf(s1, part[nt][2], acc[nt][2]);
      acc[nt][3] = fmaf(s1, part[nt][3], acc[nt][3]);
    }
  } else {
#pragma unroll
    for (int j = 0; j < 4; j++) {
      uint32_t a[4];
      dequant16(qw[j], d.z0, d.z1, a);
#pragma unroll
      for (int nt = 0; nt < NT; nt++) {
        const uint32_t* b = reinterpret_cast<const uint32_t*>(&d.x[nt][0]);
        mma_16816(acc[nt], a, b[2 * j], b[2 * j + 1]);
      }
    }
  }
}

// gemv: NT n-tiles of 8 tokens, GROUP the group size.
template <int GROUP, int NT>
__device__ __forceinline__ void gemv(const uint8_t* __restrict__ w, const __half* __restrict__ x,
                                     __half* __restrict__ y, int tokens, int in, int out) {
  extern __shared__ __align__(16) uint8_t smem[];  // blockDim/32 * NT*4*32 floats
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int outP = out_pad(out), chunks = in / kChunk;
  const int s = blockIdx.x;

  // Chunk c of this lane: weights wp + 32c, scale/zero row (64c+16t)/GROUP
  // of zp, x xp[nt] + 8c (uint4 units).
  const uint4* wp = reinterpret_cast<const uint4*>(w) + (size_t)s * chunks * 32 + lane;
  const uint32_t* zp = reinterpret_cast<const uint32_t*>(w + sz_offset(in, out)) + s * kStripe + g;
  const uint4* xp[NT];
  bool xv[NT];
#pragma unroll
  for (int nt = 0; nt < NT; nt++) {
    const int tok = nt * 8 + g;
    xv[nt] = tok < tokens;
    xp[nt] = reinterpret_cast<const uint4*>(x + (size_t)(xv[nt] ? tok : 0) * in + 16 * t);
  }
  float acc[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; nt++)
#pragma unroll
    for (int v = 0; v < 4; v++) acc[nt][v] = 0.f;

  // Ping-pong software pipeline over this warp's chunks warp, warp+nw, ...:
  // the next chunk's loads are in flight while this one computes. Running
  // pointers (wc, xc) advance by constants; only the scale row needs a shift.
  const int wstep = nw * 32, xstep = nw * (kChunk / 8);
  const uint4* wc = wp + warp * 32;
  const uint4* xc[NT];
#pragma unroll
  for (int nt = 0; nt < NT; nt++) xc[nt] = xp[nt] + warp * (kChunk / 8);
  GemvChunk<NT> a, b;
  int c = warp;
  if (c < chunks) gemv_load<GROUP, NT>(a, wc, zp, xc, xv, c, t, outP);
  for (; c < chunks; c += 2 * nw) {
    const bool hb = c + nw < chunks;
    wc += wstep;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) xc[nt] += xstep;
    if (hb) gemv_load<GROUP, NT>(b, wc, zp, xc, xv, c + nw, t, outP);
    gemv_chunk<GROUP, NT>(acc, a);
    wc += wstep;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) xc[nt] += xstep;
    if (c + 2 * nw < chunks) gemv_load<GROUP, NT>(a, wc, zp, xc, xv, c + 2 * nw, t, outP);
    if (hb) gemv_chunk<GROUP, NT>(acc, b);
  }

  grid_dep_launch();  // the loads are done: the next kernel may start
  float* red = reinterpret_cast<float*>(smem);  // (warp, value, lane)
#pragma unroll
  for (int nt = 0; nt < NT; nt++)
#pragma unroll
    for (int v = 0; v < 4; v++) red[(warp * NT * 4 + nt * 4 + v) * 32 + lane] = acc[nt][v];
  __syncthreads();
  for (int idx = threadIdx.x; idx < NT * 4 * 32; idx += blockDim.x) {
    float sum = 0.f;
    for (int k = 0; k < nw; k++) sum += red[k * NT * 4 * 32 + idx];
    // Accumulator v = 4nt+i of lane l: row g (+8 for i >= 2), token 2t (+1 for odd i).
    const int v = idx / 32, l = idx % 32;
    const int nt = v / 4, i = v % 4;
    const int col = s * kStripe + (l >> 2) + (i >= 2 ? 8 : 0);
    const int tok = nt * 8 + 2 * (l & 3) + (i & 1);
    if (col < out && tok < tokens) y[(size_t)tok * out + col] = __float2half_rn(sum);
  }
}

// chunk_part accumulates one chunk's exact (q-z) products into part.
template <int NT>
__device__ __forceinline__ void chunk_part(float part[NT][4], const uint4 q, const uint4 (&x)[NT][2], __half2 z0,
                                           __half2 z1) {
  const uint32_t qw[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int j = 0; j < 4; j++) {
    const uint32_t kMask = 0x000f000f, kMask16 = 0x00f000f0, kMagic = 0x64006400;
    const uint32_t w8 = qw[j] >> 8;
    uint32_t a[4];
    a[0] = as_u32(__hsub2(as_h2(lop3<0xea>(qw[j], kMask, kMagic)), z0));
    a[1] = as_u32(__hsub2(as_h2(lop3<0xea>(qw[j], kMask16, kMagic)), z1));
    a[2] = as_u32(__hsub2(as_h2(lop3<0xea>(w8, kMask, kMagic)), z0));
    a[3] = as_u32(__hsub2(as_h2(lop3<0xea>(w8, kMask16, kMagic)), z1));
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
      const uint32_t* b = reinterpret_cast<const uint32_t*>(&x[nt][0]);
      mma_16816(part[nt], a, b[2 * j], b[2 * j + 1]);
    }
  }
}

template <int NT>
struct Pair {
  uint4 q[2];
  uint4 x[2][NT][2];
  uint32_t z0, z1;
};

// pair_load_w issues a group's weight and scale/zero loads: constant data,
// safe before grid_dep_wait.
template <int NT>
__device__ __forceinline__ void pair_load_w(Pair<NT>& d, const uint4* wc, const uint32_t* zc) {
  d.q[0] = ld_stream(wc);
  d.q[1] = ld_stream(wc + 32);
  d.z0 = __ldg(zc);
  d.z1 = __ldg(zc + 8);
}

// pair_load_x issues a group's x loads (the previous kernel's output).
template <int NT>
__device__ __forceinline__ void pair_load_x(Pair<NT>& d, const uint4* const xc[NT], const bool xv[NT]) {
#pragma unroll
  for (int h = 0; h < 2; h++)
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
      if (xv[nt]) {
        d.x[h][nt][0] = __ldg(xc[nt] + h * 8);
        d.x[h][nt][1] = __ldg(xc[nt] + h * 8 + 1);
      } else {
        d.x[h][nt][0] = d.x[h][nt][1] = make_uint4(0, 0, 0, 0);
      }
    }
}

template <int NT>
__device__ __forceinline__ void pair_load(Pair<NT>& d, const uint4* wc, const uint32_t* zc, const uint4* const xc[NT],
                                          const bool xv[NT]) {
  pair_load_w<NT>(d, wc, zc);
  pair_load_x<NT>(d, xc, xv);
}

template <int NT>
__device__ __forceinline__ void pair_compute(float acc[NT][4], const Pair<NT>& d) {
  const __half2 z0 = __high2half2(as_h2(d.z0));
  const __half2 z1 = __hfma2(__high2half2(as_h2(d.z1)), __float2half2_rn(16.f), __float2half2_rn(-15360.f));
  float part[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; nt++)
#pragma unroll
    for (int v = 0; v < 4; v++) part[nt][v] = 0.f;
  chunk_part<NT>(part, d.q[0], d.x[0], z0, z1);
  chunk_part<NT>(part, d.q[1], d.x[1], z0, z1);
  const float s0 = __low2float(as_h2(d.z0)), s1 = __low2float(as_h2(d.z1)) * (1.f / 16.f);
#pragma unroll
  for (int nt = 0; nt < NT; nt++) {
    acc[nt][0] = fmaf(s0, part[nt][0], acc[nt][0]);
    acc[nt][1] = fmaf(s0, part[nt][1], acc[nt][1]);
    acc[nt][2] = fmaf(s1, part[nt][2], acc[nt][2]);
    acc[nt][3] = fmaf(s1, part[nt][3], acc[nt][3]);
  }
}

// rope_epilogue ends a q|k|v mat-vec packed in the fused-RoPE column order
// (awq.go: ropeOrder): in the q and k heads, stripe j of a head holds
// columns 8j..8j+7 in rows 0..7 and their rotate-half partners
// D/2+8j..D/2+8j+7 in rows 8..15, so accumulators i and i+2 of a lane
// (rows g, g+8, same token) are one RoPE pair. Each pair is summed over the
// warps and rounded to fp16 exactly as the plain store does, rotated by
// rope_rotate as rope_append does, and written where rope_append would put
// it: q rotated to its own columns of y (the q|k|v rows), k rotated and v
// into the cache slot pos % cap. The k and v columns of y are not written
// (the attention kernels read k and v from the cache only). The GEMM's
// epilogue (awq_gemm.cu, kEpiRope) does the same per pair through
// rope_pair_store (awq_epilogue.cuh); this copy is kept as it was so that
// the mat-vec's SASS does not change.
template <int NT>
__device__ __forceinline__ void rope_epilogue(const float* red, __half* __restrict__ y, const RopeArgs& ra, int s,
                                              int nw, int tokens, int out) {
  const int D = ra.head_dim, half = D / 2;
  const int qk = (ra.heads + ra.kv_heads) * D;  // the permuted q and k columns
  const int col0 = s * kStripe;
  const int pos0 = ra.params[kParamPos];
  for (int idx = threadIdx.x; idx < NT * 2 * 32; idx += blockDim.x) {
    const int l = idx % 32, p = idx / 32;  // p = 2nt + i, i = 0, 1
    const int nt = p / 2, i = p % 2, g = l >> 2;
    const int tok = nt * 8 + 2 * (l & 3) + i;
    if (tok >= tokens || col0 >= out) continue;
    const int v1 = (nt * 4 + i) * 32 + l, v2 = v1 + 2 * 32;  // rows g, g+8
    float sum1 = 0.f, sum2 = 0.f;
    for (int k = 0; k < nw; k++) {
      sum1 += red[k * NT * 4 * 32 + v1];
      sum2 += red[k * NT * 4 * 32 + v2];
    }
    const __half h1 = __float2half_rn(sum1), h2 = __float2half_rn(sum2);
    const int pos = pos0 + tok;
    const size_t slot = (size_t)(pos % ra.cap) * D;
    if (col0 < qk) {
      const int head = col0 / D, c = 8 * ((col0 % D) / kStripe) + g;  // pair (c, c + D/2) of the head
      __half r1, r2;
      rope_rotate(h1, h2, pos, c, D, ra.theta, r1, r2);
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
      // v keeps the file's column order; rows g and g+8 lie in one head
      // (D is a multiple of 16 and stripes start at multiples of 16).
      const int c = col0 - qk + g, head = c / D, d = c % D;
      __half* v = ra.vc + (size_t)head * ra.cap * D + slot;
      v[d] = h1;
      v[d + 8] = h2;
    }
  }
}

// silu_epilogue ends a gate|up mat-vec packed in the fused-SiLU column
// order (awq.go: siluOrder): stripe s holds gate columns 8s..8s+7 in rows
// 0..7 and the matching up columns in rows 8..15, so accumulators i and i+2
// of a lane (rows g, g+8, same token) are one (gate, up) pair. Each sum runs
// over the warps in the plain store's order and is rounded to fp16 as the
// plain store rounds it; silu_gate (silu.cuh) then computes silu_mul's value
// from those two halves. So act gets, bit for bit, what the plain mat-vec's
// y store followed by silu_mul would write, with no gate|up round trip.
// act (tokens, out/2) fp16.
template <int NT>
__device__ __forceinline__ void silu_epilogue(const float* red, __half* __restrict__ act, int s, int nw, int tokens,
                                              int out) {
  const int inter = out / 2, j0 = s * (kStripe / 2);
  for (int idx = threadIdx.x; idx < NT * 2 * 32; idx += blockDim.x) {
    const int l = idx % 32, p = idx / 32;  // p = 2nt + i, i = 0, 1
    const int nt = p / 2, i = p % 2;
    const int tok = nt * 8 + 2 * (l & 3) + i;
    if (tok >= tokens || j0 >= inter) continue;
    const int v1 = (nt * 4 + i) * 32 + l, v2 = v1 + 2 * 32;  // rows g (gate), g+8 (up)
    float sum1 = 0.f, sum2 = 0.f;
    for (int k = 0; k < nw; k++) {
      sum1 += red[k * NT * 4 * 32 + v1];
      sum2 += red[k * NT * 4 * 32 + v2];
    }
    act[(size_t)tok * inter + j0 + (l >> 2)] = silu_gate(__float2half_rn(sum1), __float2half_rn(sum2));
  }
}

// gemv_g128: group 128, NT n-tiles. Warp w takes the contiguous groups
// [w*per, (w+1)*per), two chunks each, in ping-pong pairs. With ROPE the
// epilogue is rope_epilogue's, with SILU silu_epilogue's, instead of the
// plain y store.
template <int NT, bool ROPE = false, bool SILU = false>
__device__ __forceinline__ void gemv_g128(const uint8_t* __restrict__ w, const __half* __restrict__ x,
                                     __half* __restrict__ y, int tokens, int in, int out, RopeArgs ra = RopeArgs()) {
  extern __shared__ __align__(16) uint8_t smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int outP = out_pad(out), chunks = in / kChunk, groups = in / 128;
  const int s = blockIdx.x;
  const int per = (groups + nw - 1) / nw, g0 = warp * per, g1 = min(groups, g0 + per);
  const uint4* wc = reinterpret_cast<const uint4*>(w) + ((size_t)s * chunks + 2 * g0) * 32 + lane;
  const uint32_t* zc = reinterpret_cast<const uint32_t*>(w + sz_offset(in, out)) + (size_t)g0 * outP + s * kStripe + g;
  const uint4* xc[NT];
  bool xv[NT];
#pragma unroll
  for (int nt = 0; nt < NT; nt++) {
    const int tok = nt * 8 + g;
    xv[nt] = tok < tokens;
    xc[nt] = reinterpret_cast<const uint4*>(x + (size_t)(xv[nt] ? tok : 0) * in + 16 * t) + 2 * g0 * 8;
  }
  float acc[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; nt++)
#pragma unroll
    for (int v = 0; v < 4; v++) acc[nt][v] = 0.f;

  // Launched overlapped, the first group's weights are requested while the
  // previous kernel drains; x is its output, so it waits for grid_dep_wait.
  Pair<NT> a, b;
  int gi = g0;
  if (gi < g1) pair_load_w<NT>(a, wc, zc);
  grid_dep_wait();
  if (gi < g1) pair_load_x<NT>(a, xc, xv);
  for (; gi < g1; gi += 2) {
    const bool hb = gi + 1 < g1;
    wc += 64;
    zc += outP;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) xc[nt] += 16;
    if (hb) pair_load<NT>(b, wc, zc, xc, xv);
    pair_compute<NT>(acc, a);
    wc += 64;
    zc += outP;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) xc[nt] += 16;
    if (gi + 2 < g1) pair_load<NT>(a, wc, zc, xc, xv);
    if (hb) pair_compute<NT>(acc, b);
  }

  grid_dep_launch();  // the loads are done: the next kernel may start
  float* red = reinterpret_cast<float*>(smem);
#pragma unroll
  for (int nt = 0; nt < NT; nt++)
#pragma unroll
    for (int v = 0; v < 4; v++) red[(warp * NT * 4 + nt * 4 + v) * 32 + lane] = acc[nt][v];
  __syncthreads();
  if constexpr (ROPE) {
    rope_epilogue<NT>(red, y, ra, s, nw, tokens, out);
  } else if constexpr (SILU) {
    silu_epilogue<NT>(red, y, s, nw, tokens, out);
  } else {
    for (int idx = threadIdx.x; idx < NT * 4 * 32; idx += blockDim.x) {
      float sum = 0.f;
      for (int k = 0; k < nw; k++) sum += red[k * NT * 4 * 32 + idx];
      const int v = idx / 32, l = idx % 32;
      const int nt = v / 4, i = v % 4;
      const int col = s * kStripe + (l >> 2) + (i >= 2 ? 8 : 0);
      const int tok = nt * 8 + 2 * (l & 3) + (i & 1);
      if (col < out && tok < tokens) y[(size_t)tok * out + col] = __float2half_rn(sum);
    }
  }
}

// Dynamic shared memory of a launch with `warps` warps (awq.go: awqPlan).
__host__ __device__ constexpr int gemv_shared(int warps, int nt) { return warps * nt * 4 * 32 * 4; }
// Most warps per block: 16 for one n-tile; 8 for two, whose double-buffered
// x fragments need more than the 64 registers 512 threads would leave.
__host__ __device__ constexpr int gemv_max_warps(int nt) { return nt == 1 ? 16 : 8; }

}  // namespace awq

// Kernels: awq_gemv_g<GROUP>_n<NT>, NT = 1 for 1..8 tokens, 2 for 9..16.
// Launch: grid (OutP/16), block 32*warps (warps <= awq::gemv_max_warps(NT)),
// dynamic shared memory awq::gemv_shared(warps, NT).
#define AWQ_GEMV(G, NT)                                                                         \
  extern "C" __global__ void __launch_bounds__(32 * awq::gemv_max_warps(NT))                   \
      awq_gemv_g##G##_n##NT(const uint8_t* w, const __half* x, __half* y, void* ws, int tokens, \
                            int in, int out) {                                                  \
    if (G == 128) {                                                                             \
      awq::gemv_g128<NT>(w, x, y, tokens, in, out); /* waits after its first weight loads */   \
    } else {                                                                                    \
      grid_dep_wait();                                                                          \
      awq::gemv<G, NT>(w, x, y, tokens, in, out);                                               \
    }                                                                                           \
  }

AWQ_GEMV(32, 1)
AWQ_GEMV(64, 1)
AWQ_GEMV(128, 1)
AWQ_GEMV(32, 2)
AWQ_GEMV(64, 2)
AWQ_GEMV(128, 2)

// Fused-RoPE kernels: awq_gemv_g128_n<NT>_rope runs the group-128 mat-vec
// on a q|k|v projection packed in the fused-RoPE column order (awq.go:
// ropeOrder) and ends with rope_epilogue instead of the y store, replacing
// awq_gemv_g128_n<NT> + rope_append for 1..16 tokens. Launch as
// awq_gemv_g128_n<NT> (awq.go: awqRopePlan); qkv (tokens, out) receives the
// rotated q only, kc and vc (kv_heads, cap, head_dim) the step's k and v.
#define AWQ_GEMV_ROPE(NT)                                                                                 \
  extern "C" __global__ void __launch_bounds__(32 * awq::gemv_max_warps(NT)) awq_gemv_g128_n##NT##_rope(  \
      const uint8_t* w, const __half* x, __half* qkv, __half* kc, __half* vc, const int* params,          \
      int tokens, int in, int out, int heads, int kv_heads, int head_dim, int cap, float theta) {         \
    awq::gemv_g128<NT, true>(w, x, qkv, tokens, in, out, /* waits after its first weight loads */         \
                             awq::RopeArgs{kc, vc, params, heads, kv_heads, head_dim, cap, theta});       \
  }

AWQ_GEMV_ROPE(1)
AWQ_GEMV_ROPE(2)

// Fused-SiLU kernels: awq_gemv_g128_n<NT>_silu runs the group-128 mat-vec on
// a gate|up projection packed in the fused-SiLU column order (awq.go:
// siluOrder) and ends with silu_epilogue instead of the y store, replacing
// awq_gemv_g128_n<NT> + silu_mul for 1..16 tokens. Same launch and
// arguments as awq_gemv_g128_n<NT> (awq.go: awqSiluPlan), but y is act
// (tokens, out/2) fp16, silu_mul's output.
#define AWQ_GEMV_SILU(NT)                                                                                \
  extern "C" __global__ void __launch_bounds__(32 * awq::gemv_max_warps(NT)) awq_gemv_g128_n##NT##_silu( \
      const uint8_t* w, const __half* x, __half* act, void* ws, int tokens, int in, int out) {            \
    awq::gemv_g128<NT, false, true>(w, x, act, tokens, in, out); /* waits after its first weight loads */ \
  }

AWQ_GEMV_SILU(1)
AWQ_GEMV_SILU(2)

// awq_mlp_ring: the MLP of every layer (the fused-SiLU gate|up mat-vec, then
// down; one token, each layer's output the next one's input, no norms) as
// one persistent kernel, for BenchmarkMLPRing: a first piece of a decoder
// that runs a whole step as one kernel instead of 260 dependent ones
// (BENCHMARKS.md, session 9). Each phase's stripes are shared among the
// grid's blocks, with a grid barrier (common.cuh: ticket_arrive) between
// phases instead of a kernel boundary. Each warp copies its groups (two
// 64-row chunks and their scale/zero words) RING groups ahead by cp.async
// into a ring in shared memory, along the sequence of (phase, stripe,
// group) it will consume: across stripes, and across the barrier into the
// next phase, whose weights depend on no earlier phase. So the bytes in
// flight do not depend on the registers, and do not drain at a barrier.
// x is staged in shared memory once a phase (a warp's groups are the same
// in every stripe of a phase), and the last warp to finish a stripe sums
// the warps' partials while the others go on. Each warp sums the same
// groups in the same order as gemv_g128 with as many warps, and the sums
// meet in warp order, so the bits are those of the chain of
// awq_gemv_g128_n1_silu and awq_gemv_g128_n1 with 8 warps. wts: for each
// layer the packed gate|up (siluOrder) and down pointers; xs (layers+1,
// hidden), acts (layers, inter), every buffer written once in a launch, so
// that no block reads a line its cache may hold from before. Launch
// cooperative, grid two blocks a multiprocessor, block 256, dynamic shared
// memory awq::ring_shared(8, 4, max(hidden, inter)); count a multiple of
// the grid's blocks (zero) at the start.
namespace awq {
constexpr int kRingSlot = 2 * 32 * 16 + 2 * 32 * 4;  // two chunks and a lane's two scale/zero words

struct RingPhases {
  const unsigned long long* wts;
  int layers, hidden, inter, warps;
  __device__ __forceinline__ bool down(int p) const { return p & 1; }
  __device__ __forceinline__ const uint8_t* w(int p) const {
    return reinterpret_cast<const uint8_t*>(wts[p]);  // wts: gate|up, down of each layer
  }
  __device__ __forceinline__ int in(int p) const { return down(p) ? inter : hidden; }
  __device__ __forceinline__ int out(int p) const { return down(p) ? hidden : 2 * inter; }
  __device__ __forceinline__ int stripes(int p) const { return out_pad(out(p)) / kStripe; }
  // This warp's groups of phase p: [g0, g1).
  __device__ __forceinline__ void groups(int p, int warp, int& g0, int& g1) const {
    const int n = in(p) / 128, per = (n + warps - 1) / warps;
    g0 = min(n, warp * per);
    g1 = min(n, g0 + per);
  }
};

// RingCursor walks a warp's (phase, stripe, group) sequence, skipping the
// phases where the block has no stripe or the warp no group, and keeps the
// addresses of its group's weights and scale/zero words (so that a copy
// costs no index math).
struct RingCursor {
  int p, s, gi, g0, g1, outP;
  const uint4* wc;
  const uint32_t* zc;
  __device__ __forceinline__ void settle(const RingPhases& ph, int warp, int lane) {
    while (p < 2 * ph.layers) {
      ph.groups(p, warp, g0, g1);
      if (s < ph.stripes(p) && g0 < g1) break;
      p++;
      s = blockIdx.x;
    }
    gi = g0;
    if (p < 2 * ph.layers) {
      const int in = ph.in(p), out = ph.out(p), chunks = in / kChunk;
      const uint8_t* w = ph.w(p);
      outP = out_pad(out);
      wc = reinterpret_cast<const uint4*>(w) + ((size_t)s * chunks + 2 * g0) * 32 + lane;
      zc = reinterpret_cast<const uint32_t*>(w + sz_offset(in, out)) + (size_t)g0 * outP + s * kStripe + (lane >> 2);
    }
  }
  __device__ __forceinline__ void start(const RingPhases& ph, int warp, int lane) {
    p = 0;
    s = blockIdx.x;
    settle(ph, warp, lane);
  }
  __device__ __forceinline__ bool done(const RingPhases& ph) const { return p >= 2 * ph.layers; }
  __device__ __forceinline__ void advance(const RingPhases& ph, int warp, int lane) {
    if (++gi < g1) {
      wc += 64;
      zc += outP;
      return;
    }
    s += gridDim.x;
    settle(ph, warp, lane);
  }
};

// ring_issue copies the cursor's group into slot (or commits nothing past
// the end: every call commits one group of copies, so that waits count).
__device__ __forceinline__ void ring_issue(uint8_t* slot, const RingPhases& ph, const RingCursor& c, int lane) {
  if (!c.done(ph)) {
    cp_async16(slot + 16 * lane, c.wc, true);
    cp_async16(slot + 512 + 16 * lane, c.wc + 32, true);
    cp_async4(slot + 1024 + 4 * lane, c.zc);
    cp_async4(slot + 1152 + 4 * lane, c.zc + 8);
  }
  cp_async_commit_group();
}

constexpr int kRedSlots = 2;  // stripes whose partial sums may wait for their sum at once

__host__ __device__ constexpr int ring_shared(int warps, int ring, int in_max) {
  return warps * (ring * kRingSlot + (in_max / warps + 128) * 2) + kRedSlots * warps * 4 * 32 * 4 + 2 * kRedSlots * 4;
}

// ring_sum is the stripe's epilogue for one token, run by the last warp of
// the block to finish the stripe: the sums over the warps' partials in warp
// order, as gemv_g128's epilogues add them, SiLU-gated (gate|up in
// siluOrder) or stored (down).
__device__ __forceinline__ void ring_sum(const float* red, __half* y, int s, int nw, int out, bool silu, int lane) {
  if (lane & 3) return;  // token 0 only: accumulators 0 and 2 of lanes 4g
  float sum1 = 0.f, sum2 = 0.f;
  for (int k = 0; k < nw; k++) {
    sum1 += red[k * 4 * 32 + lane];
    sum2 += red[k * 4 * 32 + 64 + lane];
  }
  if (silu) {
    const int j0 = s * (kStripe / 2);
    if (j0 < out / 2) y[j0 + (lane >> 2)] = silu_gate(__float2half_rn(sum1), __float2half_rn(sum2));
  } else {
    const int col = s * kStripe + (lane >> 2);
    if (col < out) y[col] = __float2half_rn(sum1);
    if (col + 8 < out) y[col + 8] = __float2half_rn(sum2);
  }
}

template <int WARPS, int RING>
__device__ __forceinline__ void mlp_ring(const unsigned long long* __restrict__ wts, __half* xs, __half* acts,
                                         int layers, int hidden, int inter, unsigned long long* count) {
  extern __shared__ __align__(16) uint8_t smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = WARPS;
  const int in_max = max(hidden, inter), xw = in_max / WARPS + 128;  // halves of x a warp stages
  uint8_t* ring = smem + warp * RING * kRingSlot;
  __half* xsm = reinterpret_cast<__half*>(smem + WARPS * RING * kRingSlot) + warp * xw;
  float* reds = reinterpret_cast<float*>(smem + WARPS * (RING * kRingSlot + xw * 2));
  int* cnt = reinterpret_cast<int*>(reds + kRedSlots * WARPS * 4 * 32);  // warps done with the slot's stripe
  volatile int* done = cnt + kRedSlots;  // the last stripe whose sums the slot gave
  const RingPhases ph{wts, layers, hidden, inter, WARPS};
  if (threadIdx.x < kRedSlots) {
    cnt[threadIdx.x] = 0;
    done[threadIdx.x] = threadIdx.x - kRedSlots;
  }
  __syncthreads();
  int seq = 0;  // stripes this block has run, in every phase

  RingCursor ci;  // the next group to copy; the loops below consume in the same order
  ci.start(ph, warp, lane);
  for (int k = 0; k < RING; k++) {
    ring_issue(ring + k * kRingSlot, ph, ci, lane);
    if (!ci.done(ph)) ci.advance(ph, warp, lane);
  }
  int slot = 0;
  unsigned long long end = 0;
  for (int p = 0; p < 2 * layers; p++) {
    const bool down = p & 1;
    const int out = ph.out(p), stripes = ph.stripes(p);
    const __half* x = down ? acts + (size_t)(p / 2) * inter : xs + (size_t)(p / 2) * hidden;
    __half* y = down ? xs + (size_t)(p / 2 + 1) * hidden : acts + (size_t)(p / 2) * inter;
    if (p > 0) {
      ticket_wait(count, end);
      __syncthreads();
    }
    int g0, g1;
    ph.groups(p, warp, g0, g1);
    // Stage this warp's part of x (coherent loads: x was written in this
    // launch).
    for (int i = lane; i < (g1 - g0) * 16; i += 32) {
      reinterpret_cast<uint4*>(xsm)[i] = __ldcg(reinterpret_cast<const uint4*>(x + (size_t)g0 * 128) + i);
    }
    __syncwarp();
    for (int s = blockIdx.x; s < stripes; s += gridDim.x) {
      float acc[1][4] = {{0.f, 0.f, 0.f, 0.f}};
      for (int gi = g0; gi < g1; gi++) {
        cp_async_wait_group<RING - 1>();
        __syncwarp();
        uint8_t* sl = ring + slot * kRingSlot;
        Pair<1> d;
        d.q[0] = reinterpret_cast<const uint4*>(sl)[lane];
        d.q[1] = reinterpret_cast<const uint4*>(sl + 512)[lane];
        d.z0 = reinterpret_cast<const uint32_t*>(sl + 1024)[lane];
        d.z1 = reinterpret_cast<const uint32_t*>(sl + 1152)[lane];
        const int t = lane & 3;
        const bool xv = (lane >> 2) == 0;
        const uint4* xc = reinterpret_cast<const uint4*>(xsm + (gi - g0) * 128 + 16 * t);
#pragma unroll
        for (int h = 0; h < 2; h++) {
          d.x[h][0][0] = xv ? xc[h * 8] : make_uint4(0, 0, 0, 0);
          d.x[h][0][1] = xv ? xc[h * 8 + 1] : make_uint4(0, 0, 0, 0);
        }
        __syncwarp();
        ring_issue(sl, ph, ci, lane);
        if (!ci.done(ph)) ci.advance(ph, warp, lane);
        slot = slot + 1 == RING ? 0 : slot + 1;
        pair_compute<1>(acc, d);
      }
      // No block barrier: the last warp to finish the stripe sums it,
      // while the others go on to their next stripe.
      const int b = seq % kRedSlots;
      float* red = reds + b * WARPS * 4 * 32;
      while (done[b] < seq - kRedSlots) {
      }
#pragma unroll
      for (int v = 0; v < 4; v++) red[(warp * 4 + v) * 32 + lane] = acc[0][v];
      __syncwarp();
      int old = 0;
      if (lane == 0) {
        __threadfence_block();
        old = atomicAdd(&cnt[b], 1);
      }
      old = __shfl_sync(0xffffffffu, old, 0);
      if (old == WARPS - 1) {
        __threadfence_block();
        ring_sum(red, y, s, nw, out, !down, lane);
        __syncwarp();
        if (lane == 0) {
          cnt[b] = 0;
          __threadfence_block();
          done[b] = seq;
        }
      }
      seq++;
    }
    __syncthreads();
    end = ticket_arrive(count);
  }
  cp_async_wait_group<0>();
}
}  // namespace awq

extern "C" __global__ void __launch_bounds__(256) awq_mlp_ring(const unsigned long long* __restrict__ wts, __half* xs,
                                                              __half* acts, int layers, int hidden, int inter,
                                                              unsigned long long* count) {
  grid_dep_wait();
  awq::mlp_ring<8, 4>(wts, xs, acts, layers, hidden, inter, count);
}
