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
#include "awq_common.cuh"
#include "awq_pair.cuh"  // the group arithmetic of gemv_g128 (awq_gemv.cu)
#include "silu.cuh"

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
