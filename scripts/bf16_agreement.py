#!/usr/bin/env python3
"""transformers' own bf16-vs-fp32 argmax agreement for ref-17m, on the positions the
`LlamaCuda.Ref17mBf16ArgmaxAgrees` test uses (the golden prompts continued greedily by the fp32
model to 1023 tokens). Tells bf16 noise of this model apart from a defect of our runtime.
Usage: python3 scripts/bf16_agreement.py MODEL_DIR   (GPU machine)
"""
import json
import sys

import torch
from safetensors.torch import load_file
from transformers import LlamaForCausalLM

d = sys.argv[1]
g = load_file(f"{d}/golden_logits.safetensors")
fp32 = LlamaForCausalLM.from_pretrained(d, dtype=torch.float32).cuda().eval()
bf16 = LlamaForCausalLM.from_pretrained(d, dtype=torch.bfloat16).cuda().eval()
with torch.no_grad():
    rows = []
    for r in range(g["input_ids"].shape[0]):
        ids = g["input_ids"][r:r + 1].cuda()
        out = fp32.generate(ids, max_new_tokens=1024 - ids.shape[1], do_sample=False,
                            min_new_tokens=1024 - ids.shape[1])
        rows.append(out[0, :1023])
    x = torch.stack(rows)
    a = fp32(x).logits.argmax(-1)
    b = bf16(x).logits.argmax(-1)
    print(json.dumps({"transformers_bf16_vs_fp32_argmax_agreement": (a == b).double().mean().item(),
                      "positions": a.numel()}))
