// AWQ 4-bit matrix-matrix for prefill chunks (tokens > 16): y = x W on the
// tensor cores.
//
// Design (version 3; versions 1 and 2 are in cuda/lab, figures in
// NOTES-awq.md):
// - y^T = W^T x^T with the dequantized weights as the A operand of
//   mma.sync.m16n8k16 (fp16 in, fp32 accumulate), so the packed layout of
//   the mat-vec serves here too: per 64-row chunk a stripe of 16 outputs is
//   one 512-byte piece, one 16-byte word per lane.
// - A block computes MS stripes x NTOK tokens. Per chunk it copies the
//   packed weights, the x tile (NTOK x 64 fp16, rows padded by 16 bytes so
//   the lanes' 16-byte reads are bank-conflict-free) and the chunk's
//   scale/zero rows into shared memory with cp.async, STAGES deep. Source
//   pointers are computed once and advance by constants (version 2 spent
//   three times the instructions on per-chunk addressing and lost 20-50%).
// - Warps are WM x WN; each dequantizes its MS/WM stripes once per k-step
//   (awq::dequant16, one shift per word) and reuses them across its
//   NTOK/WN/8 n-tiles. The production tiles use WN = 1 (one stripe per warp,
//   all 64 tokens), so no stripe is dequantized by two warps.
// - The kernel runs at ~40% of this GPU's measured mma.sync peak (641
//   TFLOP/s on an H200); every tile shape tried lands at 250-275 TFLOP/s at
//   512 tokens: per HMMA the warps still issue ~3 other instructions
//   (dequantization, shared loads, copies) and stall on the per-chunk
//   barrier. On sm_90 the engine runs the wgmma kernels of
//   awq_gemm_wg.sm90a.cu instead (NOTES-gemm-wgmma.md); this one serves
//   every other chip and groups 32 and 64.
#include "awq_common.cuh"
#include "awq_epilogue.cuh"

namespace awq {

constexpr int kGemmXStride = 72;  // halves per x row in shared memory (64 + 8 pad)

__host__ __device__ constexpr int gemm_stage_bytes(int ms, int ntok) {
  return ms * 512 + ntok * kGemmXStride * 2 + 2 * ms * kStripe * 4;
}

// gemm: y = x W for the block's MS stripes x NTOK tokens. EPI kEpiStore
// writes y (tokens, out); kEpiSilu and kEpiRope end as the fused mat-vec
// kernels do (awq_gemv.cu: silu_epilogue, rope_epilogue): y is then the
// activations (tokens, out/2), or q|k|v with ra the caches.
template <int MS, int NTOK, int WM, int WN, int STAGES, int GROUP, int EPI = kEpiStore>
__device__ __forceinline__ void gemm(const uint8_t* __restrict__ w, const __half* __restrict__ x,
                                     __half* __restrict__ y, int tokens, int in, int out, RopeArgs ra = RopeArgs()) {
  constexpr int THREADS = WM * WN * 32;
  constexpr int WS = MS / WM;        // stripes per warp
  constexpr int WT = NTOK / WN / 8;  // n-tiles per warp
  constexpr int SB = gemm_stage_bytes(MS, NTOK);
  constexpr int XOFF = MS * 512, ZOFF = XOFF + NTOK * kGemmXStride * 2;
  constexpr int NW = MS * 32 / THREADS;          // weight pieces per thread
  constexpr int NX = NTOK * 8 / THREADS;         // x pieces per thread
  constexpr int NG = GROUP >= kChunk ? 1 : kChunk / GROUP;  // groups per chunk
  constexpr int NZ = NG * MS * kStripe * 4 / 16;            // scale pieces per block
  static_assert(MS % WM == 0 && NTOK % (WN * 8) == 0, "tile shape");
  static_assert(MS * 32 % THREADS == 0 && NTOK * 8 % THREADS == 0 && NZ <= THREADS, "load split");
  extern __shared__ __align__(16) uint8_t smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int wm = warp % WM, wn = warp / WM;
  const int chunks = in / kChunk, outP = out_pad(out), stripes = outP / kStripe;
  const int s0 = blockIdx.x * MS, n0 = blockIdx.y * NTOK;

  // Copy descriptors: source of chunk 0 (advanced per chunk), stage offset.
  const uint8_t* wsrc[NW];
  bool wok[NW];
#pragma unroll
  for (int r = 0; r < NW; r++) {
    const int idx = tid + r * THREADS, s = s0 + idx / 32;
    wok[r] = s < stripes;
    wsrc[r] = w + ((size_t)(wok[r] ? s : 0) * chunks * 32 + idx % 32) * 16;
  }
  const __half* xsrc[NX];
  bool xok[NX];
  int xdst[NX];
#pragma unroll
  for (int r = 0; r < NX; r++) {
    const int idx = tid + r * THREADS, row = idx / 8, piece = idx % 8;
    xok[r] = n0 + row < tokens;
    xsrc[r] = x + (size_t)(xok[r] ? n0 + row : 0) * in + piece * 8;
    xdst[r] = XOFF + (row * kGemmXStride + piece * 8) * 2;
  }
  const int zgl = tid / (MS * kStripe / 4), zcol = s0 * kStripe + (tid % (MS * kStripe / 4)) * 4;
  const bool zok = tid < NZ && zcol < outP;
  const uint8_t* zsrc = w + sz_offset(in, out) + ((size_t)zgl * outP + (zok ? zcol : 0)) * 4;
  const size_t zstep = (size_t)NG * outP * 4;  // one chunk's worth of groups, for GROUP <= 64

  auto load = [&](int c, int st) {
    uint8_t* sp = smem + st * SB;
#pragma unroll
    for (int r = 0; r < NW; r++) cp_async16(sp + (tid + r * THREADS) * 16, wsrc[r] + (size_t)c * 512, wok[r]);
#pragma unroll
    for (int r = 0; r < NX; r++) cp_async16(sp + xdst[r], xsrc[r] + c * kChunk, xok[r]);
    if (tid < NZ) {
      const size_t zo = GROUP >= kChunk ? (size_t)(c / (GROUP / kChunk)) * outP * 4 : c * zstep;
      cp_async16(sp + ZOFF + tid * 16, zsrc + zo, zok);
    }
  };

  // A lane's 16 rows of a chunk lie in group slot gl of the stage's table.
  const int gl = GROUP >= kChunk ? 0 : 16 * t / GROUP;

  float acc[WS][WT][4];
#pragma unroll
  for (int i = 0; i < WS; i++)
#pragma unroll
    for (int nt = 0; nt < WT; nt++)
#pragma unroll
      for (int v = 0; v < 4; v++) acc[i][nt][v] = 0.f;

#pragma unroll
  for (int st = 0; st < STAGES - 1; st++) {
    if (st < chunks) load(st, st);
    cp_async_commit_group();
  }
  int st = 0;
  for (int c = 0; c < chunks; c++) {
    cp_async_wait_group<STAGES - 2>();
    __syncthreads();  // chunk c landed for all; the stage of chunk c-1 is free again
    {
      const int cn = c + STAGES - 1;
      if (cn < chunks) load(cn, st == 0 ? STAGES - 1 : st - 1);
      cp_async_commit_group();
    }
    const uint8_t* sp = smem + st * SB;
    const uint4* ws = reinterpret_cast<const uint4*>(sp);
    const __half* xs = reinterpret_cast<const __half*>(sp + XOFF);
    const uint32_t* zs = reinterpret_cast<const uint32_t*>(sp + ZOFF);

    uint4 qa[WS];
    uint32_t z0[WS], z1[WS];
#pragma unroll
    for (int i = 0; i < WS; i++) {
      const int sl = wm * WS + i;
      qa[i] = ws[sl * 32 + lane];
      z0[i] = zs[gl * MS * kStripe + sl * kStripe + g];
      z1[i] = zs[gl * MS * kStripe + sl * kStripe + g + 8];
    }
    uint4 xb[WT][2];
#pragma unroll
    for (int nt = 0; nt < WT; nt++) {
      const __half* row = xs + ((wn * WT + nt) * 8 + g) * kGemmXStride + 16 * t;
      xb[nt][0] = *reinterpret_cast<const uint4*>(row);
      xb[nt][1] = *reinterpret_cast<const uint4*>(row + 8);
    }
#pragma unroll
    for (int j = 0; j < 4; j++) {
      uint32_t a[WS][4];
#pragma unroll
      for (int i = 0; i < WS; i++) {
        const uint32_t qw[4] = {qa[i].x, qa[i].y, qa[i].z, qa[i].w};
        dequant16(qw[j], z0[i], z1[i], a[i]);
      }
#pragma unroll
      for (int nt = 0; nt < WT; nt++) {
        const uint32_t* b = reinterpret_cast<const uint32_t*>(&xb[nt][0]);
#pragma unroll
        for (int i = 0; i < WS; i++) mma_16816(acc[i][nt], a[i], b[2 * j], b[2 * j + 1]);
      }
    }
    st = st == STAGES - 1 ? 0 : st + 1;
  }
  cp_async_wait_group<0>();

  gemm_store<EPI, WS, WT>(acc, y, s0 + wm * WS, n0 + wn * WT * 8, g, t, tokens, out, ra);
}

// The production tiles (awq.go: awqGemm*), H200 (NOTES-awq.md, run 7):
// - large: 128 outputs x 64 tokens, 8 warps of one stripe x 64 tokens (no
//   stripe dequantized twice), 3 stages, 43 KB: 253-272 TFLOP/s at 512 tokens;
// - small: 64 outputs x 64 tokens, 4 warps, 4 stages, 47 KB: twice the blocks,
//   for grids that would not fill the GPU (o, down, qkv at <= 256 tokens:
//   160-176 TFLOP/s at 128 tokens where the large tile gets 110-163).
constexpr int kGemmMS = 8, kGemmNTok = 64, kGemmWM = 8, kGemmWN = 1, kGemmStages = 3;
constexpr int kGemmThreads = kGemmWM * kGemmWN * 32;
constexpr int kGemmShared = kGemmStages * gemm_stage_bytes(kGemmMS, kGemmNTok);
constexpr int kGemmSmallMS = 4, kGemmSmallWM = 4, kGemmSmallStages = 4;
constexpr int kGemmSmallThreads = kGemmSmallWM * 32;
constexpr int kGemmSmallShared = kGemmSmallStages * gemm_stage_bytes(kGemmSmallMS, kGemmNTok);
static_assert(kGemmShared <= 48 * 1024 && kGemmSmallShared <= 48 * 1024,
              "over the default dynamic shared memory limit");

}  // namespace awq

// Kernels: awq_gemm_g<GROUP> (large tile) and awq_gemm_small_g<GROUP>.
// Launch: grid (ceil(OutP/16/MS), ceil(tokens/64)), block kGemm[Small]Threads,
// dynamic shared memory kGemm[Small]Shared.
#define AWQ_GEMM(G)                                                                               \
  extern "C" __global__ void __launch_bounds__(awq::kGemmThreads)                                \
      awq_gemm_g##G(const uint8_t* w, const __half* x, __half* y, void* ws, int tokens, int in,    \
                    int out) {                                                                    \
    grid_dep_launch();                                                                       \
    grid_dep_wait();                                                                         \
    awq::gemm<awq::kGemmMS, awq::kGemmNTok, awq::kGemmWM, awq::kGemmWN, awq::kGemmStages, G>(      \
        w, x, y, tokens, in, out);                                                                \
  }                                                                                               \
  extern "C" __global__ void __launch_bounds__(awq::kGemmSmallThreads)                           \
      awq_gemm_small_g##G(const uint8_t* w, const __half* x, __half* y, void* ws, int tokens,      \
                          int in, int out) {                                                      \
    grid_dep_launch();                                                                       \
    grid_dep_wait();                                                                         \
    awq::gemm<awq::kGemmSmallMS, awq::kGemmNTok, awq::kGemmSmallWM, 1, awq::kGemmSmallStages, G>( \
        w, x, y, tokens, in, out);                                                                \
  }

AWQ_GEMM(32)
AWQ_GEMM(64)
AWQ_GEMM(128)

// Fused-epilogue kernels (group 128, on weights packed in a fused column
// order, NOTES-gemm-epilogue.md): awq_gemm[_small]_g128_silu runs the GEMM
// on a gate|up projection in siluOrder and writes silu(gate) * up to act
// (tokens, out/2), replacing the GEMM + silu_mul_perm; same launch and
// arguments as awq_gemm[_small]_g128 (awq.go: awqGemmEpiPlan).
#define AWQ_GEMM_SILU(G)                                                                                     \
  extern "C" __global__ void __launch_bounds__(awq::kGemmThreads)                                          \
      awq_gemm_g##G##_silu(const uint8_t* w, const __half* x, __half* act, void* ws, int tokens, int in,      \
                           int out) {                                                                        \
    grid_dep_launch();                                                                                       \
    grid_dep_wait();                                                                                         \
    awq::gemm<awq::kGemmMS, awq::kGemmNTok, awq::kGemmWM, awq::kGemmWN, awq::kGemmStages, G, awq::kEpiSilu>( \
        w, x, act, tokens, in, out);                                                                         \
  }                                                                                                          \
  extern "C" __global__ void __launch_bounds__(awq::kGemmSmallThreads)                                     \
      awq_gemm_small_g##G##_silu(const uint8_t* w, const __half* x, __half* act, void* ws, int tokens,       \
                                 int in, int out) {                                                          \
    grid_dep_launch();                                                                                       \
    grid_dep_wait();                                                                                         \
    awq::gemm<awq::kGemmSmallMS, awq::kGemmNTok, awq::kGemmSmallWM, 1, awq::kGemmSmallStages, G,            \
              awq::kEpiSilu>(w, x, act, tokens, in, out);                                                    \
  }

AWQ_GEMM_SILU(128)

// awq_gemm[_small]_g128_rope runs the GEMM on a q|k|v projection in
// ropeOrder and ends as rope_append_perm would after it: q rotated into its
// own columns of qkv (tokens, out), k rotated and v into the caches kc, vc
// (kv_heads, cap, head_dim) at slot pos % cap. Launch shape as
// awq_gemm[_small]_g128, arguments as awq_gemv_g128_n<NT>_rope.
#define AWQ_GEMM_ROPE(G)                                                                                     \
  extern "C" __global__ void __launch_bounds__(awq::kGemmThreads) awq_gemm_g##G##_rope(                     \
      const uint8_t* w, const __half* x, __half* qkv, __half* kc, __half* vc, const int* params, int tokens,  \
      int in, int out, int heads, int kv_heads, int head_dim, int cap, float theta) {                        \
    grid_dep_launch();                                                                                       \
    grid_dep_wait();                                                                                         \
    awq::gemm<awq::kGemmMS, awq::kGemmNTok, awq::kGemmWM, awq::kGemmWN, awq::kGemmStages, G, awq::kEpiRope>( \
        w, x, qkv, tokens, in, out, awq::RopeArgs{kc, vc, params, heads, kv_heads, head_dim, cap, theta});   \
  }                                                                                                          \
  extern "C" __global__ void __launch_bounds__(awq::kGemmSmallThreads) awq_gemm_small_g##G##_rope(          \
      const uint8_t* w, const __half* x, __half* qkv, __half* kc, __half* vc, const int* params, int tokens,  \
      int in, int out, int heads, int kv_heads, int head_dim, int cap, float theta) {                        \
    grid_dep_launch();                                                                                       \
    grid_dep_wait();                                                                                         \
    awq::gemm<awq::kGemmSmallMS, awq::kGemmNTok, awq::kGemmSmallWM, 1, awq::kGemmSmallStages, G,            \
              awq::kEpiRope>(w, x, qkv, tokens, in, out,                                                     \
                             awq::RopeArgs{kc, vc, params, heads, kv_heads, head_dim, cap, theta});          \
  }

AWQ_GEMM_ROPE(128)
