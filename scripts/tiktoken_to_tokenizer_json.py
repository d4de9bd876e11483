#!/usr/bin/env python3
"""Converts a tiktoken ranks file (Llama-3 `tokenizer.model`) into a Hugging Face `tokenizer.json`.

Why: the C++ byte-level BPE reads tokenizer.json; converting the tiktoken file and checking both
paths against their own references (HF `tokenizers` for the json, `tiktoken` for the ranks) tests
the json reader on the real Llama-3 vocabulary.

Recipe (the known TikToken -> HF converters do the same): every token of rank r whose bytes split
into two tokens l + r' gives a merge (l, r'); merges are ordered by the rank of the merged token
(ties by the ranks of the left, then right piece), so HF's "lowest merge rank first" equals
tiktoken's "lowest rank of the concatenation first". Tokens are written through GPT-2's
bytes_to_unicode map. Pre-tokenizer: Split(Llama-3 regex, Isolated) + ByteLevel(use_regex=false);
decoder ByteLevel; `ignore_merges` true because tiktoken looks a whole pre-token up before merging;
the 256 Llama-3 special tokens become added_tokens.

    python3 scripts/tiktoken_to_tokenizer_json.py ../shared/data/tokenizers/llama3/tokenizer.model \
        tests/fixtures/tokenizer/llama3_tokenizer.json.gz
"""
import argparse
import base64
import gzip
import json

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def llama3_special_tokens(num_base_tokens):
    """The 256 special tokens meta-llama/llama3 llama/tokenizer.py appends after the ranks."""
    names = ["<|begin_of_text|>", "<|end_of_text|>"]
    names += [f"<|reserved_special_token_{i}|>" for i in range(4)]
    names += ["<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>", "<|eot_id|>"]
    names += [f"<|reserved_special_token_{i}|>" for i in range(5, 256 - 5)]
    assert len(names) == 256
    return {name: num_base_tokens + i for i, name in enumerate(names)}


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character map (openai/gpt-2 encoder.py)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def load_ranks(path):
    ranks = {}
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
    return ranks


def convert(ranks):
    b2u = bytes_to_unicode()
    to_str = lambda b: "".join(b2u[x] for x in b)  # noqa: E731
    vocab = {to_str(tok): rank for tok, rank in ranks.items()}
    merges = []
    for tok, rank in ranks.items():
        local = []
        for i in range(1, len(tok)):
            left, right = tok[:i], tok[i:]
            if left in ranks and right in ranks:
                local.append((ranks[left], ranks[right], rank, left, right))
        local.sort()
        merges.extend(local)
    merges.sort(key=lambda m: (m[2], m[0], m[1]))
    specials = llama3_special_tokens(len(ranks))
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for s, i in specials.items()]
    bos = "<|begin_of_text|>"
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False}]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [specials[bos]], "tokens": [bos]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": [[to_str(m[3]), to_str(m[4])] for m in merges]},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ranks", help="tiktoken ranks file (base64 token, space, rank per line)")
    ap.add_argument("out", help="tokenizer.json to write; a .gz suffix writes it gzip'ed")
    a = ap.parse_args()
    text = json.dumps(convert(load_ranks(a.ranks)), ensure_ascii=False, separators=(",", ":"))
    data = text.encode("utf-8")
    if a.out.endswith(".gz"):
        # mtime=0 keeps the committed file byte-identical across runs.
        with open(a.out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                                      filename="") as f:
            f.write(data)
    else:
        with open(a.out, "wb") as f:
            f.write(data)
    print(f"wrote {a.out} ({len(data)} bytes uncompressed)")


if __name__ == "__main__":
    main()
