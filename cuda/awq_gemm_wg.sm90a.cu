// AWQ 4-bit matrix-matrix for prefill chunks on Hopper's warpgroup MMA
// (wgmma, sm_90a): the same y = x W as awq_gemm.cu, for group 128.
//
// This nvcc (11.8) cannot assemble wgmma, so this file is shipped as PTX
// for the driver to compile (Makefile: *.sm90a.cu). Why wgmma: the mma.sync
// GEMM is bound by shared-memory traffic at ~45% of the mma.sync peak
// (NOTES-awq.md, run 9: every warp reads the whole x tile through registers
// per chunk); wgmma reads its B operand straight from shared memory, and a
// warpgroup's m64nNk16 does N/8 times the work of one mma.sync per issue.
//
// Design:
// - A block is four warpgroups (512 threads) and 64 tokens; warp w owns
//   stripe blockIdx.x*16 + w, and a warpgroup's four warps form the m64 of
//   its m64n64k16 wgmmas. All of them share the block's x tile. The A
//   operand comes from registers: a lane's 16-byte word of a chunk,
//   dequantized as the mma.sync kernels do (awq::dequant16), is exactly its
//   A fragment for the chunk's four k-steps, since wgmma's A fragment per
//   warp is mma.sync's.
// - B is the x tile (64 tokens x one 64-row chunk) in shared memory,
//   K-major with the 128-byte swizzle. The packed layout permutes the k
//   order inside a chunk (awq.go), so x is staged through registers and
//   stored in that order: k-step j's logical k = 8h + 2t + e is input row
//   16t + 4j + 2h + e. Each of the first 256 threads loads four 8-byte
//   pieces of one x row (one per t, for its k-step j) and the permutation
//   is which of its registers go into each 16-byte shared store.
// - Pipeline: five stages of x; a warpgroup issues chunk c's four wgmmas,
//   then, while they run, waits for chunk c-1's (wgmma.wait_group 1),
//   dequantizes chunk c+1 into the other A buffer, stores x of chunk c+2
//   into the stage chunk c-3 used, and loads x of chunk c+4 and the weights
//   of chunk c+3 into registers. One proxy fence and barrier per two
//   chunks, after the odd ones, with five stages: the probes of run 42
//   showed the per-chunk fence and barrier costing gate|up 56 of 347 us,
//   and halving them took the 6,435-token prefill 330.4 -> 313.3 ms (run
//   44). The stage written at chunk c last held chunk c-3, which every
//   warpgroup finished before the last barrier (after chunk c-1 or c-2: it
//   had waited for c-2 or c-3); chunk c+2's x, stored at chunk c, is
//   fenced and published by the barrier after chunk c or c+1.
// - The other tiles measured (two warpgroups, 64 or 128 tokens; x by
//   cp.async) and their figures: NOTES-gemm-wgmma.md (tag wg-variants).
// - The sums are fp32 over the chunks' k-steps in order, as the mma.sync
//   kernel adds them; the epilogues are gemm_store's (awq_epilogue.cuh).
#include "awq_common.cuh"
#include "awq_epilogue.cuh"
#include "awq_wg.cuh"
#include "wgmma.cuh"

namespace awq {

constexpr int kWgTokens = 64;                // tokens per block (the wgmma's N)
constexpr int kWgWarps = 16;                 // four warpgroups, one stripe a warp
constexpr int kWgThreads = kWgWarps * 32;
constexpr int kWgXThreads = 256;             // threads that stage x: 4 per row
constexpr int kWgStages = 5;                 // x tiles in shared memory
constexpr int kWgStageBytes = kWgTokens * 128;
// Dynamic shared memory of a block: the stages, plus room to align them to
// 1024 bytes (the 128-byte swizzle repeats every 8 rows of 128 bytes).
constexpr int kWgShared = kWgStages * kWgStageBytes + 1024;  // awq.go: awqWgShared
static_assert(kWgShared <= 48 * 1024, "the launch would have to raise the dynamic shared memory limit");

// ld_x loads two words of x through L2 (ld.global.cg), or zeros where
// !ok. Not the read-only path: x is written by the kernel before, which may
// still run when this one starts (overlapped launches), and the driver's
// compiler may move read-only loads above grid_dep_wait.
__device__ __forceinline__ void ld_x(uint32_t (&v)[2], const __half* p, bool ok) {
  v[0] = v[1] = 0;
  if (ok) asm volatile("ld.global.cg.v2.u32 {%0,%1}, [%2];\n" : "=r"(v[0]), "=r"(v[1]) : "l"(p) : "memory");
}

// WARPS: kWgWarps, or 12 (three warpgroups: awq_gemm_wg12_g128_rope, for a
// q|k|v projection whose stripes fill the GPU's multiprocessors better in
// blocks of 12). Each warp's stripe is computed the same way either way.
template <int EPI, int WARPS = kWgWarps>
__device__ __forceinline__ void gemm_wg(const uint8_t* __restrict__ w, const __half* __restrict__ x,
                                        __half* __restrict__ y, int tokens, int in, int out, RopeArgs ra) {
  constexpr int WT = kWgTokens / 8, ND = kWgTokens / 2;  // n-tiles, accumulators per thread
  static_assert(WARPS * 32 >= kWgXThreads, "x is staged by the block's first kWgXThreads threads");
  extern __shared__ __align__(16) uint8_t smem[];
  const uint32_t sbase = (smem_addr(smem) + 1023) & ~1023u;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int chunks = in / kChunk, stripes = out_pad(out) / kStripe;
  const int s0 = blockIdx.x * WARPS, n0 = blockIdx.y * kWgTokens;
  const int stripe = s0 + warp;
  const bool sok = stripe < stripes;

  const StripeReader sr(w, in, out, sok ? stripe : 0, lane);

  // x: thread tid < 256 holds row xr's k-step j = tid % 4; its piece t of
  // chunk c is input rows 16t + 4j .. 16t + 4j + 3 of the chunk (8 bytes).
  const bool xt = tid < kWgXThreads;
  const int xr = (tid % kWgXThreads) / 4, xj = tid % 4;
  const bool xok = xt && n0 + xr < tokens;
  const __half* xsrc = x + (size_t)(xok ? n0 + xr : 0) * in + 4 * xj;
  // Shared stores: row xr's logical 16-byte chunk 2j + h at swizzled slot
  // (2j + h) ^ (xr % 8): units t = 0..3 of input word h of each piece.
  const uint32_t xdst = xr * 128;

  auto load_x = [&](uint32_t (&xv)[4][2], int c) {
#pragma unroll
    for (int p = 0; p < 4; p++) ld_x(xv[p], xsrc + c * kChunk + 16 * p, xok && c < chunks);
  };
  auto store_x = [&](const uint32_t (&xv)[4][2], int c) {
    if (!xt) return;
    const uint32_t st = sbase + (c % kWgStages) * kWgStageBytes + xdst;
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int slot = (2 * xj + h) ^ (xr & 7);
      asm volatile("st.shared.v4.u32 [%0], {%1,%2,%3,%4};\n" ::"r"(st + slot * 16), "r"(xv[0][h]), "r"(xv[1][h]),
                   "r"(xv[2][h]), "r"(xv[3][h])
                   : "memory");
    }
  };

  float acc[1][WT][4];
  float(&d)[ND] = *reinterpret_cast<float(*)[ND]>(&acc[0][0][0]);
#pragma unroll
  for (int i = 0; i < ND; i++) d[i] = 0.f;

  uint4 wq[2];
  uint32_t z[2][2];
  uint32_t a[2][4][4];
  uint32_t xv[2][4][2];

  // Prologue: x of chunks 0 and 1 into stages 0 and 1, x of 2 and 3 in
  // registers; chunk 0 dequantized, weights of 1 and 2 in registers.
  sr.load(wq[0], z[0][0], z[0][1], 0);
  sr.load(wq[1], z[1][0], z[1][1], 1);
  grid_dep_wait();
  load_x(xv[0], 0);
  load_x(xv[1], 1);
  store_x(xv[0], 0);
  store_x(xv[1], 1);
  load_x(xv[0], 2);
  load_x(xv[1], 3);
  dequant_chunk(a[0], wq[0], z[0][0], z[0][1]);
  sr.load(wq[0], z[0][0], z[0][1], 2);
  fence_proxy_async();
  __syncthreads();

  // One chunk: B is its stage; after the wgmmas, work for later chunks.
  // The stage written at chunk c (for c+2) last held chunk c-3 (see the
  // header); the fence and barrier come after odd chunks only.
  auto step = [&](int c, uint32_t (&acur)[4][4], uint32_t (&anext)[4][4], uint4& wnext, uint32_t (&znext)[2],
                  uint32_t (&xcur)[4][2]) {
    const uint32_t st = sbase + (c % kWgStages) * kWgStageBytes;
    keep(d);
    keep(acur);
    wgmma_fence();
#pragma unroll
    for (int j = 0; j < 4; j++) wgmma_m64n64(d, acur[j], wg_desc(st + 32 * j));
    wgmma_commit();
    wgmma_wait<1>();  // chunk c-1's wgmmas are done: anext and its stage are free
    keep(anext);
    if (c + 1 < chunks) dequant_chunk(anext, wnext, znext[0], znext[1]);
    sr.load(wnext, znext[0], znext[1], c + 3);
    if (c + 2 < chunks) store_x(xcur, c + 2);
    load_x(xcur, c + 4);
    if (c & 1) {
      fence_proxy_async();
      __syncthreads();
    }
  };
  // chunks is even (group 128 = two chunks), so the parities alternate
  // with static register indices.
  for (int c = 0; c < chunks; c += 2) {
    step(c, a[0], a[1], wq[1], z[1], xv[0]);
    step(c + 1, a[1], a[0], wq[0], z[0], xv[1]);
  }
  wgmma_wait<0>();
  keep(d);
  gemm_store<EPI, 1, WT>(acc, y, stripe, n0, g, t, tokens, out, ra);
}

}  // namespace awq

// Kernels awq_gemm_wg_g128[_silu|_rope]: arguments as
// awq_gemm_g128[_silu|_rope]; grid (ceil(OutP/16/16), ceil(tokens/64)),
// block 512, dynamic shared memory kWgShared. in % 128 == 0.
extern "C" __global__ void __launch_bounds__(awq::kWgThreads, 1)
    awq_gemm_wg_g128(const uint8_t* w, const __half* x, __half* y, void* ws, int tokens, int in, int out) {
  grid_dep_launch();
  awq::gemm_wg<awq::kEpiStore>(w, x, y, tokens, in, out, awq::RopeArgs());
}

extern "C" __global__ void __launch_bounds__(awq::kWgThreads, 1)
    awq_gemm_wg_g128_silu(const uint8_t* w, const __half* x, __half* act, void* ws, int tokens, int in, int out) {
  grid_dep_launch();
  awq::gemm_wg<awq::kEpiSilu>(w, x, act, tokens, in, out, awq::RopeArgs());
}

extern "C" __global__ void __launch_bounds__(awq::kWgThreads, 1)
    awq_gemm_wg_g128_rope(const uint8_t* w, const __half* x, __half* qkv, __half* kc, __half* vc, const int* params,
                          int tokens, int in, int out, int heads, int kv_heads, int head_dim, int cap, float theta) {
  grid_dep_launch();
  awq::gemm_wg<awq::kEpiRope>(w, x, qkv, tokens, in, out,
                              awq::RopeArgs{kc, vc, params, heads, kv_heads, head_dim, cap, theta});
}

// awq_gemm_wg12_g128_rope: awq_gemm_wg_g128_rope in blocks of 12 warps
// (three warpgroups, 384 threads): grid (ceil(OutP/16/12), ceil(tokens/64)).
extern "C" __global__ void __launch_bounds__(12 * 32, 1)
    awq_gemm_wg12_g128_rope(const uint8_t* w, const __half* x, __half* qkv, __half* kc, __half* vc,
                            const int* params, int tokens, int in, int out, int heads, int kv_heads, int head_dim,
                            int cap, float theta) {
  grid_dep_launch();
  awq::gemm_wg<awq::kEpiRope, 12>(w, x, qkv, tokens, in, out,
                                  awq::RopeArgs{kc, vc, params, heads, kv_heads, head_dim, cap, theta});
}
