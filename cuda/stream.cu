// Plain streaming reads, for BenchmarkStepStream: a decode step's kernels
// replaced by kernels that only read each one's bytes, to measure what a
// step of that many dependent kernels costs at best (the time left over
// when every kernel streams at the device's rate) against one kernel that
// reads all of them.
#include "awq_common.cuh"  // ld_stream
#include "awq_pair.cuh"

// stream_body: see stream_read. Only the first loads come before the wait.
__device__ __forceinline__ void stream_body(const uint4* __restrict__ p, int n16, uint32_t* __restrict__ sink,
                                            int early) {
  if (early) grid_dep_launch();
  const int stride = gridDim.x * blockDim.x;
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  uint4 v[4];
  auto load = [&]() {
#pragma unroll
    for (int k = 0; k < 4; k++) v[k] = i + k * stride < n16 ? awq::ld_stream(p + i + k * stride) : make_uint4(0, 0, 0, 0);
  };
  load();
  grid_dep_wait();
  uint32_t acc = 0;
  for (;;) {
#pragma unroll
    for (int k = 0; k < 4; k++) acc ^= v[k].x ^ v[k].y ^ v[k].z ^ v[k].w;
    i += 4 * stride;
    if (i >= n16) break;
    load();
  }
  if (!early) grid_dep_launch();
  if (acc == 0x9e3779b9u * (uint32_t)n16) sink[blockIdx.x] = acc;
}

// grid (blocks), block 256. Reads n16 16-byte words of p, four in flight
// per thread, and writes sink[block] only if the words fold to an unlikely
// value, so the loads cannot be dropped. early != 0 lets the next kernel
// start at once; 0 only after this one's loads are done, as the mat-vecs
// do. Either way the first loads are requested before waiting for the
// previous kernel, as the mat-vecs request their first weights.
extern "C" __global__ void __launch_bounds__(256) stream_read(const uint4* __restrict__ p, int n16,
                                                             uint32_t* __restrict__ sink, int early) {
  stream_body(p, n16, sink, early);
}

// stream_persist: the same reads as a chain of stream_reads, by one
// persistent grid (one block of 1024 threads a multiprocessor) that passes
// a grid barrier between phases instead of ending a kernel: phase i reads
// the 16-byte words [starts[i], starts[i+1]) of p, four in flight a thread.
// It is the ceiling of a decoder that runs a whole step as one kernel. With
// ahead != 0 each thread requests its first words of the next phase before
// the barrier, as such a kernel would request the next linear's weights
// (they depend on no earlier phase) while the last blocks finish. count is
// zero before the first launch.
extern "C" __global__ void __launch_bounds__(1024) stream_persist(const uint4* __restrict__ p,
                                                                 const long long* __restrict__ starts, int phases,
                                                                 unsigned long long* __restrict__ count,
                                                                 uint32_t* __restrict__ sink, int ahead) {
  grid_dep_wait();
  const long long stride = (long long)gridDim.x * blockDim.x;
  const long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  uint4 v[4];
  auto load = [&](long long base, long long n, long long i) {
#pragma unroll
    for (int k = 0; k < 4; k++) v[k] = i + k * stride < n ? awq::ld_stream(p + base + i + k * stride) : make_uint4(0, 0, 0, 0);
  };
  uint32_t acc = 0;
  long long base = starts[0], n = starts[1] - starts[0];
  load(base, n, first);
  for (int ph = 0; ph < phases; ph++) {
    for (long long i = first;;) {
#pragma unroll
      for (int k = 0; k < 4; k++) acc ^= v[k].x ^ v[k].y ^ v[k].z ^ v[k].w;
      i += 4 * stride;
      if (i >= n) break;
      load(base, n, i);
    }
    if (ph + 1 == phases) break;
    base = starts[ph + 1];
    n = starts[ph + 2] - base;
    __syncthreads();
    const unsigned long long end = ticket_arrive(count);
    if (ahead) load(base, n, first);
    ticket_wait(count, end);
    __syncthreads();
    if (!ahead) load(base, n, first);
  }
  if (acc == 0x9e3779b9u * (uint32_t)phases) sink[blockIdx.x] = acc;
}

// pair_split: pair_compute with the group's eight MMAs spread over P
// accumulator chains, summed before the scales (other bits).
template <int P>
__device__ __forceinline__ void pair_split(float acc[1][4], const awq::Pair<1>& d) {
  awq::group_sum<1>(acc, d.z0, d.z1, [&](float (*part)[4], __half2 z0, __half2 z1) {
    float chain[P][4] = {};
#pragma unroll
    for (int c = 0; c < 2; c++) {
      const uint32_t qw[4] = {d.q[c].x, d.q[c].y, d.q[c].z, d.q[c].w};
      const uint32_t* b = reinterpret_cast<const uint32_t*>(&d.x[c][0][0]);
#pragma unroll
      for (int j = 0; j < 4; j++) {
        uint32_t a[4];
        awq::word_exact(qw[j], z0, z1, a);
        mma_16816(chain[(c * 4 + j) % P], a, b[2 * j], b[2 * j + 1]);
      }
    }
#pragma unroll
    for (int k = 0; k < P; k++)
#pragma unroll
      for (int v = 0; v < 4; v++) part[0][v] += chain[k][v];
  });
}

// gemv_pattern (BenchmarkGemvPattern): awq_gemv_g128_n1's loads, in its
// order and partition, with its arithmetic (COMPUTE 1), with the group's
// MMAs on COMPUTE chains (2, 4: other bits), or only a fold of the loaded
// words (0); on the device layout (LAYOUT 0: a stripe's groups contiguous)
// or group-major (1: group i of every stripe contiguous, so that the
// blocks resident at once read one window); PF > 0 asks group i+PF into
// L2 while group i computes. For 1 token; values are meaningless, only
// the time is.
template <int LAYOUT, int COMPUTE, int PF = 0>
__device__ __forceinline__ void gemv_pattern(const uint8_t* __restrict__ w, const __half* __restrict__ x,
                                             __half* __restrict__ y, int in, int out) {
  using namespace awq;
  extern __shared__ __align__(16) uint8_t smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int outP = out_pad(out), chunks = in / kChunk, groups = in / 128, stripes = outP / kStripe;
  const int s = blockIdx.x;
  const int per = (groups + nw - 1) / nw, g0 = warp * per, g1 = min(groups, g0 + per);
  const size_t gstep = LAYOUT == 0 ? 64 : (size_t)stripes * 64;
  const uint4* wc = reinterpret_cast<const uint4*>(w) + lane +
                    (LAYOUT == 0 ? ((size_t)s * chunks + 2 * g0) * 32 : ((size_t)g0 * stripes + s) * 64);
  const uint32_t* zc = reinterpret_cast<const uint32_t*>(w + sz_offset(in, out)) + (size_t)g0 * outP + s * kStripe + g;
  const bool xv[1] = {g < 1};
  const uint4* xc[1] = {reinterpret_cast<const uint4*>(x + 16 * t) + 2 * g0 * 8};
  float acc[1][4] = {{0.f, 0.f, 0.f, 0.f}};
  uint32_t h = 0;
  auto use = [&](const Pair<1>& d) {
    if constexpr (COMPUTE == 1) {
      pair_compute<1>(acc, d);
    } else if constexpr (COMPUTE >= 2) {
      pair_split<COMPUTE>(acc, d);
    } else {
      h ^= d.q[0].x ^ d.q[0].y ^ d.q[0].z ^ d.q[0].w ^ d.q[1].x ^ d.q[1].y ^ d.q[1].z ^ d.q[1].w ^ d.z0 ^ d.z1 ^
           d.x[0][0][0].x ^ d.x[1][0][1].w;
    }
  };
  Pair<1> a, b;
  int gi = g0;
  if (gi < g1) pair_load_w<1>(a, wc, zc);
  if (const int pg = 1 + lane / 8; pg <= 2 && g0 + pg < g1) prefetch_l2(wc - lane + pg * gstep + 8 * (lane % 8));
  grid_dep_wait();
  if (gi < g1) pair_load_x<1>(a, xc, xv);
  for (; gi < g1; gi += 2) {
    const bool hb = gi + 1 < g1;
    wc += gstep;
    zc += outP;
    xc[0] += 16;
    if (hb) pair_load<1>(b, wc, zc, xc, xv);
    // PF: group gi+PF asked into L2 as gi's pair is computed (lanes 0-7, a line each).
    if (PF > 0 && lane < 8 && gi + PF < g1) prefetch_l2(wc - lane + (size_t)(PF > 0 ? PF - 1 : 0) * gstep + 8 * lane);
    use(a);
    wc += gstep;
    zc += outP;
    xc[0] += 16;
    if (gi + 2 < g1) pair_load<1>(a, wc, zc, xc, xv);
    if (PF > 0 && lane < 8 && gi + 1 + PF < g1) prefetch_l2(wc - lane + (size_t)(PF > 0 ? PF - 1 : 0) * gstep + 8 * lane);
    if (hb) use(b);
  }
  grid_dep_launch();
  if constexpr (COMPUTE == 0) acc[0][0] = __uint_as_float(h);
  float* red = reinterpret_cast<float*>(smem);
#pragma unroll
  for (int v = 0; v < 4; v++) red[(warp * 4 + v) * 32 + lane] = acc[0][v];
  __syncthreads();
  for (int idx = threadIdx.x; idx < 4 * 32; idx += blockDim.x) {
    float sum = 0.f;
    for (int k = 0; k < nw; k++) sum += red[k * 4 * 32 + idx];
    const int v = idx / 32, l = idx % 32;
    const int col = s * kStripe + (l >> 2) + (v >= 2 ? 8 : 0);
    if (col < out && 2 * (l & 3) + (v & 1) == 0) y[col] = __float2half_rn(sum);
  }
}

#define GEMV_PATTERN(L, C)                                                                                     \
  extern "C" __global__ void __launch_bounds__(512) gemv_pattern_l##L##_c##C(                                  \
      const uint8_t* __restrict__ w, const __half* __restrict__ x, __half* __restrict__ y, int in, int out) { \
    gemv_pattern<L, C>(w, x, y, in, out);                                                                      \
  }
GEMV_PATTERN(0, 1)
GEMV_PATTERN(0, 0)
GEMV_PATTERN(1, 1)
GEMV_PATTERN(1, 0)
GEMV_PATTERN(0, 2)
GEMV_PATTERN(0, 4)

#define GEMV_PATTERN_PF(PF)                                                                                    \
  extern "C" __global__ void __launch_bounds__(512) gemv_pattern_pf##PF(                                       \
      const uint8_t* __restrict__ w, const __half* __restrict__ x, __half* __restrict__ y, int in, int out) { \
    gemv_pattern<0, 1, PF>(w, x, y, in, out);                                                                  \
  }
GEMV_PATTERN_PF(3)
GEMV_PATTERN_PF(4)
GEMV_PATTERN_PF(6)
