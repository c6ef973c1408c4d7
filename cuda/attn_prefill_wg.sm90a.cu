// Prefill attention on Hopper's warpgroup MMA: attn_prefill2.cuh's body
// with WG, for prefill chunks (more than MaxVerify tokens) on sm_90. Each
// of a block's two warpgroups computes S = Q K^T and O += P V for its 64
// rows with wgmma, reading K and V straight from shared memory, where
// attn_prefill2 spends an ldmatrix and 16 mma.sync per warp and 16 keys.
// The same arithmetic in the same order as attn_prefill2_d* (its
// instances with the same arguments), so the same bits
// (TestAttnPrefillWgSameBits). Shipped as PTX for the driver to compile
// (Makefile: *.sm90a.cu); attnplan.go takes it where the driver did.
//
// Head dim 128 only (the Llama and Mistral 7B's). The same body at head
// dim 64 gave other scores S than attn_prefill2_d64 from a block's second
// key tile on (H100, session 11, runs 97-98 and 106: deterministic, with
// either pipeline, any tile spacing, Q's registers pinned); the cause was
// not found, so it is not built, and head dim 64 keeps attn_prefill2.
#include "attn_prefill2.cuh"

// attn_prefill_wg_d128: attn_prefill2_d128's launch (grid, 256 threads)
// with dynamic shared memory prefill_wg_smem(128, 64); writes the
// partials. attn_prefill_wg_direct_d128: attn_prefill2_direct_d128's twin
// (one split, the attention output written in place of the partials).
ATTN_P2_PARTIALS(attn_prefill_wg_d128, kP2Rows / 16 * 32, 1, 128, 1, 64, kP2Rows, false, false, true)
ATTN_P2_OUT(attn_prefill_wg_direct_d128, kP2Rows / 16 * 32, 1, 128, 1, 64, kP2Rows, false, true, true)
