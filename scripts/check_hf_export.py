#!/usr/bin/env python3
"""Loads a `jointnas export --to hf` directory in transformers (LlamaForCausalLM, fp32, CPU) and
compares its logits with jointnas's, saved beside it as jnas_logits.safetensors ({"ids": [1, T]
int64, "logits": [T, V] fp32}) by tests/export/hf_export_test.cpp. Exit 0 when the max |diff| is
within the tolerance (default 1e-4, the house's fp32 same-math bound for tiny models), 1 when
not, 77 when transformers is not installed (the test then skips)."""
import sys

try:
    import torch
    from safetensors.torch import load_file
    from transformers import LlamaForCausalLM
except ImportError as e:  # the test skips
    print(f"transformers not available: {e}")
    sys.exit(77)


def main() -> int:
    path = sys.argv[1]
    tol = float(sys.argv[2]) if len(sys.argv) > 2 else 1e-4
    ref = load_file(f"{path}/jnas_logits.safetensors")
    model = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        logits = model(ref["ids"]).logits[0].float()
    diff = (logits - ref["logits"]).abs().max().item()
    print(f"{type(model).__name__}: max |logit diff| vs jointnas {diff:.3g} (tolerance {tol:g})")
    return 0 if diff <= tol else 1


if __name__ == "__main__":
    sys.exit(main())
