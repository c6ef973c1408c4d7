"""Cross-check a checkpoint written by `summarize synth` with Python tooling.

Run by hand on a machine with torch and safetensors (the GPU machine):

    BRIEF_AWQ_DUMP=/tmp/tiny go test ./inference/synth -run DumpForPython   (or the compiled test binary)
    python3 inference/synth/testdata/awq_check.py /tmp/tiny

It opens model.safetensors with the reference (Rust) safetensors reader, which
refuses holes, misalignment and bad offsets; unpacks every AWQ linear the way
AutoAWQ does (shift out 8 nibbles, then reorder with AWQ_REVERSE_ORDER
[0, 4, 1, 5, 2, 6, 3, 7]); and compares with the *.dequant.f32 dumps written by
the Go loader's DequantizeAWQ. Folders without dumps (e.g. the 7B shape) get
the open and shape checks only.
"""
import glob
import json
import os
import sys

import numpy as np
import torch
from safetensors import safe_open

AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]


def unpack(packed: torch.Tensor) -> torch.Tensor:
    shifts = torch.arange(0, 32, 4, dtype=torch.int32)
    x = (packed.unsqueeze(-1) >> shifts) & 15  # (rows, cols/8, 8) in nibble order
    x = x.reshape(packed.shape[0], -1)
    x = x.view(-1, 8)[:, AWQ_REVERSE_ORDER].view(packed.shape[0], -1)
    return x


def dequant(f, prefix: str, group: int) -> torch.Tensor:
    q = unpack(f.get_tensor(prefix + ".qweight"))
    z = unpack(f.get_tensor(prefix + ".qzeros"))
    s = f.get_tensor(prefix + ".scales").float()
    z = z.repeat_interleave(group, dim=0)
    s = s.repeat_interleave(group, dim=0)
    return (q - z).float() * s


def main(folder: str) -> None:
    cfg = json.load(open(os.path.join(folder, "config.json")))
    group = cfg["quantization_config"]["group_size"]
    n = 0
    with safe_open(os.path.join(folder, "model.safetensors"), framework="pt") as f:
        names = list(f.keys())
        for name in names:
            t = f.get_slice(name)
            n += 1
        assert f.metadata().get("format") == "pt", f.metadata()
        q = unpack(f.get_tensor("model.layers.0.self_attn.q_proj.qweight"))
        print(f"{folder}: {n} tensors open with safetensors; q_proj nibble mean {q.float().mean():.3f}")
        for dump in sorted(glob.glob(os.path.join(folder, "*.dequant.f32"))):
            prefix = os.path.basename(dump)[: -len(".dequant.f32")]
            want = dequant(f, prefix, group)
            got = torch.from_numpy(np.fromfile(dump, dtype="<f4").reshape(want.shape))
            diff = (got - want).abs().max().item()
            print(f"{prefix}: {tuple(want.shape)} max |Go - AutoAWQ unpack| = {diff}")
            assert diff == 0, prefix


if __name__ == "__main__":
    for d in sys.argv[1:]:
        main(d)
