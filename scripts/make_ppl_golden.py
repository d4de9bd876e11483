#!/usr/bin/env python3
"""Independent transformers reference for `jointnas eval ppl --protocol gptq|llamacpp`.

Writes tests/fixtures/eval/ppl_ref17m.json: ref-17m's WikiText-2 test perplexity under
  gptq      GPTQ's datautils.get_wikitext2 + llama_eval (Frantar et al. 2022; SparseGPT, Wanda and
            AWQ copy it): the text tokenized once with BOS, nsamples = numel // seqlen windows of
            seqlen = max_position_embeddings, loss of each window's seqlen - 1 shifted predictions,
            ppl = exp(sum(loss_i * seqlen) / (nsamples * seqlen)).
  llamacpp  llama.cpp examples/perplexity: the text tokenized once with BOS, n_ctx = 512 chunks, the
            first token of each chunk replaced by BOS, only logits n_ctx/2 .. n_ctx-2 scored.
on wikitext2_test.gptq_joined.txt ("\\n\\n".join of the HF rows, the string GPTQ tokenizes) and on
wiki.test.raw (the file llama.cpp reads).

Tokenizer: GPTQ used the slow (SentencePiece) LlamaTokenizer; transformers 5.17's AutoTokenizer
cannot convert ref-17m's tokenizer.model (ref-17m MANIFEST), so this script calls the Python
`sentencepiece` package on the same file: ids = [bos] + sp.encode(text). Model: LlamaForCausalLM,
fp32 (the bf16 checkpoint upcast), CPU, no KV cache.

Run from the repo root with ../shared beside it (torch 2.11, transformers 5.17, sentencepiece 0.2):
    python3 scripts/make_ppl_golden.py [--shared ../shared] [--out tests/fixtures/eval/ppl_ref17m.json]
Takes about two minutes on two CPU cores.
"""
import argparse
import json
import math
import os

import sentencepiece as spm
import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM

KEEP_WINDOWS = 8  # per-window NLLs kept in the golden, for a fast test on a prefix


@torch.inference_mode()
def window_nlls(model, ids, window, bos_each_window=None, score_first=0):
    """Mean NLL of each full non-overlapping window (float64 sums of fp32 per-token losses)."""
    out = []
    for k in range(len(ids) // window):
        x = torch.tensor(ids[k * window:(k + 1) * window]).unsqueeze(0)
        if bos_each_window is not None:
            x[0, 0] = bos_each_window
        logits = model(x).logits.float()  # [1, W, V]
        loss = F.cross_entropy(logits[0, :-1], x[0, 1:], reduction="none")  # [W-1]
        out.append(loss[score_first:].double().sum().item() / (window - 1 - score_first))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--out", default="tests/fixtures/eval/ppl_ref17m.json")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model_dir = os.path.join(args.shared, "models/ref-17m")
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    bos = sp.bos_id()
    ctx = model.config.max_position_embeddings
    result = {"model": "ref-17m", "dtype": "float32", "tokenizer": "sentencepiece " + spm.__version__,
              "torch": torch.__version__, "files": {}}
    for name in ["wikitext2_test.gptq_joined.txt", "wiki.test.raw"]:
        with open(os.path.join(args.shared, "data/text/wikitext2", name), encoding="utf-8") as f:
            text = f.read()
        ids = [bos] + sp.encode(text)
        entry = {"stream_tokens": len(ids)}
        for proto, window, kw in [("gptq", ctx, {}),
                                  ("llamacpp", 512, {"bos_each_window": bos, "score_first": 256})]:
            nlls = window_nlls(model, ids, window, **kw)
            # Every window scores the same count, so the mean of window means is the token mean.
            nll = sum(nlls) / len(nlls)
            entry[proto] = {"window": window, "windows": len(nlls),
                            "tokens": len(nlls) * (window - 1 - kw.get("score_first", 0)),
                            "nll": nll, "ppl": math.exp(nll),
                            "first_window_nlls": nlls[:KEEP_WINDOWS]}
            print(f"{name} {proto}: windows {len(nlls)} nll {nll:.6f} ppl {math.exp(nll):.4f}",
                  flush=True)
        result["files"][name] = entry
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
