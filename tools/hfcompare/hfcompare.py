#!/usr/bin/env python3
"""Cross-check Brief's CUDA engine against transformers on the same weights.

Loads an AWQ checkpoint folder (e.g. the synthetic OpenHermes-shaped one from
`summarize synth`), dequantizes every AWQ linear into an fp16
MistralForCausalLM / LlamaForCausalLM built from config.json (no download),
and compares with what tools/hfcompare/cudarun wrote for the same prompt:

  * greedy ids: tokens identical before the first divergence, and whether
    the divergence is a near-tie (transformers' top-2 margin < 0.05 there);
  * teacher-forced top-1 agreement over the compared positions (transformers
    fed the prompt plus our ids, its argmax at each position against ours);
  * logit error at the prompt's last position.

With --time N it also times transformers on the reference workload (N new
tokens, greedy and with prompt_lookup_num_tokens=10), on the same GPU.
Run by hand on a GPU machine; see README.md.
"""
import argparse
import json
import os
import sys
import time

import torch
from safetensors.torch import load_file
import transformers

# Column 8c+j of a packed AWQ int32 is nibble INV[j] (AWQ order 0,2,4,6,1,3,5,7).
AWQ_SHIFTS = [0, 16, 4, 20, 8, 24, 12, 28]


def unpack(packed):
    """(rows, cols/8) int32 -> (rows, cols) int32 of 4-bit values."""
    shifts = torch.tensor(AWQ_SHIFTS, dtype=torch.int32, device=packed.device)
    v = (packed.unsqueeze(-1) >> shifts) & 0xF
    return v.reshape(packed.shape[0], -1)


def dequant(qweight, qzeros, scales, group):
    """AWQ GEMM tensors -> torch Linear weight (out, in) fp16: W = (q - z) * s."""
    q = unpack(qweight)
    z = unpack(qzeros).repeat_interleave(group, dim=0)
    s = scales.repeat_interleave(group, dim=0)
    w = (q - z).to(torch.float16) * s
    return w.t().contiguous()


def build_model(folder):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    quant = cfg.pop("quantization_config", None)
    if quant is None:
        with open(os.path.join(folder, "quant_config.json")) as f:
            quant = json.load(f)
    group = quant.get("group_size") or quant.get("q_group_size")
    arch = cfg["architectures"][0]
    cls = {"MistralForCausalLM": (transformers.MistralConfig, transformers.MistralForCausalLM),
           "LlamaForCausalLM": (transformers.LlamaConfig, transformers.LlamaForCausalLM)}[arch]
    config = cls[0](**cfg)
    torch.set_default_dtype(torch.float16)
    with torch.device("cuda"):
        model = cls[1](config)
    tensors = load_file(os.path.join(folder, "model.safetensors"), device="cuda")
    state = {}
    for name, t in tensors.items():
        if name.endswith(".qweight"):
            p = name[: -len(".qweight")]
            state[p + ".weight"] = dequant(t, tensors[p + ".qzeros"], tensors[p + ".scales"], group)
        elif name.endswith(".qzeros") or name.endswith(".scales"):
            continue
        else:
            state[name] = t
    del tensors
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if "rotary_emb" not in m and not (config.tie_word_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        sys.exit(f"hfcompare: state dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    del state
    return model.eval(), config


def margin(v):
    top = torch.topk(v.float(), 2).values
    return float(top[0] - top[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt", required=True, help='JSON {"ids": [...]}')
    ap.add_argument("--ours", required=True, help="folder with cudarun's ours.json and last_logits.f32")
    ap.add_argument("--time", type=int, default=0, help="new tokens of the timed reference runs (0: none)")
    ap.add_argument("--out", default=None, help="write the report as JSON here")
    a = ap.parse_args()

    prompt = json.load(open(a.prompt))["ids"]
    ours = json.load(open(os.path.join(a.ours, "ours.json")))
    our_ids = ours["ids"]
    n = len(our_ids)
    t0 = time.time()
    model, config = build_model(a.model)
    print(f"model built in {time.time() - t0:.1f}s on {torch.cuda.get_device_name()}", flush=True)
    P = len(prompt)
    report = {"device": torch.cuda.get_device_name(), "prompt_tokens": P, "compared": n}

    with torch.no_grad():
        ids = torch.tensor([prompt], device="cuda")
        # transformers' own greedy continuation.
        gen = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                             pad_token_id=config.eos_token_id if isinstance(config.eos_token_id, int) else 0)
        hf_ids = gen[0, P:].tolist()
        same = next((i for i in range(n) if hf_ids[i] != our_ids[i]), n)
        # Teacher-forced on our sequence: logits predicting our_ids[0..n-1].
        full = torch.tensor([prompt + our_ids[:-1]], device="cuda")
        logits = model(full, logits_to_keep=n).logits[0].float()
        top1 = logits.argmax(-1).tolist()
        agree = sum(int(top1[i] == our_ids[i]) for i in range(n)) / n
        report.update({
            "identical_before_divergence": same,
            "divergence_margin": margin(logits[same]) if same < n else None,
            "divergence_near_tie": (margin(logits[same]) < 0.05) if same < n else None,
            "teacher_forced_top1_agreement": agree,
        })
        import numpy as np
        our_last = torch.from_numpy(np.fromfile(os.path.join(a.ours, "last_logits.f32"), dtype="<f4")).cuda()
        hf_last = logits[0]
        err = (our_last - hf_last).abs()
        report.update({
            "last_prompt_logits_max_abs_error": float(err.max()),
            "last_prompt_logits_mean_abs_error": float(err.mean()),
            "last_prompt_logits_max_abs": float(hf_last.abs().max()),
            "last_prompt_top1_equal": int(our_last.argmax()) == int(hf_last.argmax()),
        })
        del logits, full

        if a.time > 0:
            runs = []
            for lookup in (False, True):
                kw = {"prompt_lookup_num_tokens": 10} if lookup else {}
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                start = time.time()
                out = model.generate(ids, max_new_tokens=a.time, min_new_tokens=a.time, do_sample=False,
                                     pad_token_id=0, **kw)
                torch.cuda.synchronize()
                wall = time.time() - start
                new = out.shape[1] - P
                runs.append({"strategy": "lookup" if lookup else "greedy", "new_tokens": new,
                             "throughput_tokens_per_s": new / wall,
                             "max_memory_mb": torch.cuda.max_memory_allocated() / 2**20})
                print(f"transformers {runs[-1]['strategy']}: Max memory (MB): {runs[-1]['max_memory_mb']:.0f} "
                      f"Throughput (tokens/sec): {runs[-1]['throughput_tokens_per_s']:.2f}", flush=True)
            report["transformers_runs"] = runs
    report["ours_runs"] = ours.get("runs")
    print(json.dumps(report, indent=1))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(report, f, indent=1)
    ok = report["teacher_forced_top1_agreement"] >= 0.99 and (same == n or report["divergence_near_tie"])
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
