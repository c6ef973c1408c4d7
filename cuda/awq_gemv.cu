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
#include "awq_pair.cuh"

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
  if (GROUP >= kChunk) {
    group_sum<NT>(acc, d.z0, d.z1,
                  [&](float (*part)[4], __half2 z0, __half2 z1) { chunk_part<NT>(part, d.q, d.x, z0, z1); });
  } else {
    const uint32_t qw[4] = {d.q.x, d.q.y, d.q.z, d.q.w};
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
// rope_pair_store (awq_epilogue.cuh). A thread's pair column (and so its
// frequency) is the same in every pass of the loop below, so the caller
// computes inv_freq = rope_inv_freq(c) (a powf) and row0 = pos0 % cap
// before its wait, off the step's critical tail (rope_head).
template <int NT>
__device__ __forceinline__ void rope_epilogue(const float* red, __half* __restrict__ y, const RopeArgs& ra, int s,
                                              int nw, int tokens, int out, float inv_freq, int row0) {
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
    int row = row0 + tok;
    while (row >= ra.cap) row -= ra.cap;
    const size_t slot = (size_t)row * D;
    if (col0 < qk) {
      const int head = col0 / D, c = 8 * ((col0 % D) / kStripe) + g;  // pair (c, c + D/2) of the head
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
      // v keeps the file's column order; rows g and g+8 lie in one head
      // (D is a multiple of 16 and stripes start at multiples of 16).
      const int c = col0 - qk + g, head = c / D, d = c % D;
      __half* v = ra.vc + (size_t)head * ra.cap * D + slot;
      v[d] = h1;
      v[d + 8] = h2;
    }
  }
}

// rope_head computes what rope_epilogue takes from its caller for stripe s
// and lane row g: the frequency of the thread's pair column (the value
// rope_rotate would compute) and the first token's ring row.
__device__ __forceinline__ void rope_head(const RopeArgs& ra, int s, int g, float& inv_freq, int& row0) {
  const int D = ra.head_dim;
  inv_freq = rope_inv_freq(8 * ((s * kStripe % D) / kStripe) + g, D, ra.theta);
  row0 = ra.params[kParamPos] % ra.cap;
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
  // previous kernel drains, and the next two groups are asked into L2 (lanes
  // 0..15, a 128-byte line each); x is its output, so it waits for
  // grid_dep_wait. Two groups made a one-token step 2% faster, one about
  // as much, three or more slower (runs 137-138).
  Pair<NT> a, b;
  int gi = g0;
  if (gi < g1) pair_load_w<NT>(a, wc, zc);
  if (const int pg = 1 + lane / 8; pg <= 2 && g0 + pg < g1) prefetch_l2(wc - lane + pg * 64 + 8 * (lane % 8));
  // rope_epilogue's frequency and ring row, while the previous kernel
  // drains: params is final before the step's first kernel starts (staged
  // by the host, or written by the last step's argmax_chain, which ends
  // that step), as attn_verify2's early reads assume (overlap_test.go).
  float rf = 0.f;
  int rrow = 0;
  if constexpr (ROPE)
    if (threadIdx.x < NT * 2 * 32) rope_head(ra, s, g, rf, rrow);  // the epilogue's threads only
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
    rope_epilogue<NT>(red, y, ra, s, nw, tokens, out, rf, rrow);
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
