// lm_head on the tensor cores: logits = x W^T for 1..16 tokens with
// mma.sync.m16n8k16 (fp16 in, fp32 accumulate), W the fp16 (vocab, hidden)
// matrix. A is 16 vocabulary rows of W, B is x^T padded with zero columns to
// 8 (lm_head_mma_n1, 1..8 tokens) or 16 (lm_head_mma_n2, 9..16 tokens).
//
// Batch invariance: an mma's output column depends only on that column of B,
// and every instance runs the same mma sequence over k for a vocabulary row
// (the same k-slices per warp, the same chunks and k-steps in the same order,
// the slices added in the same order), n2 only adds a second B tile. So a
// token's logits are the same bits whatever the step's size and the token's
// place in it.
//
// The k order inside a chunk is permuted so that each lane loads 16 bytes at
// a time: a dot product does not care in which order k comes as long as A
// and B use the same one, and here a lane's A and B fragments come from the
// same k offsets (lm_mma_chunk).
#include "common.cuh"
#include "ptx.cuh"

constexpr int kLMMTiles = 2;   // 16-row vocabulary tiles per block
constexpr int kLMMSlices = 4;  // warps per block, one k-slice each
constexpr int kLMMChunk = 64;  // k per load step (4 mma k-steps)
constexpr int kLMMRows = kLMMTiles * 16;
constexpr int kLMMPad = kLMMRows + 4;  // shared row stride: no bank conflicts

// One chunk's fragments of a lane (g = lane/4, t = lane%4): w[r][h][u] is
// row 16r + 8h + g of the block's rows at k 64c + 32u + 8t .. +7; x[j][u]
// is token 8j + g at the same k (zeros past the step's tokens).
template <int N>
struct LMMChunk {
  uint4 w[kLMMTiles][2][2];
  uint4 x[N][2];
};

__device__ __forceinline__ uint32_t lmm_word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

template <int N>
__device__ __forceinline__ void lmm_load(LMMChunk<N>& f, const uint4* const (&wr)[kLMMTiles][2],
                                         const uint4* const (&xr)[N], const bool (&xv)[N], int c) {
#pragma unroll
  for (int u = 0; u < 2; u++) {
#pragma unroll
    for (int r = 0; r < kLMMTiles; r++)
#pragma unroll
      for (int h = 0; h < 2; h++) f.w[r][h][u] = __ldcs(wr[r][h] + c * 8 + u * 4);  // read once
#pragma unroll
    for (int j = 0; j < N; j++) f.x[j][u] = xv[j] ? __ldg(xr[j] + c * 8 + u * 4) : make_uint4(0, 0, 0, 0);
  }
}

// lm_mma_chunk: four k-steps. Step s takes words 2(s%2), 2(s%2)+1 of the
// lane's 16-byte piece u = s/2: a[0]/a[2] (rows g, logical k 2t.. and
// 2t+8..) and b0/b1 (token g, the same logical k) come from the same
// physical k, 64c + 32u + 8t + 4(s%2) + 0..1 and + 2..3.
template <int N>
__device__ __forceinline__ void lmm_chunk(float (&acc)[kLMMTiles][N][4], const LMMChunk<N>& f) {
#pragma unroll
  for (int s = 0; s < 4; s++) {
    const int u = s >> 1, w0 = (s & 1) * 2;
#pragma unroll
    for (int r = 0; r < kLMMTiles; r++) {
      const uint32_t a[4] = {lmm_word(f.w[r][0][u], w0), lmm_word(f.w[r][1][u], w0),
                             lmm_word(f.w[r][0][u], w0 + 1), lmm_word(f.w[r][1][u], w0 + 1)};
#pragma unroll
      for (int j = 0; j < N; j++)
        mma_16816(acc[r][j], a, lmm_word(f.x[j][u], w0), lmm_word(f.x[j][u], w0 + 1));
    }
  }
}

// grid (ceil(vocab/32)), block 128. W (vocab, hidden) fp16; x (tokens,
// hidden) fp16; logits (tokens, vocab) fp32. hidden % 64 == 0,
// tokens <= 8N. Warp w sums chunks [w*C/4, (w+1)*C/4) of the C = hidden/64
// for the block's 32 rows; the four partial sums are added in warp order.
// PF (prefetch) changes the schedule only, never the sums.
template <int N, bool PF>
__device__ void lm_head_mma_body(const __half* __restrict__ W, const __half* __restrict__ x,
                                 float* __restrict__ logits, int tokens, int vocab, int hidden) {
  __shared__ float part[kLMMSlices][N * 8][kLMMPad];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int row0 = blockIdx.x * kLMMRows;
  const uint4* wr[kLMMTiles][2];
#pragma unroll
  for (int r = 0; r < kLMMTiles; r++)
#pragma unroll
    for (int h = 0; h < 2; h++)
      wr[r][h] = reinterpret_cast<const uint4*>(W + (size_t)min(row0 + 16 * r + 8 * h + g, vocab - 1) * hidden) + t;
  const uint4* xr[N];
  bool xv[N];
#pragma unroll
  for (int j = 0; j < N; j++) {
    xv[j] = 8 * j + g < tokens;
    xr[j] = reinterpret_cast<const uint4*>(x + (size_t)(xv[j] ? 8 * j + g : 0) * hidden) + t;
  }
  float acc[kLMMTiles][N][4];
#pragma unroll
  for (int r = 0; r < kLMMTiles; r++)
#pragma unroll
    for (int j = 0; j < N; j++)
#pragma unroll
      for (int i = 0; i < 4; i++) acc[r][j][i] = 0.f;

  const int chunks = hidden / kLMMChunk;
  const int c0 = warp * chunks / kLMMSlices, c1 = (warp + 1) * chunks / kLMMSlices;
  if constexpr (PF) {
    // One chunk in flight while the previous one is multiplied (more
    // registers, fewer blocks resident).
    if (c0 < c1) {
      LMMChunk<N> cur;
      lmm_load(cur, wr, xr, xv, c0);
      for (int c = c0; c < c1; c++) {
        LMMChunk<N> nxt;
        if (c + 1 < c1) lmm_load(nxt, wr, xr, xv, c + 1);
        lmm_chunk(acc, cur);
        cur = nxt;
      }
    }
  } else {
    // Load, then multiply: other warps keep the loads in flight.
    for (int c = c0; c < c1; c++) {
      LMMChunk<N> cur;
      lmm_load(cur, wr, xr, xv, c);
      lmm_chunk(acc, cur);
    }
  }

  // C fragment: acc[r][j] = rows 16r + g (+8 for [2], [3]), tokens
  // 8j + 2t (+1 for [1], [3]).
#pragma unroll
  for (int r = 0; r < kLMMTiles; r++)
#pragma unroll
    for (int j = 0; j < N; j++) {
      const int m = 16 * r + g, n = 8 * j + 2 * t;
      part[warp][n][m] = acc[r][j][0];
      part[warp][n + 1][m] = acc[r][j][1];
      part[warp][n][m + 8] = acc[r][j][2];
      part[warp][n + 1][m + 8] = acc[r][j][3];
    }
  __syncthreads();
  for (int e = threadIdx.x; e < N * 8 * kLMMRows; e += blockDim.x) {
    const int n = e / kLMMRows, m = e % kLMMRows;
    if (n < tokens && row0 + m < vocab) {
      float v = part[0][n][m];
#pragma unroll
      for (int w = 1; w < kLMMSlices; w++) v += part[w][n][m];
      logits[(size_t)n * vocab + row0 + m] = v;
    }
  }
}

// lm_head_mma_n<N><V>: 8N token columns; V "" loads then multiplies each
// chunk, "_pf" prefetches the next (lmHeadPlan on the Go side).
#define LM_HEAD_MMA(N, V, PF)                                                                   \
  extern "C" __global__ void __launch_bounds__(kLMMSlices * 32) lm_head_mma_n##N##V(             \
      const __half* __restrict__ W, const __half* __restrict__ x, float* __restrict__ logits,   \
      int tokens, int vocab, int hidden) {                                                      \
    grid_dep_launch();                                                                          \
    grid_dep_wait();                                                                            \
    lm_head_mma_body<N, PF>(W, x, logits, tokens, vocab, hidden);                               \
  }
LM_HEAD_MMA(1, , false)
LM_HEAD_MMA(2, , false)
LM_HEAD_MMA(1, _pf, true)
LM_HEAD_MMA(2, _pf, true)
