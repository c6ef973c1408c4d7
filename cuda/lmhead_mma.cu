// lm_head on the tensor cores: logits = x W^T for 1..16 tokens with
// mma.sync.m16n8k16 (fp16 in, fp32 accumulate), W the fp16 (vocab, hidden)
// matrix. A is x, its 16 rows the step's tokens padded with zero rows; B is
// W^T, 8 vocabulary rows a tile: W is row-major, so a lane's 16-byte load
// of one row is two k-steps' B fragments as they are, no register moves.
//
// Batch invariance: an mma's output row depends only on that row of A, and
// every step size runs the same mma sequence over k for a vocabulary row
// (the same k-slices per warp, the same chunks and k-steps in the same
// order, the slices added in the same order). So a token's logits are the
// same bits whatever the step's size and the token's place in it.
//
// The k order inside a chunk is permuted so that each lane loads 16 bytes at
// a time: a dot product does not care in which order k comes as long as A
// and B use the same one, and here a lane's A and B fragments come from the
// same k offsets (lmm_chunk).
#include "common.cuh"
#include "ptx.cuh"

constexpr int kLMMTiles = 4;   // 8-row vocabulary tiles (mma N) per block
constexpr int kLMMSlices = 4;  // warps per block, one k-slice each
constexpr int kLMMChunk = 64;  // k per load step (4 mma k-steps)
constexpr int kLMMRows = kLMMTiles * 8;
constexpr int kLMMTokens = 16;         // mma M: tokens, zero rows past the step's
constexpr int kLMMPad = kLMMRows + 4;  // shared row stride: no bank conflicts

// One chunk's fragments of a lane (g = lane/4, t = lane%4): w[r][u] is
// vocabulary row 8r + g of the block's rows at k 64c + 32u + 8t .. +7;
// x[h][u] is token g + 8h at the same k (zeros past the step's tokens).
struct LMMChunk {
  uint4 w[kLMMTiles][2];
  uint4 x[2][2];
};

__device__ __forceinline__ uint32_t lmm_word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// lmm_load issues every W load of chunk c before the x loads: W comes from
// HBM, x from L1/L2.
__device__ __forceinline__ void lmm_load(LMMChunk& f, const uint4* const (&wr)[kLMMTiles],
                                         const uint4* const (&xr)[2], const bool (&xv)[2], int c) {
#pragma unroll
  for (int u = 0; u < 2; u++)
#pragma unroll
    for (int r = 0; r < kLMMTiles; r++) f.w[r][u] = __ldcs(wr[r] + c * 8 + u * 4);  // read once
#pragma unroll
  for (int u = 0; u < 2; u++)
#pragma unroll
    for (int h = 0; h < 2; h++) f.x[h][u] = xv[h] ? __ldg(xr[h] + c * 8 + u * 4) : make_uint4(0, 0, 0, 0);
}

// lmm_chunk: four k-steps of C (16 tokens x 8 rows) += x (16 x 16 k) W^T
// (16 k x 8 rows) per tile. Step s takes words 2(s%2), 2(s%2)+1 of the
// lane's 16-byte piece u = s/2: as b0/b1 (row g, logical k 2t.. and
// 2t+8..: two consecutive registers of the loaded W, used in place) and as
// a[0]/a[2] (token g) and a[1]/a[3] (token g+8) at the same logical k.
// Both come from physical k 64c + 32u + 8t + 4(s%2) + 0..1 and + 2..3.
__device__ __forceinline__ void lmm_chunk(float (&acc)[kLMMTiles][4], const LMMChunk& f) {
#pragma unroll
  for (int s = 0; s < 4; s++) {
    const int u = s >> 1, w0 = (s & 1) * 2;
    const uint32_t a[4] = {lmm_word(f.x[0][u], w0), lmm_word(f.x[1][u], w0),
                           lmm_word(f.x[0][u], w0 + 1), lmm_word(f.x[1][u], w0 + 1)};
#pragma unroll
    for (int r = 0; r < kLMMTiles; r++)
      mma_16816(acc[r], a, lmm_word(f.w[r][u], w0), lmm_word(f.w[r][u], w0 + 1));
  }
}

// grid (ceil(vocab/32)), block 128. W (vocab, hidden) fp16; x (tokens,
// hidden) fp16; logits (tokens, vocab) fp32. hidden % 64 == 0,
// 1 <= tokens <= 16. Warp w sums chunks [w*C/4, (w+1)*C/4) of the
// C = hidden/64 for the block's 32 rows; the four partial sums are added in
// warp order. PF (prefetch) changes the schedule only, never the sums.
template <bool PF>
__device__ void lm_head_mma_body(const __half* __restrict__ W, const __half* __restrict__ x,
                                 float* __restrict__ logits, int tokens, int vocab, int hidden) {
  __shared__ float part[kLMMSlices][kLMMTokens][kLMMPad];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int row0 = blockIdx.x * kLMMRows;
  const uint4* wr[kLMMTiles];
#pragma unroll
  for (int r = 0; r < kLMMTiles; r++)
    wr[r] = reinterpret_cast<const uint4*>(W + (size_t)min(row0 + 8 * r + g, vocab - 1) * hidden) + t;
  const uint4* xr[2];
  bool xv[2];
#pragma unroll
  for (int h = 0; h < 2; h++) {
    xv[h] = g + 8 * h < tokens;
    xr[h] = reinterpret_cast<const uint4*>(x + (size_t)(xv[h] ? g + 8 * h : 0) * hidden) + t;
  }
  float acc[kLMMTiles][4];
#pragma unroll
  for (int r = 0; r < kLMMTiles; r++)
#pragma unroll
    for (int i = 0; i < 4; i++) acc[r][i] = 0.f;

  const int chunks = hidden / kLMMChunk;
  const int c0 = warp * chunks / kLMMSlices, c1 = (warp + 1) * chunks / kLMMSlices;
  if constexpr (PF) {
    // The next chunk's loads are all issued before this chunk's mma
    // (ptxas keeps them ahead: W is used in place).
    if (c0 < c1) {
      LMMChunk cur;
      lmm_load(cur, wr, xr, xv, c0);
      for (int c = c0; c < c1; c++) {
        LMMChunk nxt;
        if (c + 1 < c1) lmm_load(nxt, wr, xr, xv, c + 1);
        lmm_chunk(acc, cur);
        cur = nxt;
      }
    }
  } else {
    // Load, then multiply: fewer registers, more blocks resident; ptxas
    // splits a chunk's loads around the first mma, though.
    for (int c = c0; c < c1; c++) {
      LMMChunk cur;
      lmm_load(cur, wr, xr, xv, c);
      lmm_chunk(acc, cur);
    }
  }

  // C fragment: acc[r] = tokens g (+8 for [2], [3]), rows 8r + 2t (+1 for
  // [1], [3]).
#pragma unroll
  for (int r = 0; r < kLMMTiles; r++) {
    const int m = 8 * r + 2 * t;
    part[warp][g][m] = acc[r][0];
    part[warp][g][m + 1] = acc[r][1];
    part[warp][g + 8][m] = acc[r][2];
    part[warp][g + 8][m + 1] = acc[r][3];
  }
  __syncthreads();
  for (int e = threadIdx.x; e < kLMMTokens * kLMMRows; e += blockDim.x) {
    const int n = e / kLMMRows, m = e % kLMMRows;
    if (n < tokens && row0 + m < vocab) {
      float v = part[0][n][m];
#pragma unroll
      for (int w = 1; w < kLMMSlices; w++) v += part[w][n][m];
      logits[(size_t)n * vocab + row0 + m] = v;
    }
  }
}

// lm_head_mma<V>: V "" prefetches the next chunk while it multiplies one,
// "_np" loads then multiplies each chunk (lmHeadPlan on the Go side).
#define LM_HEAD_MMA(V, PF)                                                                      \
  extern "C" __global__ void __launch_bounds__(kLMMSlices * 32) lm_head_mma##V(                  \
      const __half* __restrict__ W, const __half* __restrict__ x, float* __restrict__ logits,   \
      int tokens, int vocab, int hidden) {                                                      \
    grid_dep_launch();                                                                          \
    grid_dep_wait();                                                                            \
    lm_head_mma_body<PF>(W, x, logits, tokens, vocab, hidden);                                  \
  }
LM_HEAD_MMA(, true)
LM_HEAD_MMA(_np, false)
