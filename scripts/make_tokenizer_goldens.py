#!/usr/bin/env python3
"""Reference token ids for the tokenizer tests (tests/fixtures/tokenizer/goldens.json).

Reference implementation: Python `sentencepiece` (pip). Run from the repo root:
    python3 scripts/make_tokenizer_goldens.py [--shared ../shared]
The corpus (tests/fixtures/tokenizer/corpus.json) holds whitespace runs, digits, punctuation,
contractions, non-ASCII text and emoji; JSON keeps \\r\\n and tabs exact.
"""
import argparse
import json
import os

import sentencepiece as spm

CORPUS = [
    "Hello world",
    "  leading and   multiple   spaces  ",
    "tabs\tand\nnewlines\r\nand CRLF\n\n\nblank lines",
    "Numbers: 1234567890 3.14159 -42 1,000,000 2026-11-26",
    "Punctuation!? (brackets) [square] {curly} <angle> \"quotes\" 'single' --- ... ;:",
    "Contractions: I'm, you're, they've, she'll, he'd, it's, don't, can't",
    "Accents: café naïve résumé Ångström façade",
    "CJK: 日本語のテキスト 中文文本 한국어",
    "Cyrillic: Привет, мир! Arabic: مرحبا بالعالم",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇺🇳 ❤️",
    " = Robert Boulter = \n",
    "Once upon a time, there was a little girl named Lily.",
    "",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    a = ap.parse_args()
    out = "tests/fixtures/tokenizer"
    os.makedirs(out, exist_ok=True)
    json.dump(CORPUS, open(os.path.join(out, "corpus.json"), "w"), ensure_ascii=False, indent=1)
    goldens = {}
    for name, rel in [("ref-17m", "models/ref-17m/tokenizer.model"),
                      ("llama2", "data/tokenizers/llama2/tokenizer.model")]:
        sp = spm.SentencePieceProcessor(model_file=os.path.join(a.shared, rel))
        goldens[name] = {"file": rel, "ids": [sp.encode(s) for s in CORPUS],
                         "decoded": [sp.decode(sp.encode(s)) for s in CORPUS]}
    json.dump(goldens, open(os.path.join(out, "goldens.json"), "w"), ensure_ascii=False)
    print("wrote", out)


if __name__ == "__main__":
    main()
