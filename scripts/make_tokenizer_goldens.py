#!/usr/bin/env python3
"""Reference token ids for the tokenizer tests (tests/fixtures/tokenizer/goldens.json).

Each tokenizer is run through its own reference implementation, never through our C++:
  ref-17m, llama2          Python `sentencepiece` on the tokenizer.model files
  llama3-tiktoken          `tiktoken.Encoding` built offline from the Llama-3 ranks file + the 256
                           specials of meta-llama/llama3 tokenizer.py
  llama3-json              HF `tokenizers` on llama3_tokenizer.json, which
                           scripts/tiktoken_to_tokenizer_json.py converts from the same ranks file
  gpt2                     HF `tokenizers` ByteLevelBPETokenizer(encoder.json, vocab.bpe), checked
                           here against tiktoken's gpt2 built from the same two files
  stories260K-llama2c,     a line-by-line Python port of llama2.c run.c encode/decode on tok512.bin
  llama2-llama2c           and on Llama-2's tokenizer.bin
Run from the repo root with ../shared beside it:
    python3 scripts/make_tokenizer_goldens.py [--shared ../shared]
The corpus is JSON so that tabs, \\r\\n and trailing spaces stay exact.
"""
import argparse
import json
import os
import struct
import sys

import sentencepiece as spm
import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks, load_tiktoken_bpe
from tokenizers import ByteLevelBPETokenizer, Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiktoken_to_tokenizer_json import LLAMA3_PATTERN, llama3_special_tokens  # noqa: E402

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

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
    # Whitespace edge cases: runs before a word, trailing runs, mixed tabs, lone \r, only spaces.
    "\t\t  indented\n    four spaces\n\t\ttwo tabs \t mixed",
    "trailing spaces   \ntrailing tab\t\n\r\n\r\nCRLF pairs\r\rlone CR",
    "     ",
    "\n",
    " \n \n  \n",
    "a\u00a0non-breaking space, ideographic\u3000space, thin\u2009space",
    # Digit grouping (\p{N}{1,3} for Llama-3) and long numbers.
    "12345678901234567890 0.000001 1e-10 x=42;y=-7 ¼ ½ ²³ ١٢٣ ۴۵۶",
    "Phone +1 (555) 123-4567, ZIP 90210-1234, IPv4 192.168.0.1",
    # Contractions in every case (Llama-3 matches them case-insensitively, GPT-2 only lowercase).
    "I'M YOU'RE THEY'VE SHE'LL HE'D IT'S DON'T You'Re We'Ve 'tis rock'n'roll ''quoted''",
    "def f(x):\n    return x ** 2  # square\n\nif __name__ == \"__main__\":\n\tprint(f(3))\n",
    "<html><body class=\"x\">a&amp;b</body></html> https://example.com/path?q=1&r=2#frag",
    # Scripts with combining marks (\p{M} is neither L nor N), RTL, Indic, Thai, Greek.
    "Hindi: नमस्ते दुनिया  Thai: สวัสดีชาวโลก  Greek: Καλημέρα κόσμε",
    "Combining: e\u0301 a\u0308 n\u0303 (decomposed) vs é ä ñ (composed)",
    "Zalgo: Z\u0351\u036b\u0343\u036a\u0302a\u0352l\u0350g\u0342o\u0310",
    "Emoji ZWJ: 👩‍💻 🏳️‍🌈 🧑🏾‍🚀 👁️‍🗨️ keycap 1️⃣ flags 🇯🇵🇩🇪 🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "Mixed: Ünïcödé™ © ® ° ± × ÷ € £ ¥ → ← ↑ ↓ ∑ ∫ √ ∞ ≠ ≤ ≥",
    "special lookalikes: <|begin_of_text|> <|endoftext|> <s> </s> <unk> [INST]",
    "Long word: Pneumonoultramicroscopicsilicovolcanoconiosis supercalifragilisticexpialidocious"
    " aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!!!!!!!!?????.......,,,,,,------______======********",
]

# Strings for parse_special = true (HF splits added tokens; tiktoken allowed_special="all").
SPECIAL_CORPUS = {
    "llama3": [
        "<|begin_of_text|>Hello<|eot_id|>",
        "<|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|><|reserved_special_token_250|>",
        "a <|end_of_text|> b<|reserved_special_token_4|>",
    ],
    "gpt2": ["Hello<|endoftext|>world", "<|endoftext|> a <|endoftext|>"],
}


def wikitext_excerpt(shared):
    """The first ~1.5 KB of wikitext-2 test: realistic prose with its ' @-@ ' and ' , ' spacing."""
    with open(os.path.join(shared, "data/text/wikitext2/wiki.test.raw"), encoding="utf-8") as f:
        text = f.read(4000)
    return text[:text.rfind("\n", 0, 1500) + 1]


WIKITEXT = "data/text/wikitext2/wiki.test.raw"


def fnv1a64(ids):
    """FNV-1a 64 over the ids as little-endian int32 bytes, as a 16-digit hex string."""
    h = 0xcbf29ce484222325
    for byte in struct.pack(f"<{len(ids)}i", *ids):
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# --- llama2.c run.c, ported line by line (encode / decode) -----------------------------------
def read_llama2c(path, vocab_size=None):
    data = open(path, "rb").read()
    off, pieces, scores = 4, [], []
    while off < len(data) and (vocab_size is None or len(pieces) < vocab_size):
        score, n = struct.unpack_from("<fi", data, off)
        off += 8
        pieces.append(data[off:off + n])
        scores.append(score)
        off += n
    return pieces, scores


def llama2c_lookup(pieces):
    lookup = {}
    for i, p in enumerate(pieces):
        lookup.setdefault(p, i)
    return lookup


def llama2c_encode_bytes(pieces, scores, lookup, raw, tokens):
    """run.c's encode after its dummy prefix: UTF-8 code points (byte fallback + 3), then greedy
    highest-score merges, leftmost on ties. `tokens` holds what comes before `raw`."""
    buf = b""
    for k, c in enumerate(raw):
        if c & 0xC0 != 0x80:
            buf = b""
        buf += bytes([c])
        nxt = raw[k + 1] if k + 1 < len(raw) else 0
        if nxt & 0xC0 == 0x80 and len(buf) < 4:
            continue
        if buf in lookup:
            tokens.append(lookup[buf])
        else:
            tokens.extend(b + 3 for b in buf)
        buf = b""
    while True:
        best_score, best_id, best_idx = -1e10, -1, -1
        for i in range(len(tokens) - 1):
            tid = lookup.get(pieces[tokens[i]] + pieces[tokens[i + 1]], -1)
            if tid != -1 and scores[tid] > best_score:
                best_score, best_id, best_idx = scores[tid], tid, i
        if best_idx == -1:
            break
        tokens[best_idx:best_idx + 2] = [best_id]
    return tokens


def llama2c_encode(pieces, scores, text):
    lookup = llama2c_lookup(pieces)
    raw = text.encode("utf-8")
    return llama2c_encode_bytes(pieces, scores, lookup, raw, [lookup[b" "]] if raw else [])


def llama2c_decode(pieces, ids, prev=1):
    """run.c decode() over a sequence that follows BOS (prev = 1)."""
    out = b""
    for tid in ids:
        p = pieces[tid]
        if prev == 1 and p.startswith(b" "):
            p = p[1:]
        if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
            p = bytes([int(p[3:5], 16)])
        out += p
        prev = tid
    return out.decode("utf-8", errors="replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    a = ap.parse_args()
    out = "tests/fixtures/tokenizer"
    os.makedirs(out, exist_ok=True)
    corpus = CORPUS + [wikitext_excerpt(a.shared)]
    with open(os.path.join(out, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump(corpus, f, ensure_ascii=False, indent=1)
    sh = lambda rel: os.path.join(a.shared, rel)  # noqa: E731
    goldens = {}

    for name, rel in [("ref-17m", "models/ref-17m/tokenizer.model"),
                      ("llama2", "data/tokenizers/llama2/tokenizer.model")]:
        sp = spm.SentencePieceProcessor(model_file=sh(rel))
        ids = [sp.encode(s) for s in corpus]
        goldens[name] = {"file": rel, "reference": f"sentencepiece {spm.__version__}",
                         "ids": ids, "decoded": [sp.decode(i) for i in ids]}

    # Llama-3 through tiktoken (ordinary text, then with all specials allowed).
    rel = "data/tokenizers/llama3/tokenizer.model"
    ranks = load_tiktoken_bpe(sh(rel))
    specials = llama3_special_tokens(len(ranks))
    enc = tiktoken.Encoding(name="llama3", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks,
                            special_tokens=specials)
    ids = [enc.encode_ordinary(s) for s in corpus]
    goldens["llama3-tiktoken"] = {
        "file": rel, "reference": f"tiktoken {tiktoken.__version__}", "ids": ids,
        "decoded": [enc.decode(i) for i in ids],
        "special_texts": SPECIAL_CORPUS["llama3"],
        "special_ids": [enc.encode(s, allowed_special="all") for s in SPECIAL_CORPUS["llama3"]]}

    # The same vocabulary through HF tokenizers, from the converted tokenizer.json.
    json_path = os.path.join(out, "llama3_tokenizer.json")
    if not os.path.exists(json_path):
        from tiktoken_to_tokenizer_json import convert, load_ranks
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(convert(load_ranks(sh(rel))), f, ensure_ascii=False, separators=(",", ":"))
    hf = Tokenizer.from_file(json_path)
    hf.encode_special_tokens = True  # parse_special = false: "<|eot_id|>" in text is just text
    ids = [hf.encode(s, add_special_tokens=False).ids for s in corpus]
    hf.encode_special_tokens = False
    import tokenizers
    goldens["llama3-json"] = {
        "file": "tests/fixtures/tokenizer/llama3_tokenizer.json",
        "reference": f"tokenizers {tokenizers.__version__}", "ids": ids,
        "decoded": [hf.decode(i, skip_special_tokens=True) for i in ids],
        "special_texts": SPECIAL_CORPUS["llama3"],
        "special_ids": [hf.encode(s, add_special_tokens=False).ids
                        for s in SPECIAL_CORPUS["llama3"]]}
    for i, s in enumerate(corpus):
        if goldens["llama3-json"]["ids"][i] != goldens["llama3-tiktoken"]["ids"][i]:
            print(f"WARNING llama3 tokenizer.json (HF) != tiktoken on {s!r}")

    # GPT-2: HF from encoder.json + vocab.bpe; cross-checked against tiktoken's gpt2 encoding.
    enc_json, vocab_bpe = sh("data/tokenizers/gpt2/encoder.json"), sh("data/tokenizers/gpt2/vocab.bpe")
    hf = ByteLevelBPETokenizer(enc_json, vocab_bpe)
    ids = [hf.encode(s).ids for s in corpus]
    tk = tiktoken.Encoding(name="gpt2", pat_str=GPT2_PATTERN,
                           mergeable_ranks=data_gym_to_mergeable_bpe_ranks(vocab_bpe, enc_json),
                           special_tokens={"<|endoftext|>": 50256})
    for i, s in enumerate(corpus):
        if tk.encode_ordinary(s) != ids[i]:
            print(f"WARNING gpt2: HF tokenizers != tiktoken on {s!r}")
    goldens["gpt2"] = {
        "file": "data/tokenizers/gpt2/encoder.json",
        "reference": f"tokenizers {tokenizers.__version__} (= tiktoken gpt2)", "ids": ids,
        "decoded": [hf.decode(i) for i in ids],
        "special_texts": SPECIAL_CORPUS["gpt2"],
        "special_ids": [tk.encode(s, allowed_special="all") for s in SPECIAL_CORPUS["gpt2"]]}

    # llama2.c: run.c's encoder (BOS excluded) and its decoder after BOS.
    for name, path, vocab in [("stories260K-llama2c", "models/stories260K/tok512.bin", 512),
                              ("llama2-llama2c", sh("data/tokenizers/llama2/tokenizer.bin"), 32000)]:
        pieces, scores = read_llama2c(path, vocab)
        ids = [llama2c_encode(pieces, scores, s) for s in corpus]
        goldens[name] = {"file": os.path.relpath(path, a.shared) if path.startswith(a.shared)
                         else path, "reference": "Python port of llama2.c run.c", "ids": ids,
                         "decoded": [llama2c_decode(pieces, i) for i in ids]}

    # Whole wikitext-2 test file (1.3 MB): too big to store ids, so a count + FNV-1a 64 hash of
    # the ids as little-endian int32 (the C++ test hashes the same way). Not for llama2.c: the
    # Python port of run.c is O(n^2).
    with open(sh(WIKITEXT), encoding="utf-8") as f:
        wiki = f.read()
    wiki_ids = {
        "ref-17m": spm.SentencePieceProcessor(model_file=sh("models/ref-17m/tokenizer.model")).encode(wiki),
        "llama2": spm.SentencePieceProcessor(
            model_file=sh("data/tokenizers/llama2/tokenizer.model")).encode(wiki),
        "llama3-tiktoken": enc.encode_ordinary(wiki),
        "gpt2": hf.encode(wiki).ids,
    }
    hf3 = Tokenizer.from_file(json_path)
    hf3.encode_special_tokens = True
    wiki_ids["llama3-json"] = hf3.encode(wiki, add_special_tokens=False).ids
    assert wiki_ids["llama3-json"] == wiki_ids["llama3-tiktoken"], "HF != tiktoken on wikitext"
    assert wiki_ids["gpt2"] == tk.encode_ordinary(wiki), "HF gpt2 != tiktoken gpt2 on wikitext"
    for name, ids in wiki_ids.items():
        goldens[name]["wikitext"] = {"file": WIKITEXT, "count": len(ids), "fnv1a64": fnv1a64(ids)}

    with open(os.path.join(out, "goldens.json"), "w", encoding="utf-8") as f:
        json.dump(goldens, f, ensure_ascii=False, separators=(",", ":"))
    print("wrote", out, {k: sum(map(len, v["ids"])) for k, v in goldens.items()})


if __name__ == "__main__":
    main()
