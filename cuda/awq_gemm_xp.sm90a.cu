// AWQ 4-bit matrix-matrix for prefill chunks on wgmma with an x-producer
// warpgroup (sm_90a, shipped as PTX like awq_gemm_wg.sm90a.cu): the same
// y = x W, bit for bit, for group 128.
//
// Why: in awq_gemm_wg every warp dequantizes its weights for 64 tokens,
// stages its share of x and meets the block at a barrier every other chunk;
// the probes of run 42 put the dequantization at a third of its time and
// the x staging and barriers at a fifth (NOTES-gemm-wgmma.md). Dequantized
// weights must stay in the registers of the warps that issue the wgmmas
// (awq_gemm_ws, which put them in shared memory, was bound by shared-memory
// traffic, session 8). So here:
// - the consumer warpgroups only load their weights, dequantize them into
//   A fragments and issue m64nNTk16 wgmmas: each dequantized fragment
//   serves NT (96 or 128) tokens, up to twice awq_gemm_wg's 64, and no
//   consumer stages x;
// - one producer warpgroup stages x (through registers, in the packing's
//   k order: xp_stage_x; or, in the _px kernels, whose x its writers
//   stored in that order, by cp.async) into S stages paced by named
//   barriers: FULL(s), which the producer arrives at after its proxy fence
//   and the consumers wait at, and EMPTY(s), which the consumers arrive at
//   once their wgmmas on the stage have completed and the producer waits at
//   before refilling it. Consumers may run up to S chunks ahead of each
//   other instead of meeting every other chunk.
// - A block is CW consumer warpgroups (4 CW stripes, 64 CW outputs) by NT
//   tokens; warp w of consumer warpgroup c owns stripe 4c + w of the block,
//   and computes it as in awq_gemm_wg: the same fp16 A and B, fp32 sums over
//   the chunks' k-steps in order, so the same bits.
// - The grid runs the token tiles of one column block next to each other,
//   so a block's weights come from L2 after the first tile.
#include "awq_common.cuh"
#include "awq_epilogue.cuh"
#include "awq_wg.cuh"
#include "wgmma.cuh"

// BRIEF_XP_PROBE (build time, default 0: the shipped kernel) takes one part
// of the kernel's work away, wrongly, to measure what that part costs in
// energy at the power limit (BenchmarkGemmEnergy): bit 1, the producer
// loads x only for the first two chunks; bit 2, the consumers dequantize by
// the four masks alone (no fp16 arithmetic); bit 4, the consumers load
// their weights only for the first three chunks; bits 8 and 16, the
// producer loads half or a quarter of x's rows; bit 32, the consumers
// replace the dequantization by one lop3 a fragment that keeps the raw
// bits' variety; bit 128, the producer copies x by 16-byte cp.async
// without its permutation; bit 256, by a 128-byte bulk copy a row (the
// copy engine's path, unswizzled; not run yet). tools/gpu/xpprobe.sh
// builds such a test binary; the figures are in BENCHMARKS.md, "Where the
// prefill GEMMs' energy goes".
#ifndef BRIEF_XP_PROBE
#define BRIEF_XP_PROBE 0
#endif

namespace awq {

// The block's threads and dynamic shared memory (awq.go: awqXpTile.launch):
// stages of NT rows of 128 bytes, then each consumer warp's NT x 16 halves
// for gemm_store_staged, plus room to align the stages to 1024 bytes.
__host__ __device__ constexpr int xp_threads(int cw) { return (cw + 1) * 128; }
__host__ __device__ constexpr int xp_shared(int stages, int nt, int cw) {
  return stages * nt * 128 + 4 * cw * nt * 32 + 1024;
}

// wgmma_nt: d (64 x NT fp32) += A (64 x 16, registers) x B (16 x NT, K-major).
template <int NT>
__device__ __forceinline__ void wgmma_nt(float (&d)[NT / 2], const uint32_t (&a)[4], uint64_t desc) {
  static_assert(NT == 96 || NT == 128, "tiles of 96 or 128 tokens");
  if constexpr (NT == 128)
    wgmma_m64n128<0>(d, a, desc);
  else
    wgmma_m64n96(d, a, desc);
}

// Named barriers: bar_sync waits until count threads have arrived,
// bar_arrive counts this warp in without waiting.
__device__ __forceinline__ void bar_sync(int id, int count) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}
__device__ __forceinline__ void bar_arrive(int id, int count) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}

// ld_x16 loads 16 bytes of x through L2 (ld.global.cg): not the read-only
// path, since x is written by the kernel before, which may still run
// (awq_gemm_wg.sm90a.cu: ld_x).
__device__ __forceinline__ uint4 ld_x16(const __half* p) {
  uint4 v;
  asm volatile("ld.global.cg.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p)
               : "memory");
  return v;
}

// xp_stage_x is the producer warpgroup of gemm_xp (tid 0..127): it stages
// x of every chunk into stage c % S, in the packing's k order (row r's
// logical 16-byte unit 2j + h holds k-step j's k = 8h + 2t + e, input row
// 16t + 4j + 2h + e, at byte 4t + 2e; the unit sits at slot (2j + h) ^ (r
// % 8) of the row), between EMPTY and FULL. It waits first: nothing it
// reads is constant.
// Eight threads a row each load one 16-byte piece u (input rows 8u ..
// 8u + 7), so a warp's load is four whole 128-byte lines; piece u = 2t + m
// holds word t of units 4m .. 4m + 3, stored as four 4-byte words (a warp's
// store covers each of the 32 banks once). Loading x as awq_gemm_wg does,
// four threads a row in 8-byte pieces from eight lines a warp, kept the
// L1 81% busy with the tensor pipe at 48% (run 112) and was 13-35% slower
// (run 113).
template <int S, int NT, bool PX = false>
__device__ __forceinline__ void xp_stage_x(const __half* __restrict__ x, uint32_t sbase, int tokens, int in, int n0,
                                           int tid, int all) {
  grid_dep_wait();
  constexpr int kFull = 1, kEmpty = 1 + S, RI = NT / 16;  // rows a thread
  const int chunks = in / kChunk;
  const int xr0 = tid / 8, u = tid % 8, pt = u / 2, pm = u % 2;  // first row, piece
  // Rows past the last token load the last token's row, and the two
  // chunks past the end the last chunk again: what they stage feeds only
  // the wgmmas' columns of tokens whose outputs are never stored, and
  // unconditional loads save predicating and zeroing each one (24 of the
  // loop's 105 instructions a chunk, run 121).
  const __half* xsrc[RI];
#pragma unroll
  for (int i = 0; i < RI; i++) xsrc[i] = x + (size_t)min(n0 + xr0 + 16 * i, tokens - 1) * in + 8 * u;
  uint4 v[2][RI];  // buffer, row i
  auto load = [&](int b, int c) {
    if constexpr ((BRIEF_XP_PROBE & 1) != 0)
      if (c >= 2) return;
    const int cc = min(c, chunks - 1);
    // Probe bits 8 and 16: load a half or a quarter of the rows, the rest
    // copies of them (what sharing x in a cluster of 2 or 4 would save).
    constexpr int kShare = (BRIEF_XP_PROBE & 16) != 0 ? 4 : (BRIEF_XP_PROBE & 8) != 0 ? 2 : 1;
#pragma unroll
    for (int i = 0; i < RI; i++)
      v[b][i] = i < RI / kShare ? ld_x16(xsrc[i] + cc * kChunk) : v[b][i % (RI / kShare)];
  };
  if constexpr ((BRIEF_XP_PROBE & 256) != 0) {
    // Probe bit 256 (for the _px kernels' x): each row of a chunk by one
    // 128-byte bulk copy (the copy engine, as TMA would move it), counted
    // by an mbarrier a stage, unswizzled (the same bytes, wrong places):
    // what the copy engine's path costs against cp.async's.
    __shared__ __align__(8) uint64_t xbar[S];
    const uint32_t bar0 = smem_addr(xbar);
    if (tid == 0) {
#pragma unroll
      for (int i = 0; i < S; i++)
        asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(bar0 + 8 * i) : "memory");
      asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    bar_sync(1 + 2 * S, 128);
    auto issue = [&](int c) {
      if (c >= chunks) return;
      const int st = c % S;
      if (c >= S) bar_sync(kEmpty + st, all);
      const uint32_t bar = bar0 + 8 * st;
      if (tid < NT) {
        const __half* src = x + (size_t)min(n0 + tid, tokens - 1) * in + c * kChunk;
        asm volatile(
            "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], 128, [%2];\n" ::"r"(
                sbase + st * (NT * 128) + tid * 128),
            "l"(src), "r"(bar)
            : "memory");
      }
      if (tid == 0)
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(NT * 128) : "memory");
    };
    issue(0);
    issue(1);
    for (int c = 0; c < chunks; c++) {
      issue(c + 2);
      asm volatile(
          "{\n.reg .pred done;\nWAIT_%=:\n"
          "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
          "@!done bra WAIT_%=;\n}\n" ::"r"(bar0 + 8 * (c % S)),
          "r"((c / S) & 1)
          : "memory");
      bar_arrive(kFull + c % S, all);
    }
    return;
  }
  if constexpr (PX || (BRIEF_XP_PROBE & 128) != 0) {
    // x already in the stages' k order (PX: its writers put each pair
    // where xp_perm_pair says, awq.go: xpPerm), so each 16-byte piece is
    // copied by cp.async straight into its swizzled slot, two chunks
    // ahead, without a trip through registers: 8 ms of the prefill's 20
    // ms of x loads at the power limit (run 247, as probe bit 128, which
    // copies natural x the same way). Chunks past the end copy nothing.
    auto issue = [&](int c) {
      if (c < chunks) {
        if (c >= S) bar_sync(kEmpty + c % S, all);
#pragma unroll
        for (int i = 0; i < RI; i++) {
          const int xr = xr0 + 16 * i;
          cp_async_16(sbase + (c % S) * (NT * 128) + xr * 128 + ((u ^ (xr & 7)) << 4), xsrc[i] + c * kChunk, 16);
        }
      }
      cp_async_commit_group();
    };
    issue(0);
    issue(1);
    for (int c = 0; c < chunks; c++) {
      issue(c + 2);
      cp_async_wait_group<2>();
      fence_proxy_async();
      bar_arrive(kFull + c % S, all);
    }
    return;
  }
  load(0, 0);
  load(1, 1);
  auto produce = [&](int b, int c) {
    if (c >= S) bar_sync(kEmpty + c % S, all);
#pragma unroll
    for (int i = 0; i < RI; i++) {
      const int xr = xr0 + 16 * i;
      const uint32_t st = sbase + (c % S) * (NT * 128) + xr * 128 + 4 * pt;
      const uint32_t w4[4] = {v[b][i].x, v[b][i].y, v[b][i].z, v[b][i].w};
#pragma unroll
      for (int k = 0; k < 4; k++)
        asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(st + (((4 * pm + k) ^ (xr & 7)) << 4)), "r"(w4[k]) : "memory");
    }
    load(b, c + 2);
    fence_proxy_async();
    bar_arrive(kFull + c % S, all);
  };
  // chunks is even (group 128 = two chunks).
  for (int c = 0; c < chunks; c += 2) {
    produce(0, c);
    produce(1, c + 1);
  }
}

template <int EPI, int CW, int S, int NT, bool PX = false>
__device__ __forceinline__ void gemm_xp(const uint8_t* __restrict__ w, const __half* __restrict__ x,
                                        __half* __restrict__ y, int tokens, int in, int out, RopeArgs ra) {
  constexpr int WT = NT / 8, ND = NT / 2;  // n-tiles, accumulators per thread
  constexpr int kAll = xp_threads(CW), kFull = 1, kEmpty = 1 + S;
  static_assert(kEmpty + S <= 16, "named barriers 1..15");
  extern __shared__ __align__(16) uint8_t smem[];
  const uint32_t sbase = (smem_addr(smem) + 1023) & ~1023u;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, role = warp >> 2;
  const int chunks = in / kChunk;
  const int n0 = blockIdx.x * NT;

  if (role == 0) {
    xp_stage_x<S, NT, PX>(x, sbase, tokens, in, n0, tid, kAll);
    return;
  }

  // Consumers: warp (role - 1, warp % 4) owns stripe s0 + 4 (role - 1) + warp % 4.
  const int g = lane >> 2, t = lane & 3;
  const int stripes = out_pad(out) / kStripe;
  const int stripe = blockIdx.y * 4 * CW + 4 * (role - 1) + (warp & 3);
  const bool sok = stripe < stripes;
  const StripeReader sr(w, in, out, sok ? stripe : 0, lane);

  float acc[1][WT][4];
  float(&d)[ND] = *reinterpret_cast<float(*)[ND]>(&acc[0][0][0]);
#pragma unroll
  for (int i = 0; i < ND; i++) d[i] = 0.f;

  // Past the last chunk, with kAny the weight loads read the last chunk
  // again and the loop dequantizes it for no wgmma, instead of a branch a
  // chunk: the plain and RoPE GEMMs 2-4% faster (run 131). Not the SiLU
  // one, 1-9% slower so (runs 130-131). ptxas is touchy here: kAny in the
  // loop with a conditional load of chunk 2 made down 17% slower (run 132).
  constexpr bool kAny = EPI != kEpiSilu;
  auto dequant_chunk = [](uint32_t (&a)[4][4], const uint4& q, uint32_t z0, uint32_t z1) {
    if constexpr ((BRIEF_XP_PROBE & 32) != 0) {
      // Sign and mantissa of the raw words with an exponent of 0.5..1: as
      // varied as real weights for the tensor cores, one lop3 a fragment.
      const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const uint32_t r = w[j] ^ (w[j] >> 7);
        a[j][0] = lop3<0xea>(w[j], 0x83ff83ffu, 0x38003800u);
        a[j][1] = lop3<0xea>(r, 0x83ff83ffu, 0x38003800u);
        a[j][2] = lop3<0xea>(w[j] >> 3, 0x83ff83ffu, 0x38003800u);
        a[j][3] = lop3<0xea>(r >> 5, 0x83ff83ffu, 0x38003800u);
      }
    } else if constexpr ((BRIEF_XP_PROBE & 2) != 0) {
      const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const uint32_t q8 = w[j] >> 8;
        a[j][0] = lop3<0xea>(w[j], 0x000f000fu, 0x64006400u);
        a[j][1] = lop3<0xea>(w[j], 0x00f000f0u, 0x64006400u);
        a[j][2] = lop3<0xea>(q8, 0x000f000fu, 0x64006400u);
        a[j][3] = lop3<0xea>(q8, 0x00f000f0u, 0x64006400u);
      }
    } else {
      awq::dequant_chunk(a, q, z0, z1);
    }
  };
  uint4 wq[2];
  uint32_t z[2][2];
  uint32_t a[2][4][4];
  // Weights depend on no earlier kernel: chunks 0 and 1 are requested
  // before the wait, chunk 0 dequantized, chunk 2 requested.
  sr.load(wq[0], z[0][0], z[0][1], 0);
  sr.load(wq[1], z[1][0], z[1][1], 1);
  grid_dep_wait();
  dequant_chunk(a[0], wq[0], z[0][0], z[0][1]);
  if constexpr (kAny)
    sr.load_any(wq[0], z[0][0], z[0][1], 2);
  else
    sr.load(wq[0], z[0][0], z[0][1], 2);

  auto step = [&](int c, uint32_t (&acur)[4][4], uint32_t (&anext)[4][4], uint4& wnext, uint32_t (&znext)[2]) {
    bar_sync(kFull + c % S, kAll);
    const uint32_t st = sbase + (c % S) * (NT * 128);
    keep(d);
    keep(acur);
    wgmma_fence();
#pragma unroll
    for (int j = 0; j < 4; j++) wgmma_nt<NT>(d, acur[j], wg_desc(st + 32 * j));
    wgmma_commit();
    wgmma_wait<1>();  // chunk c-1's wgmmas are done: anext and its stage are free
    if (c >= 1 && c - 1 + S < chunks) bar_arrive(kEmpty + (c - 1) % S, kAll);
    keep(anext);
    // The probe's skipped loads stay conditional on something the
    // compiler cannot know, so the dequantization is not hoisted.
    constexpr bool kLoad = (BRIEF_XP_PROBE & 4) == 0;
    if constexpr (kAny) {
      dequant_chunk(anext, wnext, znext[0], znext[1]);
      if (kLoad || tokens < 0) sr.load_any(wnext, znext[0], znext[1], c + 3);
    } else {
      if (c + 1 < chunks) dequant_chunk(anext, wnext, znext[0], znext[1]);
      if (kLoad || tokens < 0) sr.load(wnext, znext[0], znext[1], c + 3);
    }
  };
  for (int c = 0; c < chunks; c += 2) {
    step(c, a[0], a[1], wq[1], z[1]);
    step(c + 1, a[1], a[0], wq[0], z[0]);
  }
  wgmma_wait<0>();
  keep(d);
  __half* buf = reinterpret_cast<__half*>(smem + (sbase - smem_addr(smem)) + S * NT * 128) + (warp - 4) * NT * 16;
  if constexpr (EPI == kEpiSilu)
    gemm_store<EPI, 1, WT, PX>(acc, y, stripe, n0, g, t, tokens, out, ra);
  else
    gemm_store_staged<EPI, WT>(acc, y, buf, stripe, n0, g, t, lane, tokens, out, ra);
}

// Four stages of x for every tile.
constexpr int kXpStages = 4;

}  // namespace awq

// Kernels awq_gemm_xp_c<CW>n<NT>_g128[_silu|_rope] for the tiles awq.go
// picks from (awqXpTiles): CW consumer warpgroups (4 CW stripes) by NT
// tokens. Arguments as awq_gemm_g128[_silu|_rope]; grid (ceil(tokens/NT),
// ceil(OutP/16/(4 CW))), block xp_threads(CW), dynamic shared memory
// xp_shared(4, NT, CW). in % 128 == 0.
#define AWQ_GEMM_XP(CW, NT)                                                                                        \
  extern "C" __global__ void __launch_bounds__(awq::xp_threads(CW), 1)                                              \
      awq_gemm_xp_c##CW##n##NT##_g128(const uint8_t* w, const __half* x, __half* y, void* ws, int tokens, int in,    \
                                      int out) {                                                                     \
    grid_dep_launch();                                                                                             \
    awq::gemm_xp<awq::kEpiStore, CW, awq::kXpStages, NT>(w, x, y, tokens, in, out, awq::RopeArgs());                \
  }                                                                                                                \
  extern "C" __global__ void __launch_bounds__(awq::xp_threads(CW), 1)                                              \
      awq_gemm_xp_c##CW##n##NT##_g128_silu(const uint8_t* w, const __half* x, __half* act, void* ws, int tokens,     \
                                           int in, int out) {                                                        \
    grid_dep_launch();                                                                                             \
    awq::gemm_xp<awq::kEpiSilu, CW, awq::kXpStages, NT>(w, x, act, tokens, in, out, awq::RopeArgs());               \
  }                                                                                                                \
  extern "C" __global__ void __launch_bounds__(awq::xp_threads(CW), 1) awq_gemm_xp_c##CW##n##NT##_g128_rope(      \
      const uint8_t* w, const __half* x, __half* qkv, __half* kc, __half* vc, const int* params, int tokens,        \
      int in, int out, int heads, int kv_heads, int head_dim, int cap, float theta) {                              \
    grid_dep_launch();                                                                                             \
    awq::gemm_xp<awq::kEpiRope, CW, awq::kXpStages, NT>(                                                           \
        w, x, qkv, tokens, in, out, awq::RopeArgs{kc, vc, params, heads, kv_heads, head_dim, cap, theta});           \
  }

AWQ_GEMM_XP(3, 128)
AWQ_GEMM_XP(2, 128)
AWQ_GEMM_XP(3, 96)

// The same with x stored in the stages' k order (awq.go: xpPerm), copied
// by cp.async, and the SiLU epilogue's activations stored so too:
// awq_gemm_xp_c<CW>n<NT>_g128[_silu|_rope]_px.
#define AWQ_GEMM_XP_PX(CW, NT)                                                                                     \
  extern "C" __global__ void __launch_bounds__(awq::xp_threads(CW), 1)                                              \
      awq_gemm_xp_c##CW##n##NT##_g128_px(const uint8_t* w, const __half* x, __half* y, void* ws, int tokens, int in, \
                                         int out) {                                                                  \
    grid_dep_launch();                                                                                             \
    awq::gemm_xp<awq::kEpiStore, CW, awq::kXpStages, NT, true>(w, x, y, tokens, in, out, awq::RopeArgs());          \
  }                                                                                                                \
  extern "C" __global__ void __launch_bounds__(awq::xp_threads(CW), 1)                                              \
      awq_gemm_xp_c##CW##n##NT##_g128_silu_px(const uint8_t* w, const __half* x, __half* act, void* ws, int tokens,  \
                                              int in, int out) {                                                     \
    grid_dep_launch();                                                                                             \
    awq::gemm_xp<awq::kEpiSilu, CW, awq::kXpStages, NT, true>(w, x, act, tokens, in, out, awq::RopeArgs());         \
  }                                                                                                                \
  extern "C" __global__ void __launch_bounds__(awq::xp_threads(CW), 1) awq_gemm_xp_c##CW##n##NT##_g128_rope_px(   \
      const uint8_t* w, const __half* x, __half* qkv, __half* kc, __half* vc, const int* params, int tokens,        \
      int in, int out, int heads, int kv_heads, int head_dim, int cap, float theta) {                              \
    grid_dep_launch();                                                                                             \
    awq::gemm_xp<awq::kEpiRope, CW, awq::kXpStages, NT, true>(                                                     \
        w, x, qkv, tokens, in, out, awq::RopeArgs{kc, vc, params, heads, kv_heads, head_dim, cap, theta});           \
  }

AWQ_GEMM_XP_PX(3, 128)
AWQ_GEMM_XP_PX(2, 128)
AWQ_GEMM_XP_PX(3, 96)
