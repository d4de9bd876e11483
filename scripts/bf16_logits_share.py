#!/usr/bin/env python3
"""Where ref-17m's bf16 argmax flips come from (CPU, transformers), on the positions that
`LlamaCuda.Ref17mBf16ArgmaxAgrees` scores (the first 4 x 1024 tokens of the wiki.test.raw stream,
MANIFEST protocol):
  1. bf16-rounded weights, fp32 compute: is the checkpoint exactly bf16?
  2. bf16 everything (transformers' bf16 model on the CPU);
  3. the same bf16 model, logits computed in fp32 from its bf16 final hidden state.
Usage: python3 scripts/bf16_logits_share.py SHARED_DIR
"""
import sys

import sentencepiece as spm
import torch
from transformers import LlamaForCausalLM

shared = sys.argv[1] if len(sys.argv) > 1 else "../shared"
d = f"{shared}/models/ref-17m"
sp = spm.SentencePieceProcessor(model_file=f"{d}/tokenizer.model")
text = open(f"{shared}/data/text/wikitext2/wiki.test.raw", encoding="utf-8").read()
docs = []
for piece in text.split("\n\n"):  # MANIFEST protocol (docs/cli.md, "paragraphs")
    docs += piece.split("\n") if len(piece) > 20000 else [piece]
stream = []
for doc in docs:
    if doc.strip():
        stream += [1] + sp.encode(doc) + [2]
    if len(stream) >= 4 * 1024:
        break
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
