// Shared helpers of Brief's kernels. Every kernel is extern "C" so the Go
// side finds it by name; template instances get extern "C" wrappers.
#pragma once

#include <cuda_fp16.h>
#include <stdint.h>

// Step parameters live in device memory so one captured graph serves every
// position: params[0] is the cache length before the step (the position of
// the step's first token), params[kParamIds + t] the step's token ids.
constexpr int kParamPos = 0;
constexpr int kParamIds = 4;

// xp_perm_pair is where a prefill GEMM input stored for the x-producer
// GEMM's direct copies (awq.go: xpPerm) keeps pair p (elements 2p, 2p+1)
// of a row: within each 64-element chunk, pair 8t + q sits at 4q + t, the
// order in which awq_gemm_xp's stages hold them (its k permutation).
__host__ __device__ __forceinline__ int xp_perm_pair(int p) { return (p & ~31) | ((p & 7) << 2) | ((p >> 3) & 3); }

// Overlapped launches (sm_90; driver.go's device.overlap): a
// kernel may start while the previous one on the stream still runs.
// grid_dep_wait blocks until that kernel has finished and its writes are
// visible (and so, transitively, every earlier one); a kernel calls it before
// it reads anything an earlier kernel writes or writes anything an earlier
// kernel reads, so only constant data (weights) may be touched before.
// grid_dep_launch lets the next kernel start; kernels that stream weights call
// it late, so that the next mat-vec does not start prefetching while this one
// still streams. Both are no-ops on older GPUs and in ordinary launches.
__device__ __forceinline__ void grid_dep_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// ld_cg_f32 loads a float an earlier kernel wrote, through L2, as asm
// volatile: ptxas may move a read-only (ld.global.nc) load above
// griddepcontrol.wait, and did for attn_reduce's early loads (sm_90 SASS,
// nvcc 11.8).
__device__ __forceinline__ float ld_cg_f32(const float* p) {
  float v;
  asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p) : "memory");
  return v;
}

// ld_cg_f32x2 is ld_cg_f32 of two adjacent floats (8-byte aligned).
__device__ __forceinline__ float2 ld_cg_f32x2(const float* p) {
  float2 v;
  asm volatile("ld.global.cg.v2.f32 {%0, %1}, [%2];" : "=f"(v.x), "=f"(v.y) : "l"(p) : "memory");
  return v;
}

__device__ __forceinline__ void grid_dep_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// ticket_arrive and ticket_wait: a grid barrier with one round trip on its
// path, split so that a block can request reads between the two. Each
// block's first thread adds one to a 64-bit count that only grows
// (release), learns from the old value which barrier it is at, and polls
// until the count reaches that barrier's end (acquire). No block resets
// anything, so the last block to arrive frees the others with its own add,
// and the count needs no reset between launches of the same grid size; it
// must be a multiple of the grid's blocks when a launch starts (zero it
// before a launch with another grid size). The caller syncs the
// block before ticket_arrive and after ticket_wait; every block must be
// resident. The release waits for the thread's own outstanding loads, so
// the first thread arrives before it requests anything more. (A barrier of
// two words, a count reset by the last block and a generation the others
// poll, with __threadfence around them, cost twice as much: BENCHMARKS.md,
// session 9.) stream_persist and awq_mlp_ring use it.
__device__ __forceinline__ unsigned long long ticket_arrive(unsigned long long* count) {
  unsigned long long old = 0;
  if (threadIdx.x == 0) {
    asm volatile("atom.add.release.gpu.global.u64 %0, [%1], 1;" : "=l"(old) : "l"(count) : "memory");
  }
  return (old / gridDim.x + 1) * gridDim.x;
}

__device__ __forceinline__ void ticket_wait(unsigned long long* count, unsigned long long end) {
  if (threadIdx.x == 0) {
    unsigned long long now;
    do {
      asm volatile("ld.acquire.gpu.global.u64 %0, [%1];" : "=l"(now) : "l"(count) : "memory");
    } while (now < end);
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// block_sum adds v over the whole block (blockDim.x a multiple of 32, at
// most 1024); every thread gets the total.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // part may still be read by a previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  const int nw = blockDim.x >> 5;
  float t = lane < nw ? part[lane] : 0.f;
  return warp_sum(t);
}
