#!/usr/bin/env python3
"""Where ref-17m's bf16 argmax flips come from (CPU, transformers), on the positions that
`LlamaCuda.Ref17mBf16ArgmaxAgrees` scores (the first 4 x 1024 tokens of the wiki.test.raw stream,
MANIFEST protocol):
  1. bf16-rounded weights, fp32 compute: is the checkpoint exactly bf16?
  2. bf16 everything (transformers' bf16 model on the CPU);
  3. the same bf16 model, logits computed in fp32 from its bf16 final hidden state.
Usage: python3 scripts/bf16_logits_share.py SHARED_DIR
"""
import os
import sys

import torch
from transformers import LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wiki_positions import wiki_stream  # noqa: E402

shared = sys.argv[1] if len(sys.argv) > 1 else "../shared"
d = f"{shared}/models/ref-17m"
stream = wiki_stream(shared, 4 * 1024)
x = torch.tensor(stream[:4 * 1024]).view(4, 1024)
with torch.no_grad():
    m = LlamaForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    ref = m(x).logits.argmax(-1)
    for p in m.parameters():
        p.copy_(p.to(torch.bfloat16).to(torch.float32))
    print("bf16 weights, fp32 compute:", (m(x).logits.argmax(-1) == ref).double().mean().item())
    mb = LlamaForCausalLM.from_pretrained(d, dtype=torch.bfloat16).eval()
    print("bf16 everything:", (mb(x).logits.argmax(-1) == ref).double().mean().item())
    h = mb.model(x).last_hidden_state  # bf16, after the final norm
    lf32 = h.float() @ mb.lm_head.weight.float().T
    print("bf16 model, fp32 logits:", (lf32.argmax(-1) == ref).double().mean().item())
