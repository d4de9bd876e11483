#!/usr/bin/env python3
"""Independent PyTorch/transformers references for the runtime tests (tests/fixtures/model/).

Run from the repo root with torch 2.11 + transformers 5.17 (CPU is enough):
    python3 scripts/make_model_goldens.py [--shared ../shared]
Writes, all small:
  stories260K_hf_logits.safetensors  input_ids [2, 48] + fp32 logits of LlamaForCausalLM built from
                                     stories260K.bin by this script's own llama2.c reader and the
                                     q/k permutation of transformers' convert_llama_weights_to_hf.
  tiny_llama3/                       a seeded random LlamaForCausalLM (llama3 rope scaling, explicit
                                     head_dim != hidden/heads, untied head, GQA) saved by
                                     save_pretrained in two shards + a transformers-4-style
                                     config.json (top-level rope_theta + rope_scaling); logits.safetensors.
  rope_llama3_inv_freq.json          transformers' llama3 inverse frequencies for Llama-3.1-8B.
"""
import argparse
import json
import os
import struct

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

OUT = "tests/fixtures/model"


def read_llama2c_legacy(path):
    raw = open(path, "rb").read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    f = np.frombuffer(raw[28:], dtype=np.float32)
    hd = dim // n_heads
    kv_dim = n_kv * hd
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        t = torch.from_numpy(f[off:off + n].copy()).reshape(*shape)
        off += n
        return t

    w = {}
    w["embed"] = take(vocab, dim)
    w["rms_att"] = [take(dim) for _ in range(n_layers)]
    w["wq"] = [take(dim, dim) for _ in range(n_layers)]
    w["wk"] = [take(kv_dim, dim) for _ in range(n_layers)]
    w["wv"] = [take(kv_dim, dim) for _ in range(n_layers)]
    w["wo"] = [take(dim, dim) for _ in range(n_layers)]
    w["rms_ffn"] = [take(dim) for _ in range(n_layers)]
    w["w1"] = [take(hidden, dim) for _ in range(n_layers)]
    w["w2"] = [take(dim, hidden) for _ in range(n_layers)]
    w["w3"] = [take(hidden, dim) for _ in range(n_layers)]
    w["rms_final"] = take(dim)
    cfg = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv,
               vocab=vocab, seq_len=seq_len, shared=shared)
    return cfg, w


def permute(w, n_heads, dim1, dim2):
    # transformers/models/llama/convert_llama_weights_to_hf.py: interleaved -> rotate-half rows.
    return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)


def stories_goldens(shared):
    cfg, w = read_llama2c_legacy(os.path.join(shared, "models/stories260K/stories260K.bin"))
    hd = cfg["dim"] // cfg["n_heads"]
    hf_cfg = LlamaConfig(vocab_size=cfg["vocab"], hidden_size=cfg["dim"],
                         intermediate_size=cfg["hidden"], num_hidden_layers=cfg["n_layers"],
                         num_attention_heads=cfg["n_heads"], num_key_value_heads=cfg["n_kv"],
                         max_position_embeddings=cfg["seq_len"], rms_norm_eps=1e-5,
                         rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=1,
                         eos_token_id=2)
    model = LlamaForCausalLM(hf_cfg).eval()
    sd = {"model.embed_tokens.weight": w["embed"], "model.norm.weight": w["rms_final"],
          "lm_head.weight": w["embed"]}
    for l in range(cfg["n_layers"]):
        p = f"model.layers.{l}."
        sd[p + "input_layernorm.weight"] = w["rms_att"][l]
        sd[p + "post_attention_layernorm.weight"] = w["rms_ffn"][l]
        sd[p + "self_attn.q_proj.weight"] = permute(w["wq"][l], cfg["n_heads"], cfg["dim"], cfg["dim"])
        sd[p + "self_attn.k_proj.weight"] = permute(w["wk"][l], cfg["n_kv"], cfg["n_kv"] * hd, cfg["dim"])
        sd[p + "self_attn.v_proj.weight"] = w["wv"][l]
        sd[p + "self_attn.o_proj.weight"] = w["wo"][l]
        sd[p + "mlp.gate_proj.weight"] = w["w1"][l]
        sd[p + "mlp.down_proj.weight"] = w["w2"][l]
        sd[p + "mlp.up_proj.weight"] = w["w3"][l]
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not [m for m in missing if "rotary" not in m], missing
    greedy = [int(x) for x in open(os.path.join(shared, "models/stories260K/expected_greedy_ids.txt")).read().split()]
    g = torch.Generator().manual_seed(0)
    ids = torch.stack([torch.tensor([1] + greedy[:47]), torch.randint(0, cfg["vocab"], (48,), generator=g)])
    with torch.no_grad():
        logits = model(ids).logits.float()
    save_file({"input_ids": ids.contiguous(), "logits": logits.contiguous()},
              os.path.join(OUT, "stories260K_hf_logits.safetensors"))


def tiny_llama3():
    torch.manual_seed(1234)
    cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                      max_position_embeddings=256, rms_norm_eps=1e-6,
                      rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 32},
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=[2, 3])
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.08 * torch.randn_like(p))
    d = os.path.join(OUT, "tiny_llama3")
    model.save_pretrained(d, max_shard_size="100KB")
    # Rewrite config.json in the transformers-4 layout real Llama-3.1 checkpoints use.
    c = json.load(open(os.path.join(d, "config.json")))
    rp = c.pop("rope_parameters")
    c["rope_theta"] = rp.pop("rope_theta")
    c["rope_scaling"] = rp
    c["torch_dtype"] = c.pop("dtype", "float32")
    json.dump(c, open(os.path.join(d, "config.json"), "w"), indent=2)
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, 128, (2, 200), generator=g)  # 200 > original context 32: scaling matters
    with torch.no_grad():
        logits = model(ids).logits.float()
    save_file({"input_ids": ids, "logits": logits}, os.path.join(OUT, "tiny_llama3_logits.safetensors"))


def rope_goldens(repo):
    c = json.load(open(os.path.join(repo, "configs/llama-3.1-8b.json")))
    cfg = LlamaConfig(**{k: v for k, v in c.items() if k not in ("architectures",)})
    inv, scale = ROPE_INIT_FUNCTIONS["llama3"](cfg, "cpu")
    json.dump({"inv_freq": inv.tolist(), "attention_scaling": scale},
              open(os.path.join(OUT, "rope_llama3_inv_freq.json"), "w"))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(2)
    stories_goldens(a.shared)
    tiny_llama3()
    rope_goldens(".")
    print("wrote", sorted(os.listdir(OUT)))
