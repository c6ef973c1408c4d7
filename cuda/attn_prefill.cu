// Prefill attention on the tensor cores, second generation: the kernels
// of attn_prefill2.cuh's attn_prefill2_body (see there) for prefill chunks
// and verify steps. Its direct instances (one split, output written
// in place of the partials) live in attn_prefill_direct.cu: in this
// translation unit they changed how nvcc compiled attn_prefill2q_d128.
#include "attn_prefill2.cuh"

// attn_prefill2_d*: 8 warps x 16 rows, 64-key tiles; attn_prefill2q_d*:
// 4 warps x 32 rows, Q in shared memory, 32-key tiles, two blocks per
// multiprocessor (registers and shared memory allow it).
#define ATTN_PREFILL2(NAME, D, MW, KEYS, MINB) \
  ATTN_P2_PARTIALS(NAME, kP2Rows / (16 * MW) * 32, MINB, D, MW, KEYS)
ATTN_PREFILL2(attn_prefill2_d64, 64, 1, 64, 1)
ATTN_PREFILL2(attn_prefill2_d128, 128, 1, 64, 1)
ATTN_PREFILL2(attn_prefill2q_d64, 64, 2, 32, 2)
ATTN_PREFILL2(attn_prefill2q_d128, 128, 2, 32, 2)

// attn_verify2_d*: the same body for verify steps (1..16 tokens): 4 warps x
// 16 rows, both 64-key tiles of a 128-key block requested at once, the
// earlier steps' keys before grid_dep_wait (the body waits itself).
#define ATTN_VERIFY2(NAME, D)                                                                \
  extern "C" __global__ void __launch_bounds__(128) NAME(                                    \
      const __half* __restrict__ qkv, const __half* __restrict__ kc,                         \
      const __half* __restrict__ vc, const int* __restrict__ params, int tokens, int heads,  \
      int kv_heads, int cap, int window, float scale, int block_keys,                        \
      float* __restrict__ ws_acc, float* __restrict__ ws_ml) {                               \
    grid_dep_launch();                                                                       \
    attn_prefill2_body<D, 1, 64, 64, true>(qkv, kc, vc, params, tokens, heads, kv_heads, cap,  \
                                           window, scale, block_keys, ws_acc, ws_ml);        \
  }
ATTN_VERIFY2(attn_verify2_d64, 64)
ATTN_VERIFY2(attn_verify2_d128, 128)
