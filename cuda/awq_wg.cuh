// What the wgmma GEMMs (awq_gemm_wg.sm90a.cu, awq_gemm_xp.sm90a.cu) share:
// a warp reads its stripe of the packed weights a chunk at a time and
// dequantizes each chunk into the A fragments of its four k-steps (wgmma's
// A fragment per warp is mma.sync's).
#pragma once
#include "awq_common.cuh"

namespace awq {

// StripeReader reads one stripe: the lane's 16-byte word of chunk c is
// w[32 c]; group c/2's (s, 1024+z) of rows g and g+8 are z[(c/2) outP] and
// z[(c/2) outP + 8].
struct StripeReader {
  const uint4* w;
  const uint32_t* z;
  int chunks, outP;

  __device__ __forceinline__ StripeReader(const uint8_t* packed, int in, int out, int stripe, int lane)
      : w(reinterpret_cast<const uint4*>(packed) + (size_t)stripe * (in / kChunk) * 32 + lane),
        z(reinterpret_cast<const uint32_t*>(packed + sz_offset(in, out)) + stripe * kStripe + (lane >> 2)),
        chunks(in / kChunk),
        outP(out_pad(out)) {}

  // read reads chunk c's word and scales; c < chunks.
  __device__ __forceinline__ void read(uint4& q, uint32_t& z0, uint32_t& z1, int c) const {
    q = ld_stream(w + (size_t)c * 32);
    const uint32_t* zp = z + (size_t)(c / 2) * outP;
    z0 = zp[0];
    z1 = zp[8];
  }

  // load reads chunk c where c < chunks, and nothing past the end.
  __device__ __forceinline__ void load(uint4& q, uint32_t& z0, uint32_t& z1, int c) const {
    if (c < chunks) read(q, z0, z1, c);
  }

  // load_any reads chunk min(c, chunks - 1): a loop that runs past the end
  // reads the last chunk again rather than branching, for the caller to
  // ignore.
  __device__ __forceinline__ void load_any(uint4& q, uint32_t& z0, uint32_t& z1, int c) const {
    read(q, z0, z1, min(c, chunks - 1));
  }
};

// dequant_chunk turns a chunk's word into the A fragments of its k-steps.
__device__ __forceinline__ void dequant_chunk(uint32_t (&a)[4][4], const uint4& q, uint32_t z0, uint32_t z1) {
  dequant16(q.x, z0, z1, a[0]);
  dequant16(q.y, z0, z1, a[1]);
  dequant16(q.z, z0, z1, a[2]);
  dequant16(q.w, z0, z1, a[3]);
}

}  // namespace awq
