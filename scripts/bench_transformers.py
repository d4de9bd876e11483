#!/usr/bin/env python3
"""Reference timings of transformers' LlamaForCausalLM on the same GPU, for docs/benchmarks.md.

Random bf16 weights at the shapes of a config.json (default: configs/llama-3.1-8b.json). Measures
(1) one decode step at batch 1 after a prefill of C tokens (DynamicCache, eager, as users run it;
median over steps C..C+N, each step timed with CUDA events) and (2) a prefill of S tokens.
Prints one JSON object. Usage: python3 scripts/bench_transformers.py --contexts 128,2048 --prefill 2048
"""
import argparse
import json
import statistics

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/llama-3.1-8b.json")
    ap.add_argument("--contexts", default="128,2048")
    ap.add_argument("--prefill", default="2048")
    ap.add_argument("--steps", type=int, default=30)
    a = ap.parse_args()
    c = json.load(open(a.config))
    c.pop("architectures", None)
    cfg = LlamaConfig(**c)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    out = {"transformers_decode": [], "transformers_prefill": []}
    ev = lambda: torch.cuda.Event(enable_timing=True)
    with torch.no_grad():
        for ctx in [int(x) for x in a.contexts.split(",") if x]:
            ids = torch.randint(0, cfg.vocab_size, (1, ctx), device="cuda")
            o = model(ids, use_cache=True)
            past = o.past_key_values
            tok = o.logits[:, -1:].argmax(-1)
            times = []
            for i in range(a.steps + 5):
                s, e = ev(), ev()
                s.record()
                o = model(tok, past_key_values=past, use_cache=True)
                e.record()
                e.synchronize()
                past = o.past_key_values
                tok = o.logits[:, -1:].argmax(-1)
                if i >= 5:
                    times.append(s.elapsed_time(e))
            out["transformers_decode"].append({"context": ctx, "ms": statistics.median(times)})
        for s_len in [int(x) for x in a.prefill.split(",") if x]:
            ids = torch.randint(0, cfg.vocab_size, (1, s_len), device="cuda")
            times = []
            for i in range(8):
                s, e = ev(), ev()
                s.record()
                model(ids, use_cache=True, logits_to_keep=1)
                e.record()
                e.synchronize()
                if i >= 2:
                    times.append(s.elapsed_time(e))
            out["transformers_prefill"].append({"tokens": s_len, "ms": statistics.median(times)})
    out["device"] = torch.cuda.get_device_name()
    out["torch"] = torch.__version__
    import transformers
    out["transformers"] = transformers.__version__
    print(json.dumps(out))


if __name__ == "__main__":
    main()
