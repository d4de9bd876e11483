#!/usr/bin/env python3
"""transformers' own bf16-vs-fp32 argmax agreement for ref-17m on the positions that
`LlamaCuda.Ref17mBf16ArgmaxAgrees` scores: the first 4 x 1024 tokens of the wiki.test.raw stream
under the MANIFEST protocol. Tells bf16 noise of this model apart from a defect of our runtime.
Usage (GPU machine): python3 scripts/bf16_agreement.py SHARED_DIR
"""
import json
import os
import sys

import torch
from transformers import LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wiki_positions import wiki_stream  # noqa: E402

shared = sys.argv[1]
d = f"{shared}/models/ref-17m"
stream = wiki_stream(shared, 4 * 1024)
x = torch.tensor(stream[:4 * 1024]).view(4, 1024).cuda()
with torch.no_grad():
    out = {}
    ref = LlamaForCausalLM.from_pretrained(d, dtype=torch.float32).cuda().eval()(x).logits.argmax(-1)
    for impl in ["sdpa", "eager"]:
        m = LlamaForCausalLM.from_pretrained(d, dtype=torch.bfloat16, attn_implementation=impl).cuda().eval()
        out[f"transformers_bf16_{impl}_vs_fp32_argmax_agreement"] = (m(x).logits.argmax(-1) == ref).double().mean().item()
    out["positions"] = x.numel()
    print(json.dumps(out))
