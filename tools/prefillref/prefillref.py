"""Reference for the prefill: the same GEMMs and attention in fp16 through
torch (cuBLAS and its fused attention), on the reference workload's chunks.

No dequantization and no model: only the shapes. It answers how long the
prefill of the 6,435-token prompt would take if our 4-bit GEMMs ran at the
rate cuBLAS reaches on fp16 weights, and our attention at the rate of
torch's flash attention, chunk by chunk as the engine runs it (512 tokens,
the KV cache growing, keys within the sliding window), and once over the
whole prompt as transformers runs it.

    python3 prefillref.py [--tokens 6435] [--chunk 512] [--sustained 15] [--out ref.json]

--sustained runs the chunked prefill's linears back to back for a few
seconds and reads the energy counter around them: the engine's prefill
holds an H200 at its 700 W limit, where time follows energy, which short
timed loops of one GEMM do not show.
"""
import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.bias import causal_lower_right

# OpenHermes-2.5-Mistral-7B (DESIGN.md): hidden 4096, 32 layers, 32 heads
# of 128, 8 KV heads, MLP 14336.
HIDDEN, LAYERS, HEADS, KV, HD, MLP = 4096, 32, 32, 8, 128, 14336
LINEARS = {  # name: (out, in)
    "q|k|v": ((HEADS + 2 * KV) * HD, HIDDEN),
    "o_proj": (HIDDEN, HEADS * HD),
    "gate|up": (2 * MLP, HIDDEN),
    "down": (HIDDEN, MLP),
}


def timed(fn, reps):
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / reps  # ms


def gemm_ms(m, n, k, reps=50):
    x = torch.randn(m, k, device="cuda", dtype=torch.float16)
    w = torch.randn(n, k, device="cuda", dtype=torch.float16) * 0.02
    return timed(lambda: F.linear(x, w), reps)


def attn_ms(q_len, k_len, reps=20):
    q = torch.randn(1, HEADS, q_len, HD, device="cuda", dtype=torch.float16)
    k = torch.randn(1, KV, k_len, HD, device="cuda", dtype=torch.float16)
    v = torch.randn(1, KV, k_len, HD, device="cuda", dtype=torch.float16)
    # Flash attention takes no mask object; expand the KV heads and use the
    # lower-right causal bias with the efficient kernel where lengths differ.
    ke = k.repeat_interleave(HEADS // KV, dim=1)
    ve = v.repeat_interleave(HEADS // KV, dim=1)
    if q_len == k_len:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return timed(lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=True), reps)
    bias = causal_lower_right(q_len, k_len)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
        return timed(lambda: F.scaled_dot_product_attention(q, ke, ve, attn_mask=bias), reps)


class Energy:
    """The device's energy counter through NVML (ctypes: no pynvml needed):
    joules since the driver loaded. None where NVML is missing. NVML's
    index is taken to be torch's current device, which holds where one GPU
    is visible (the machines this runs on) but not under every
    CUDA_VISIBLE_DEVICES."""

    def __init__(self):
        import ctypes
        try:
            self.nv = ctypes.CDLL("libnvidia-ml.so.1")
        except OSError:
            self.nv = None
            return
        self.c = ctypes
        self.h = ctypes.c_void_p()
        if self.nv.nvmlInit_v2() != 0 or self.nv.nvmlDeviceGetHandleByIndex_v2(torch.cuda.current_device(), ctypes.byref(self.h)) != 0:
            self.nv = None

    def joules(self):
        if self.nv is None:
            return None
        mj = self.c.c_ulonglong()
        if self.nv.nvmlDeviceGetTotalEnergyConsumption(self.h, self.c.byref(mj)) != 0:
            return None
        return mj.value / 1e3


def sustained(chunks, reps):
    """The prefill's linears in fp16, chunk by chunk and layer by layer as
    the engine runs them, each layer with weights of its own (so nothing
    stays in L2 between layers), reps times back to back: long enough for
    the card to settle at its power limit, as the engine's prefill does.
    Returns ms and J a prefill and the mean W."""
    ws = [{lin: torch.randn(n, k, device="cuda", dtype=torch.float16) * 0.02 for lin, (n, k) in LINEARS.items()}
          for _ in range(LAYERS)]
    xs = {c: {k: torch.randn(c, k, device="cuda", dtype=torch.float16) for k in {k for _, k in LINEARS.values()}}
          for c, _ in chunks}

    def prefill():
        for c, _ in chunks:
            for w in ws:
                for lin, (n, k) in LINEARS.items():
                    F.linear(xs[c][k], w[lin])

    prefill()
    en = Energy()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    j0 = en.joules()
    start.record()
    for _ in range(reps):
        prefill()
    end.record()
    end.synchronize()
    j1 = en.joules()
    ms = start.elapsed_time(end) / reps
    if j0 is None or j1 is None:
        return ms, None, None
    return ms, (j1 - j0) / reps, (j1 - j0) / (ms * reps / 1e3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=6435)
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--window", type=int, default=4096, help="sliding window (the config's)")
    ap.add_argument("--out", default="")
    ap.add_argument("--sustained", type=int, default=0,
                    help="also run the chunked prefill's linears this many times back to back (ms, J, W a prefill)")
    a = ap.parse_args()
    name = torch.cuda.get_device_name()
    print(f"{name}, torch {torch.__version__}", flush=True)
    chunks = []
    done = 0
    while done < a.tokens:
        chunks.append((min(a.chunk, a.tokens - done), done))
        done += chunks[-1][0]
    res = {"gpu": name, "torch": torch.__version__, "tokens": a.tokens, "chunk": a.chunk, "linears": {}}
    gemm_total = 0.0
    for lin, (n, k) in LINEARS.items():
        per = {}
        for m in sorted({c for c, _ in chunks} | {a.tokens}):
            ms = gemm_ms(m, n, k)
            per[m] = {"ms": ms, "tflops": 2 * m * n * k / ms / 1e9}
        chunk_ms = sum(per[c]["ms"] for c, _ in chunks) * LAYERS
        gemm_total += chunk_ms
        full = per[a.tokens]
        res["linears"][lin] = {"shape": [n, k], "by_tokens": per, "prefill_ms": chunk_ms}
        c0 = per[a.chunk]
        print(f"{lin:8s} {n}x{k}: {a.chunk} tokens {c0['ms']*1e3:7.1f} us {c0['tflops']:6.1f} TFLOP/s; "
              f"{a.tokens} tokens {full['ms']:.3f} ms {full['tflops']:6.1f} TFLOP/s; chunked prefill {chunk_ms:.1f} ms",
              flush=True)
    # A chunk's queries see at most window keys each; flash attention has no
    # band mask, so a chunk past the window takes its last window-1+c keys
    # under the lower-right causal mask: up to c-1 keys too many a query.
    attn_total = sum(attn_ms(c, min(d + c, a.window - 1 + c)) for c, d in chunks) * LAYERS
    attn_whole = attn_ms(a.tokens, a.tokens) * LAYERS  # no window: every earlier key
    res.update(gemm_prefill_ms=gemm_total, attn_prefill_ms=attn_total, attn_whole_ms=attn_whole,
               gemm_whole_ms=sum(v["by_tokens"][a.tokens]["ms"] for v in res["linears"].values()) * LAYERS)
    print(f"GEMMs over {len(chunks)} chunks: {gemm_total:.1f} ms; attention {attn_total:.1f} ms; "
          f"whole prompt at once: GEMMs {res['gemm_whole_ms']:.1f} ms, attention {attn_whole:.1f} ms", flush=True)
    if a.sustained > 0:
        ms, j, w = sustained(chunks, a.sustained)
        res.update(sustained_gemm_ms=ms, sustained_gemm_j=j, sustained_gemm_w=w)
        energy = f", {j:.1f} J, {w:.0f} W" if j is not None else " (no NVML: no energy)"
        print(f"GEMMs over {len(chunks)} chunks, {a.sustained} prefills back to back: {ms:.1f} ms a prefill{energy}",
              flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
