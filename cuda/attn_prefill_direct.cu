// Prefill attention for chunks planned with one key split (attnplan.go:
// prefillDirect): attn_prefill2.cuh's body writes the attention output
// itself, as attn_reduce would from the partials it would otherwise write,
// so the chunk needs no attn_reduce and no partials in memory. A
// translation unit of their own: next to attn_prefill.cu's kernels they
// changed how nvcc compiled attn_prefill2q_d128 there.
#include "attn_prefill2.cuh"

// attn_prefill2*_direct_d*: attn_prefill.cu's attn_prefill2*_d* for a
// launch of one split (grid z 1), writing the attention output out (tokens,
// heads*D) fp16, as attn_reduce would from their partials, in place of
// ws_acc and ws_ml.
#define ATTN_PREFILL2_DIRECT(NAME, D, MW, KEYS, MINB) \
  ATTN_P2_OUT(NAME, kP2Rows / (16 * MW) * 32, MINB, D, MW, KEYS, kP2Rows, false, true)
ATTN_PREFILL2_DIRECT(attn_prefill2_direct_d64, 64, 1, 64, 1)
ATTN_PREFILL2_DIRECT(attn_prefill2_direct_d128, 128, 1, 64, 1)
ATTN_PREFILL2_DIRECT(attn_prefill2q_direct_d64, 64, 2, 32, 2)
ATTN_PREFILL2_DIRECT(attn_prefill2q_direct_d128, 128, 2, 32, 2)
