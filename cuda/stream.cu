// Plain streaming reads, for BenchmarkStepStream: a decode step's kernels
// replaced by kernels that only read each one's bytes, to measure what a
// step of that many dependent kernels costs at best (the time left over
// when every kernel streams at the device's rate) against one kernel that
// reads all of them.
#include "awq_common.cuh"  // ld_stream

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
