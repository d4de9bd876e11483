#!/usr/bin/env python3
"""Writes the seed corpus fuzz/corpus/<target>/ and the dictionaries fuzz/dict/<target>.dict.

Seeds are small valid inputs (real files, or real files cut down to a few KB) plus a few
near-valid ones (one field broken, a path that leads out of the model directory, a truncated
file), so that the fuzzer starts inside the parsers rather than at their first check. Run it
from anywhere; it rewrites fuzz/corpus completely. Inputs it reads (docs/fuzzing.md, "Corpus"):
  configs/spaces/*.yaml, configs/runs/*.yaml, configs/llama-3.1-8b.json,
  models/stories260K/tok512.bin, tests/fixtures/model/tiny_llama3/*.json,
  tests/fixtures/tokenizer/llama3_tokenizer.json (its first merges only),
  runs/stories260k-cpu/{search/arch.json,table.json,model/config.json} (made by
  configs/runs/stories260k-cpu.yaml; skipped with a note when absent),
  ../shared/models/ref-17m/{config.json,model.safetensors.index.json} (skipped when absent),
  configs/tasks/*.yaml, tests/fixtures/eval/tasks/*.yaml and data/ (task YAML and task data seeds).
The SentencePiece seed is trained on a few sentences with the Python sentencepiece package
(skipped when it is not installed).
"""
import base64
import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "fuzz" / "corpus"
SHARED = Path(os.environ.get("JNAS_SHARED_DIR", REPO.parent / "shared"))
MAX_SEED_BYTES = 8192  # a few KB each; the whole corpus stays far below 1 MB


def put(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    assert len(data) <= MAX_SEED_BYTES, f"{target}/{name}: {len(data)} bytes is too large for a seed"
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def optional(path):
    if path.exists():
        return path
    print(f"[corpus] note: {path} is absent; its seeds are skipped", file=sys.stderr)
    return None


# --- safetensors --------------------------------------------------------------------------------
def safetensors_bytes(tensors, metadata=None, pad=True):
    """tensors: [(name, dtype, shape, bytes)] -> a safetensors file (as write_safetensors)."""
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = compact(header).encode()
    while pad and len(h) % 8:
        h += b" "
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds():
    t = "fuzz_safetensors"
    f32 = lambda n: struct.pack(f"<{n}f", *[0.5 * i for i in range(n)])
    put(t, "small_f32", safetensors_bytes(
        [("model.norm.weight", "F32", [4], f32(4)), ("lm_head.weight", "F32", [2, 3], f32(6))],
        {"format": "pt"}))
    put(t, "every_dtype", safetensors_bytes([
        ("a.f64", "F64", [1], b"\0" * 8), ("b.f16", "F16", [2], b"\0" * 4),
        ("c.bf16", "BF16", [1, 2], b"\0" * 4), ("d.i64", "I64", [1], b"\1" + b"\0" * 7),
        ("e.i32", "I32", [1], b"\0" * 4), ("f.i16", "I16", [1], b"\0" * 2), ("g.i8", "I8", [3], b"\1\2\3"),
        ("h.u8", "U8", [2], b"\xff\0"), ("i.bool", "BOOL", [1], b"\1"), ("j.e4m3", "F8_E4M3", [1], b"\x38"),
        ("k.e5m2", "F8_E5M2", [1], b"\x3c"), ("l.u16", "U16", [1], b"\0\0"), ("m.u32", "U32", [1], b"\0" * 4),
        ("n.u64", "U64", [1], b"\0" * 8)]))
    put(t, "zero_sized", safetensors_bytes([("empty", "F32", [0, 4], b""), ("scalar", "F32", [], f32(1)),
                                            ("also_empty", "BF16", [3, 0], b"")]))
    put(t, "empty_header", safetensors_bytes([]))
    put(t, "unpadded", safetensors_bytes([("w", "I8", [2, 2], b"\1\2\3\4")], pad=False))
    # Near-valid: sizes that disagree, overlapping ranges, a header length past the end.
    bad = safetensors_bytes([("w", "F32", [2], f32(2))])
    put(t, "size_mismatch", bad.replace(b'"shape":[2]', b'"shape":[3]'))
    put(t, "overlap", safetensors_bytes([("a", "U8", [4], b"abcd")]).replace(
        b'}}', b'},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}'))
    put(t, "truncated", bad[:-3])
    # The real stories260K header (HF export of models/stories260K): its offsets run far past these
    # few bytes of data, so it is rejected at the first tensor: the fuzzer mutates it towards valid.
    real = optional(REPO / "runs/demo/stories260K-hf/model.safetensors")
    if real:
        b = real.read_bytes()
        n = struct.unpack("<Q", b[:8])[0]
        put(t, "stories260k_header", b[:8 + n + 16])


def index_seeds():
    t = "fuzz_safetensors_index"
    tiny = REPO / "tests/fixtures/model/tiny_llama3/model.safetensors.index.json"
    put(t, "tiny_llama3", tiny.read_bytes())
    ref = optional(SHARED / "models/ref-17m/model.safetensors.index.json")
    if ref:
        put(t, "ref17m", compact(json.loads(ref.read_text())))
    # Names the fuzz target's model directory holds (see fuzz_safetensors_index.cpp).
    wm = {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
          "model.norm.weight": "model-00002-of-00002.safetensors",
          "lm_head.weight": "sub/model.safetensors"}
    put(t, "inside", compact({"metadata": {"total_size": 1}, "weight_map": wm}))
    for name, shard in [("dotdot", "../outside.safetensors"), ("absolute", "/etc/passwd"),
                        ("symlink_up", "up/outside.safetensors"), ("symlink_root", "root/etc/passwd"),
                        ("symlink_loop", "loop"), ("symlink_inner", "inner/model.safetensors"),
                        ("dot", "./model-00001-of-00002.safetensors"), ("empty_component", "sub//model.safetensors")]:
        put(t, name, compact({"weight_map": dict(wm, **{"lm_head.weight": shard})}))


# --- config.json ----------------------------------------------------------------------------------
def config_seeds():
    t = "fuzz_config"
    put(t, "llama31_8b_v4", (REPO / "configs/llama-3.1-8b.json").read_bytes())
    put(t, "tiny_llama3", (REPO / "tests/fixtures/model/tiny_llama3/config.json").read_bytes())
    ref = optional(SHARED / "models/ref-17m/config.json")
    if ref:
        put(t, "ref17m_v5", ref.read_bytes())
    demo = optional(REPO / "runs/demo/stories260K-hf/config.json")
    if demo:
        put(t, "stories260k", demo.read_bytes())
    found = optional(REPO / "runs/stories260k-cpu/model/config.json")
    if found:  # per-layer specs (jointnas_layer_specs) of a searched model
        put(t, "stories260k_found", compact(json.loads(found.read_text())))
    put(t, "legacy_rope_type", compact({
        "model_type": "llama", "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32,
        "num_hidden_layers": 1, "num_attention_heads": 2, "rope_theta": 10000,
        "rope_scaling": {"type": "default"}, "eos_token_id": [0, 1], "bos_token_id": None}))


# --- tokenizers ---------------------------------------------------------------------------------
def bytes_to_unicode():
    """GPT-2's byte <-> printable character map (openai/gpt-2 encoder.py)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tiny_bpe(num_merges):
    """The 256 byte tokens plus the first `num_merges` Llama-3 merges that build on them."""
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = []
    full = json.loads((REPO / "tests/fixtures/tokenizer/llama3_tokenizer.json").read_text())
    for a, b in full["model"]["merges"]:
        if a in vocab and b in vocab and a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append([a, b])
            if len(merges) == num_merges:
                break
    return full, vocab, merges


def tokenizer_seeds():
    t = "fuzz_tokenizer"
    put(t, "tok512.bin", (REPO / "models/stories260K/tok512.bin").read_bytes())
    full, vocab, merges = tiny_bpe(40)
    n = len(vocab)
    added = [{"id": n + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for i, c in enumerate(["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"])]
    llama3 = {"version": "1.0", "added_tokens": added, "normalizer": None,
              "pre_tokenizer": full["pre_tokenizer"], "post_processor": full["post_processor"],
              "decoder": full["decoder"],
              "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                        "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                        "ignore_merges": True, "vocab": vocab, "merges": merges}}
    put(t, "llama3_style.json", compact(llama3))
    gpt2 = {"model": {"type": "BPE", "vocab": vocab, "merges": [" ".join(m) for m in merges]},
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
            "decoder": {"type": "ByteLevel"},
            "added_tokens": [{"id": n, "content": "<|endoftext|>", "special": True}]}
    put(t, "gpt2_style.json", compact(gpt2))
    # tiktoken ranks: base64(token bytes) rank, the rank being the id (Llama-3 tokenizer.model).
    u2b = {v: k for k, v in bytes_to_unicode().items()}
    lines = [base64.b64encode(bytes(u2b[c] for c in tok)).decode() + f" {i}" for tok, i in vocab.items()]
    put(t, "tiktoken.model", "\n".join(lines) + "\n")
    sentencepiece_seed(t)


def sentencepiece_seed(t):
    try:
        import sentencepiece as spm
    except ImportError:
        print("[corpus] note: no Python sentencepiece; the SentencePiece seed is skipped", file=sys.stderr)
        return
    text = ("Once upon a time there was a little girl named Lily. She liked to play in the park.\n"
            "One day she saw a big red ball under a tree. The sun was warm and the sky was blue.\n") * 20
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "t.txt").write_text(text)
        # identity normalization: no precompiled charsmap, which alone would be ~200 KB.
        spm.SentencePieceTrainer.train(input=str(Path(d) / "t.txt"), model_prefix=str(Path(d) / "sp"),
                                       vocab_size=60, model_type="bpe", byte_fallback=False,
                                       normalization_rule_name="identity", minloglevel=2)
        put(t, "sentencepiece.model", (Path(d) / "sp.model").read_bytes())


# --- YAML -------------------------------------------------------------------------------------------
def yaml_seeds():
    for p in sorted((REPO / "configs/spaces").glob("*.yaml")):
        put("fuzz_space_yaml", p.name, p.read_bytes())
    put("fuzz_space_yaml", "fractions_and_formats.yaml",
        "hidden: {choices: [0.5, 1.0]}\ndepth: [3, 4, 5]\nmultiple_of: 8\n"
        "layers:\n  searchable: [0, 2]\n  heads: [1, 0.5]\n  head_dim: [4, 8]\n"
        "  formats_qkv: [bf16, w4a16_g128]\n  formats_down: [w8a16, w8a8, fp8_e4m3]\n")
    for p in sorted((REPO / "configs/runs").glob("*.yaml")):
        put("fuzz_run_config", p.name, p.read_bytes())
    put("fuzz_run_config", "minimal.yaml", "model: m\nsearch_space: s.yaml\nbudget: {memory_mib: 1.5}\n"
        "table: $SHARED/t.json\nclosed_loop: 0\nsearch: {penalty: hinge, tau_end: 0.05}\n")
    put("fuzz_run_config", "anchors.yaml", "model: &m a/b\nsearch_space: *m\nbudget: &b {params: 1e6}\n"
        "workload: {kind: 'decode', batch: 2}\neval: *b\n")
    # fuzz_run_config_check: the same configs (their files are replaced by the target), and edge
    # values of the checks after the parse (positions, memory, budget, study).
    for p in sorted((REPO / "configs/runs").glob("*.yaml")):
        put("fuzz_run_config_check", p.name, p.read_bytes())
    put("fuzz_run_config_check", "edges.yaml", "model: m\nsearch_space: s.yaml\nbudget: {latency: 0.5x}\n"
        "data: {calibration: t, eval: t}\nworkload: {kind: decode, batch: 1, context: 511}\n"
        "search: {batch: 64, seq_len: 512}\neval: {window: 512, batch: 8}\n")
    put("fuzz_run_config_check", "study.yaml", "model: m\nsearch_space: s.yaml\ndata: {calibration: t, eval: t}\n"
        "pareto: {budgets: [0.5x, 0.8x], methods: [joint, depth_only]}\n")


# --- lm-eval task files and task data --------------------------------------------------------------
TASK_READERS = ["json", "jsonl", "csv", "llm_foundry_boolq", "llm_foundry_winogrande", "hellaswag_txt",
                "llm_adapters_arc", "mmlu_csv_dir", "wikitext_raw"]  # fuzz_task_data.cpp's order


def task_seeds():
    # Task YAMLs: the shipped ones and the test fixtures (lm-eval's own YAMLs), re-pointed at the
    # target's data file d.jsonl; one near-valid file that leaves the data directory.
    import re
    for p in sorted((REPO / "configs/tasks").glob("*.yaml")) + sorted((REPO / "tests/fixtures/eval/tasks").glob("*.yaml")):
        text = p.read_text()
        text = re.sub(r"(data_files:\n(?:\s+\w+: .*\n)+)", "data_files:\n    test: d.jsonl\n    validation: d.jsonl\n"
                      "    train: train.jsonl\n    dev: d.jsonl\n", text)
        text = re.sub(r"local_data:\n(\s+.*\n?)+", "dataset_path: json\ndataset_kwargs: {data_files: {test: d.jsonl, "
                      "validation: d.jsonl, dev: d.jsonl}}\n", text)
        put("fuzz_task_yaml", ("fix_" if "fixtures" in str(p) else "cfg_") + p.name, text)
    put("fuzz_task_yaml", "escape.yaml", "task: t\noutput_type: loglikelihood\ntest_split: test\ndataset_path: json\n"
        "dataset_kwargs: {data_files: {test: ../outside.jsonl}}\ndoc_to_text: '{{text}}'\ndoc_to_target: x\n")
    put("fuzz_task_yaml", "jinja.yaml", "task: t\noutput_type: multiple_choice\ntest_split: test\ndataset_path: json\n"
        "dataset_kwargs: {data_files: {test: d.jsonl}}\n"
        "doc_to_text: \"{% for i in range(choices.text|length) %}{{ 'ABCD'[i] }}. {{ choices.text[i]|trim }}\\n{% endfor %}\"\n"
        "doc_to_target: \"{{ 'ABCD'[answerKey|int - 1] if answerKey|string in '1234' else answerKey }}\"\n"
        "doc_to_choice: \"{{ choices.label }}\"\nnum_fewshot: 1\ntraining_split: train\n"
        "dataset_kwargs: {data_files: {test: d.jsonl, train: train.jsonl}}\n")
    # Task data: the first byte picks the reader; small files in each layout.
    fx = REPO / "tests/fixtures/eval/tasks/data"
    samples = {
        "json": (fx / "arc_easy.jsonl").read_text(),
        "jsonl": (fx / "hellaswag.jsonl").read_text(),
        "csv": "question,choice0,choice1,choice2,choice3,answer\n\"Find x, y.\",0,1,2,\"a \"\"q\"\"\",1\n",
        "llm_foundry_boolq": '{"query": "Passage: P -- t.\\nQuestion: is it?", "gold": 1}\n',
        "llm_foundry_winogrande": '{"context_options": ["A beat B so A", "A beat B so B"], "continuation": "won.", "gold": 0}\n',
        "hellaswag_txt": "Roof: A man is on a roof. he\n2\nclimbs.\nsits.\nfalls.\nwaves.\n",
        "llm_adapters_arc": json.dumps([{"instruction": "Please choose the correct answer to the question: Why?\n\n"
                                         "Answer1: a Answer2: b\n\nAnswer format: answer1/answer2", "answer": "answer2"}]),
        "mmlu_csv_dir": "question,choice0,choice1,choice2,choice3,answer\nq?,0,1,2,3,2\n",
        "wikitext_raw": " \n = A = \n x @-@ y \n = = B = = \n z \n = C = \n w \n",
    }
    for i, r in enumerate(TASK_READERS):
        put("fuzz_task_data", f"{r}.bin", bytes([i]) + samples[r].encode())


# --- arch.json, latency table ---------------------------------------------------------------------
def arch_and_table_seeds():
    arch = optional(REPO / "runs/stories260k-cpu/search/arch.json")
    if arch:
        a = json.loads(arch.read_text())
        put("fuzz_arch_json", "stories260k_arch.json", compact(a))
        put("fuzz_arch_json", "stories260k_indices.json", compact({"format": a["format"], "indices": a["indices"]}))
        bad = dict(a["indices"])
        bad["arch_hidden"] = 3
        put("fuzz_arch_json", "index_out_of_range.json", compact({"format": a["format"], "indices": bad}))
    table = optional(REPO / "runs/stories260k-cpu/table.json")
    if table:
        t = json.loads(table.read_text())
        put("fuzz_latency_table", "stories260k_table.json", compact(t))
        few = dict(t)
        few["entries"] = dict(list(t["entries"].items())[:12])
        put("fuzz_latency_table", "stories260k_few_entries.json", compact(few))


# --- dictionaries -----------------------------------------------------------------------------------
def dict_entry(word):
    """A libFuzzer dictionary line: printable ASCII as is, everything else as \\xNN escapes."""
    out = ""
    for b in word if isinstance(word, bytes) else word.encode():
        c = chr(b)
        out += "\\" + c if c in '"\\' else c if 0x20 <= b < 0x7F else f"\\x{b:02X}"
    return f'"{out}"'


def put_dict(target, header, words):
    d = REPO / "fuzz" / "dict"
    d.mkdir(parents=True, exist_ok=True)
    lines = [f"# {header} (libFuzzer dictionary; written by fuzz/make_corpus.py)"]
    for w in dict.fromkeys(words):
        lines.append(dict_entry(w))
    (d / f"{target}.dict").write_text("\n".join(lines) + "\n")


def quoted(keys):
    return [f'"{k}"' for k in keys]


def task_dictionaries():
    yaml_syntax = ["- ", ": ", "{", "}", "[", "]", "'", '"', "!function ", "null", "true", "\n  "]
    keys = ["task", "include", "output_type", "multiple_choice", "loglikelihood", "loglikelihood_rolling",
            "dataset_path", "json", "csv", "dataset_kwargs", "data_files", "local_data", "reader", "path", "labels",
            "training_split", "validation_split", "test_split", "fewshot_split", "fewshot_config", "sampler",
            "first_n", "process_docs", "doc_to_text", "doc_to_target", "doc_to_choice", "process_results",
            "description", "target_delimiter", "fewshot_delimiter", "num_fewshot", "metric_list", "metric",
            "aggregation", "higher_is_better", "acc", "acc_norm", "perplexity", "word_perplexity", "bits_per_byte",
            "weighted_perplexity", "mean", "d.jsonl", "train.jsonl", "../", "/etc/passwd",
            "utils.process_docs", "utils.doc_to_text", "preprocess_wikitext.wikitext_detokenizer"] + TASK_READERS
    jinja = ["{{", "}}", "{%", "%}", "{%-", "-%}", "{#", "#}", " if ", " else ", " for ", " in ", "endfor", "endif",
             " set ", "|", "|join(' ')", "|int", "|length", "|lower", "|string", ".split(' ')", ".strip()",
             ".index(", "[:-1]", "[-1]", "loop.index0", "range(", " is not none", " not in ", "~", "//", "**"]
    put_dict("fuzz_task_yaml", "lm-eval task keys, YAML and Jinja syntax", yaml_syntax + keys + jinja)
    put_dict("fuzz_task_data", "task data: JSON syntax, CSV quoting, layout markers",
             ["{", "}", "[", "]", ":", ",", '"', '""', "\r\n", "Passage: ", "\nQuestion: ", "context_options",
              "continuation", "gold", "instruction", "answer", "Answer1: ", " Answer2: ", "\n\nAnswer format: ",
              "answer1/answer2", " = ", " = = ", "question,choice0,choice1,choice2,choice3,answer", "\xff", "\xc3"])


def dictionaries():
    json_syntax = ["{", "}", "[", "]", ":", ",", '"', "true", "false", "null", "-1", "0", "1e308", "-0.0",
                   "18446744073709551615", "9223372036854775808", "\\u0000", "\\ud800"]
    yaml_syntax = ["&a ", "*a", "<<: *a", "- ", ": ", "{", "}", "[", "]", "!!str ", "!!int ", "!!float ", "! ",
                   "'", '"', "---\n", "...\n", "|\n", ">\n", "#", "~", "null", "true", "false", ".inf", "-.inf",
                   ".nan", "0x1f", "1e308", "9223372036854775808", "\t", "\n  "]
    dtypes = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2",
              "U16", "U32", "U64"]
    put_dict("fuzz_safetensors", "safetensors header keys and dtype names",
             json_syntax + quoted(["dtype", "shape", "data_offsets", "__metadata__"] + dtypes))
    put_dict("fuzz_safetensors_index", "index keys and the names in the target's model directory",
             json_syntax + quoted(["weight_map", "metadata", "total_size"]) +
             ["../", "/", "./", "//", "up/", "root/", "loop", "inner/", "sub/", "model.safetensors",
              "model-00001-of-00002.safetensors"])
    cfg_keys = ["model_type", "llama", "mistral", "vocab_size", "hidden_size", "intermediate_size",
                "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_scaling", "rope_parameters",
                "rope_type", "type", "default", "llama3", "factor", "low_freq_factor", "high_freq_factor",
                "original_max_position_embeddings", "tie_word_embeddings", "attention_bias", "mlp_bias",
                "hidden_act", "silu", "dtype", "torch_dtype", "bos_token_id", "eos_token_id",
                "jointnas_layer_specs", "skip", "attention_scale", "format_qkv", "format_o", "format_gate_up",
                "format_down"]
    put_dict("fuzz_config", "HF config.json keys", json_syntax + quoted(cfg_keys) + ["16777216", "16777217", "1e300"])
    tok_keys = ["model", "type", "BPE", "vocab", "merges", "added_tokens", "pre_tokenizer", "Sequence",
                "pretokenizers", "ByteLevel", "Split", "pattern", "Regex", "String", "behavior", "Isolated",
                "Removed", "MergedWithPrevious", "MergedWithNext", "invert", "decoder", "post_processor",
                "TemplateProcessing", "single", "SpecialToken", "id", "content", "special", "normalizer",
                "ignore_merges", "byte_fallback", "add_prefix_space", "use_regex", "continuing_subword_prefix",
                "end_of_word_suffix", "processors", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<s>",
                "</s>", "<|endoftext|>"]
    put_dict("fuzz_tokenizer", "tokenizer.json keys, regex pieces, llama2.c and tiktoken fragments",
             json_syntax + quoted(tok_keys) +
             ["(?i:", "\\\\p{L}", "\\\\p{N}", "(?!\\\\S)", "\\\\s+", "{1,3}", "(a*)*", "\\u0120", "<0x0A>",
              b"\x00\x00\x00\x00", b"\xff\xff\xff\x7f", b"\x00\x00\x80\x7f", " 0\n", "== ", "AA== "])
    run_keys = ["model", "search_space", "budget", "latency", "memory_mib", "params", "table", "closed_loop",
                "device", "run_dir", "threads", "seed", "data", "calibration", "train", "eval", "workload", "kind",
                "decode", "prefill", "batch", "context", "tokens", "importance", "windows", "seq_len", "profile",
                "repeats", "calibrate", "search", "steps", "lora_rank", "lr_arch", "checkpoint_every",
                "entropy_weight", "penalty", "penalty_form", "lr_lora", "entropy_threshold", "stop_entropy",
                "mixing", "relaxation", "tau_end", "finetune", "bench_repeats", "max_windows", "window",
                "$SHARED/", "0.6x"]
    put_dict("fuzz_run_config", "run config YAML: syntax (anchors, aliases, tags) and keys", yaml_syntax + run_keys)
    put_dict("fuzz_run_config_check", "run config YAML: syntax (anchors, aliases, tags) and keys",
             yaml_syntax + run_keys + ["pareto", "budgets", "methods", "joint", "depth_only", "511", "512", "65536"])
    space_keys = ["search_space", "hidden", "depth", "min", "multiple_of", "layers", "searchable", "all", "heads",
                  "head_dim", "intermediate", "formats", "formats_qkv", "formats_o", "formats_gate_up",
                  "formats_down", "choices", "bf16", "w8a16", "w4a16_g128", "w8a8", "fp8_e4m3", "0.5", "1.0",
                  "128", "4096", "14336"]
    put_dict("fuzz_space_yaml", "search-space YAML: syntax and keys", yaml_syntax + space_keys)
    arch_keys = ["format", "jointnas-arch", "indices", "arch_hidden", "arch_depth"] + [
        f"layers.{l}.arch_{k}" for l in range(5)
        for k in ["kv_groups", "head_dim", "intermediate", "format_qkv", "format_o", "format_gate_up", "format_down"]]
    put_dict("fuzz_arch_json", "arch.json keys (decision names of the stories260K space)",
             json_syntax + quoted(arch_keys))
    table_keys = ["format", "jointnas-latency-table", "entries", "calibration", "ms", "p10", "p90", "repeats",
                  "scale", "per_block_ms", "constant_ms", "runs", "outliers", "meta", "decode_b1_c256",
                  "linear/m1/k64/n64/bf16", "attention/b1/q1/c257/h8/kv4/d8", "block_fixed/m1/h64/i172",
                  "head/m1/h64/v512"]
    put_dict("fuzz_latency_table", "latency table keys", json_syntax + quoted(table_keys))


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    safetensors_seeds()
    index_seeds()
    config_seeds()
    tokenizer_seeds()
    yaml_seeds()
    arch_and_table_seeds()
    task_seeds()
    dictionaries()
    task_dictionaries()
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    count = sum(1 for f in OUT.rglob("*") if f.is_file())
    print(f"[corpus] {count} seeds, {total} bytes in {OUT.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
