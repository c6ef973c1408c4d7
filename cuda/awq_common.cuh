// Shared pieces of the AWQ linear kernels (awq_gemv.cu, awq_gemm.cu): the
// device layout's offsets, the int4 -> fp16 dequantization of one packed
// word into an MMA A fragment, and thin wrappers over PTX. The layout is
// described in awq.go (packAWQ), which writes it.
#pragma once
#include <cuda_fp16.h>
#include <stdint.h>

#include "common.cuh"
#include "ptx.cuh"

namespace awq {

constexpr int kStripe = 16;  // output columns per stripe (MMA M)
constexpr int kChunk = 64;   // input rows per chunk (4 MMA k-steps)

// Output columns rounded up to whole stripes.
__device__ __forceinline__ int out_pad(int out) { return (out + kStripe - 1) & ~(kStripe - 1); }

// Byte offset of the scale/zero table: after the weights, 256-byte aligned
// (awq.go: awqSZOffset).
__device__ __forceinline__ size_t sz_offset(int in, int out) {
  size_t w = (size_t)(out_pad(out) / kStripe) * (in / kChunk) * 32 * 16;
  return (w + 255) & ~(size_t)255;
}

template <int LUT>
__device__ __forceinline__ uint32_t lop3(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, %4;" : "=r"(r) : "r"(a), "r"(b), "r"(c), "n"(LUT));
  return r;
}

__device__ __forceinline__ __half2 as_h2(uint32_t u) { return *reinterpret_cast<__half2*>(&u); }
__device__ __forceinline__ uint32_t as_u32(__half2 h) { return *reinterpret_cast<uint32_t*>(&h); }

// dequant turns one packed word into the lane's A fragment of one
// m16n8k16 step: a[0] (row g, k 2t..2t+1), a[1] (row g+8), a[2] (row g,
// k 2t+8..), a[3] (row g+8, k 2t+8..), each (q - z) * s in fp16.
// (q & 0x000f000f) | 0x64006400 is the fp16 pair 1024+q exactly; subtracting
// 1024+z is exact too, so the only rounding is the product with s, as when
// the reference dequantizes to fp16. szg/szg8: (s, 1024+z) of rows g, g+8.
__device__ __forceinline__ void dequant(uint32_t q, uint32_t szg, uint32_t szg8, uint32_t a[4]) {
  const uint32_t kMask = 0x000f000f, kMagic = 0x64006400;
  const __half2 s0 = __low2half2(as_h2(szg)), z0 = __high2half2(as_h2(szg));
  const __half2 s1 = __low2half2(as_h2(szg8)), z1 = __high2half2(as_h2(szg8));
  // 0xea: (a & b) | c
  a[0] = as_u32(__hmul2(__hsub2(as_h2(lop3<0xea>(q, kMask, kMagic)), z0), s0));
  a[1] = as_u32(__hmul2(__hsub2(as_h2(lop3<0xea>(q >> 4, kMask, kMagic)), z1), s1));
  a[2] = as_u32(__hmul2(__hsub2(as_h2(lop3<0xea>(q >> 8, kMask, kMagic)), z0), s0));
  a[3] = as_u32(__hmul2(__hsub2(as_h2(lop3<0xea>(q >> 12, kMask, kMagic)), z1), s1));
}

// dequant16 is dequant with one shift per word: rows g+8 come from the
// 0x00f000f0 mask as fp16 1024+16q, and (1024+16q)/16 - (64+z) = q-z is
// one exact fma. szg/szg8 as for dequant.
__device__ __forceinline__ void dequant16(uint32_t q, uint32_t szg, uint32_t szg8, uint32_t a[4]) {
  const uint32_t kMask = 0x000f000f, kMask16 = 0x00f000f0, kMagic = 0x64006400;
  const __half2 s0 = __low2half2(as_h2(szg)), z0 = __high2half2(as_h2(szg));
  const __half2 s1 = __low2half2(as_h2(szg8));
  const __half2 nz1 = __hsub2(__float2half2_rn(960.f), __high2half2(as_h2(szg8)));  // -(64+z)
  const __half2 r16 = __float2half2_rn(1.f / 16.f);
  const uint32_t q8 = q >> 8;
  a[0] = as_u32(__hmul2(__hsub2(as_h2(lop3<0xea>(q, kMask, kMagic)), z0), s0));
  a[1] = as_u32(__hmul2(__hfma2(as_h2(lop3<0xea>(q, kMask16, kMagic)), r16, nz1), s1));
  a[2] = as_u32(__hmul2(__hsub2(as_h2(lop3<0xea>(q8, kMask, kMagic)), z0), s0));
  a[3] = as_u32(__hmul2(__hfma2(as_h2(lop3<0xea>(q8, kMask16, kMagic)), r16, nz1), s1));
}

// ld_stream loads 16 bytes that are read exactly once per step (weights):
// no L1 allocation, so x and the scales keep the cache.
__device__ __forceinline__ uint4 ld_stream(const uint4* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  return r;
}

// prefetch_l2 asks L2 for the 128-byte line at p: no register, no wait
// (the mat-vec's next weights while it waits for the kernel before).
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p)); }

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// cp_async16 copies 16 bytes global -> shared, zero-filling when !valid
// (src must still be a valid address).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  cp_async_16(smem_addr(dst), src, valid ? 16 : 0);
}
// cp_async4 copies 4 bytes global -> shared through L1 (scales: each is
// read by the 4 lanes of a quad and by two chunks).
__device__ __forceinline__ void cp_async4(void* dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(smem_addr(dst)), "l"(src));
}

}  // namespace awq
