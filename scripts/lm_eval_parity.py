#!/usr/bin/env python3
"""Parity of `jointnas eval tasks` with lm-evaluation-harness, offline, on the local task data.

lm-eval does all the work it does in a normal run: its own task YAMLs (included from the installed
package, so prompts, process_docs, doc_to_choice, target delimiters and metrics are its own), its
request construction (_encode_pair: trailing-space move, whole-minus-context tokens), its
HFLM._loglikelihood_tokens on transformers' LlamaForCausalLM (fp32; CPU, or the GPU with
--device cuda), and its aggregation.
Only two things are replaced, because the data and the tokenizers are local:
  * dataset_path: the task YAML is re-pointed at JSONL files that this script writes from
    ../shared/data/tasks in the Hugging Face schema of each dataset (readers below, written
    independently of the C++ ones in jointnas/eval/task_readers.cpp);
  * tok_encode: HFLM's tokenizer call becomes [BOS] + the reference tokenizer (Python
    sentencepiece for ref-17m, whose tokenizer transformers 5.17 cannot convert; the run.c port of
    scripts/make_tokenizer_goldens.py for stories260K's tokenizer.bin). BOS as HF's
    add_special_tokens=True adds it.
No network: HF_DATASETS_OFFLINE / HF_HUB_OFFLINE are set and the data come from local files.

Then it runs `jointnas eval tasks --items` on the same tasks and limit, and compares per item the
log-likelihood of every choice, the argmax decisions (acc, acc_norm) and the accuracies.

  python3 scripts/lm_eval_parity.py --model ref-17m --limit 20 [--binary build-eval/tools/jointnas/jointnas]
  python3 scripts/lm_eval_parity.py --model stories260K --limit 20
  python3 scripts/lm_eval_parity.py --model ref-17m --limit 20 --golden tests/fixtures/eval/lm_eval_ref17m.json

--golden writes lm-eval's per-item log-likelihoods (the reference, not ours) for the C++ test.

Full splits on the GPU machine (scripts/lm_eval_parity_gpu.sh runs these, several lm-eval
processes side by side): --limit 0 --mmlu-limit 0 means every item; --device cuda puts HFLM's
LlamaForCausalLM on the GPU and runs `jointnas eval tasks --device cuda`, both still fp32
(our side gets --dtype float32 explicitly; neither side enables TF32). One side alone:
  ... --only lm-eval --save A.json      (lm-eval's items and results, no comparison)
  ... --only ours --save B.json         (our items, no comparison)
  ... --lm-eval-from A.json[,A2.json] --ours-from B.json --report R.json   (compare saved sides)
Requires: pip install lm-eval (0.4.13 used), torch 2.11, transformers 5.17, sentencepiece.
"""
import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

TASKS = ["boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "mmlu",
         "mmlu_5shot"]


# ---------------------------------------------------------------- local data -> HF-schema docs
def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def docs_boolq(d):
    out = []
    for r in read_jsonl(os.path.join(d, "boolq/boolq.jsonl")):
        m = re.fullmatch(r"Passage: (.*)\nQuestion: (.*)\?", r["query"], flags=re.S)
        assert m, r["query"][:80]
        out.append({"passage": m.group(1), "question": m.group(2), "label": int(r["gold"])})
    return out


def docs_piqa(d):
    rows = read_jsonl(os.path.join(d, "piqa/valid.jsonl"))
    with open(os.path.join(d, "piqa/valid-labels.lst")) as f:
        labels = [int(x) for x in f.read().split()]
    assert len(rows) == len(labels)
    return [{"goal": r["goal"], "sol1": r["sol1"], "sol2": r["sol2"], "label": y}
            for r, y in zip(rows, labels)]


def split_hellaswag_ctx(rest):
    """ctx_a / ctx_b from llama.cpp's merged ctx: ctx_b is the lowercase-initial, unfinished
    fragment after the last sentence end (HellaSwag's ActivityNet noun phrase), else empty."""
    cut = max(rest.rfind(". "), rest.rfind("? "), rest.rfind("! "))
    if cut >= 0:
        tail = rest[cut + 2:]
        if tail and "a" <= tail[0] <= "z" and tail[-1] not in ".?!":
            return rest[:cut + 1], tail
    return rest, ""


def docs_hellaswag(d):
    with open(os.path.join(d, "hellaswag/hellaswag_val_full.txt"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    assert len(lines) % 6 == 0
    out = []
    for i in range(0, len(lines), 6):
        label, rest = lines[i].split(": ", 1)
        ctx_a, ctx_b = split_hellaswag_ctx(rest)
        out.append({"activity_label": label, "ctx_a": ctx_a, "ctx_b": ctx_b,
                    "ctx": rest, "endings": lines[i + 2:i + 6], "label": lines[i + 1]})
    return out


def docs_winogrande(d):
    """llm-foundry's partial-scoring rows back to the HF schema: with p = the common prefix of the
    two contexts, sentence = p + "_ " + continuation and option_i = context_i[len(p):] give back
    lm-eval's doc_to_choice (sentence[:idx] + option) and doc_to_target exactly."""
    out = []
    for r in read_jsonl(os.path.join(d, "winogrande/winogrande.jsonl")):
        a, b = r["context_options"]
        p = os.path.commonprefix([a, b])
        assert "_" not in p
        out.append({"sentence": p + "_ " + r["continuation"], "option1": a[len(p):],
                    "option2": b[len(p):], "answer": str(int(r["gold"]) + 1)})
    return out


def docs_arc(d, name):
    with open(os.path.join(d, f"arc/{name}.test.json"), encoding="utf-8") as f:
        rows = json.load(f)
    pre = "Please choose the correct answer to the question: "
    out = []
    for r in rows:
        ins = r["instruction"]
        assert ins.startswith(pre)
        fmt_at = ins.rindex("\n\nAnswer format: ")
        n = ins[fmt_at:].count("/") + 1
        a1 = ins.rindex("\n\nAnswer1: ", 0, fmt_at)
        body = ins[a1 + len("\n\nAnswer1: "):fmt_at]
        choices = []
        for k in range(2, n + 1):
            j = body.index(f" Answer{k}: ")
            choices.append(body[:j])
            body = body[j + len(f" Answer{k}: "):]
        choices.append(body)
        letters = "ABCDE"[:n]
        k = int(r["answer"][len("answer"):])
        out.append({"question": ins[len(pre):a1], "choices": {"text": choices, "label": list(letters)},
                    "answerKey": letters[k - 1]})
    return out


def docs_mmlu(d, split):
    out = {}
    folder = os.path.join(d, "mmlu", split)
    for name in sorted(os.listdir(folder)):
        if not name.endswith(f"_{split}.csv"):
            continue
        subject = name[:-len(f"_{split}.csv")]
        with open(os.path.join(folder, name), encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        out[subject] = [{"question": r["question"], "subject": subject,
                         "choices": [r[f"choice{i}"] for i in range(4)], "answer": int(r["answer"])}
                        for r in rows]
    return out


# ---------------------------------------------------------------- lm-eval task files
def lm_eval_tasks_dir():
    import lm_eval
    return os.path.join(os.path.dirname(lm_eval.__file__), "tasks")


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def local_yaml(path, include, task, files, extra=""):
    """A task file that includes lm-eval's own and only re-points the dataset at local JSONL."""
    splits = "\n".join(f"    {k}: {v}" for k, v in files.items())
    with open(path, "w") as f:
        f.write(f"include: {include}\ntask: {task}\ntag: []\ndataset_path: json\ndataset_name: null\n"
                f"dataset_kwargs:\n  data_files:\n{splits}\n{extra}")


def build_local_tasks(data_dir, work, tasks):
    """Returns {our task name: [lm-eval task names]} and writes the data + YAMLs under `work`."""
    t = lm_eval_tasks_dir()
    names = {}
    simple = {
        "boolq": ("super_glue/boolq/default.yaml", docs_boolq, "validation"),
        "piqa": ("piqa/piqa.yaml", docs_piqa, "validation"),
        "hellaswag": ("hellaswag/hellaswag.yaml", docs_hellaswag, "validation"),
        "winogrande": ("winogrande/default.yaml", docs_winogrande, "validation"),
        "arc_easy": ("arc/arc_easy.yaml", lambda d: docs_arc(d, "ARC-Easy"), "test"),
        "arc_challenge": ("arc/arc_easy.yaml", lambda d: docs_arc(d, "ARC-Challenge"), "test"),
    }
    for task in tasks:
        if task in simple:
            inc, reader, split = simple[task]
            data = os.path.join(work, f"{task}.jsonl")
            write_jsonl(data, reader(data_dir))
            # The included file's other splits would point at missing files: null them.
            extra = "".join(f"{s}_split: null\n" for s in ["training", "validation", "test"] if s != split)
            extra += f"{split}_split: {split}\n"
            local_yaml(os.path.join(work, f"local_{task}.yaml"), os.path.join(t, inc),
                       f"local_{task}", {split: data}, extra)
            names[task] = [f"local_{task}"]
    if any(x.startswith("mmlu") for x in tasks):
        test, dev = docs_mmlu(data_dir, "test"), docs_mmlu(data_dir, "dev")
        subs = []
        for subject in test:
            tp, dp = os.path.join(work, f"mmlu_{subject}_test.jsonl"), os.path.join(work, f"mmlu_{subject}_dev.jsonl")
            write_jsonl(tp, test[subject])
            write_jsonl(dp, dev[subject])
            desc = json.dumps(f"The following are multiple choice questions (with answers) about "
                              f"{' '.join(subject.split('_'))}.\n\n")
            local_yaml(os.path.join(work, f"local_mmlu_{subject}.yaml"),
                       os.path.join(t, "mmlu/default/_default_template_yaml"), f"local_mmlu_{subject}",
                       {"test": tp, "dev": dp}, f"description: {desc}\n")
            subs.append(f"local_mmlu_{subject}")
        for task in tasks:
            if task.startswith("mmlu"):
                names[task] = subs
    return names


# ---------------------------------------------------------------- the model lm-eval scores
def llama2c_segment_encoder(pieces, scores):
    """run.c's encode (make_tokenizer_goldens.llama2c_encode: dummy " " prefix, then greedy
    highest-score merges, leftmost on ties) computed per space-led segment and cached. Exact, not
    an approximation: no piece holds a space after its first byte (asserted), so no merge can join
    a token that ends one segment with the " "-led token that starts the next; merges inside
    different segments then never interact, and the global greedy order restricted to one segment
    is that segment's own greedy order. The reference is quadratic in the text length (seconds
    per 5-shot MMLU prompt); this makes the full splits affordable."""
    import functools
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_tokenizer_goldens import llama2c_encode_bytes, llama2c_lookup
    assert not any(b" " in p[1:] for p in pieces), "a piece with an inner space: segmenting is not exact"
    lookup = llama2c_lookup(pieces)

    @functools.lru_cache(maxsize=1 << 20)
    def segment(raw):
        return tuple(llama2c_encode_bytes(pieces, scores, lookup, raw, []))

    def encode(text):
        raw = text.encode("utf-8")
        if not raw:
            return []
        out = []
        for seg in re.split(rb"(?= )", b" " + raw):
            if seg:
                out.extend(segment(seg))
        return out
    return encode


def make_lm(model_name, shared, batch, device="cpu"):
    from lm_eval.models.huggingface import HFLM
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    if model_name == "ref-17m":
        import sentencepiece as spm
        model_dir = os.path.join(shared, "models/ref-17m")
        sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
        encode = sp.encode
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from make_tokenizer_goldens import read_llama2c
        model_dir = os.environ.get("STORIES_HF_DIR", "")
        assert model_dir and os.path.isdir(model_dir), \
            "set STORIES_HF_DIR to `jointnas convert` output of stories260K.bin"
        pieces, scores = read_llama2c(os.path.join(shared, "models/stories260K/tok512.bin"), 512)[:2]
        encode = llama2c_segment_encoder(pieces, scores)
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval().to(device)
    bos, eos = model.config.bos_token_id, model.config.eos_token_id
    # HFLM wants a transformers tokenizer object for its bookkeeping (pad / BOS / EOS ids); the
    # text -> ids call itself is tok_encode below.
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    stub = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")),
                                   bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    assert (bos, eos) == (1, 2)

    class RefTokenizerHFLM(HFLM):
        def tok_encode(self, string, add_special_tokens=None, left_truncate_len=None, **kw):
            ids = ([bos] if add_special_tokens in (None, True) else []) + list(encode(string))
            return ids[-left_truncate_len:] if left_truncate_len else ids

    lm = RefTokenizerHFLM(pretrained=model, tokenizer=stub, batch_size=batch)
    lm.vocab_size = model.config.vocab_size
    return lm


def run_lm_eval(lm, names, limit, num_fewshot, progress=None):
    """One simple_evaluate per lm-eval task (MMLU: per subject, the same requests as one call with
    all subjects), so that `progress(task, entry)` can save what is done so far."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager
    tm = TaskManager(include_path=names["__work"], include_defaults=False)
    out = {}
    for task, lm_tasks in names.items():
        if task == "__work":
            continue
        shots = 5 if task == "mmlu_5shot" else 0
        if num_fewshot is not None and task.startswith("mmlu"):
            shots = num_fewshot
        entry = {"items": [], "results": {}, "partial": True}
        for t in lm_tasks:  # our item order: subjects sorted by name, docs in file order
            res = simple_evaluate(model=lm, tasks=[t], task_manager=tm, limit=limit or None,
                                  num_fewshot=shots, log_samples=True, bootstrap_iters=0)
            for s in sorted(res["samples"][t], key=lambda s: s["doc_id"]):
                entry["items"].append({
                    "subtask": t.replace("local_mmlu_", "") if task.startswith("mmlu") else "",
                    "lls": [float(r[0][0]) for r in s["resps"]],
                    "greedy": [bool(r[0][1]) for r in s["resps"]],
                    "acc": s.get("acc"), "acc_norm": s.get("acc_norm")})
            entry["results"][t] = res["results"][t]
            if progress and t != lm_tasks[-1]:
                progress(task, entry)
        entry["partial"] = False
        out[task] = entry
    return out


def run_ours(binary, model_path, tasks, limit, data_dir, batch, device="cpu"):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    cmd = [binary, "eval", "tasks", "-m", model_path, "--tasks", ",".join(tasks), "--limit", str(limit),
           "--items", "--out", out, "--data-dir", data_dir, "--batch", str(batch),
           "--device", device, "--dtype", "float32", "--bootstrap-iters", "0"]
    subprocess.run(cmd, check=True)
    with open(out) as f:
        return {r["task"]: r for r in json.load(f)["results"]}


def load_sides(paths, key):
    """Merge the per-task entries of files written by --only (comma-separated paths)."""
    out = {}
    for path in paths.split(","):
        with open(path) as f:
            out.update(json.load(f)[key])
    return out


def compare(task, ours, theirs, partial=False):
    mine = ours["items"]
    if partial:  # lm-eval stopped early: compare the subjects it finished
        assert len(theirs) <= len(mine), task
        mine = mine[:len(theirs)]
        assert all(o.get("subtask", "") == t["subtask"] for o, t in zip(mine, theirs)), task
    assert len(mine) == len(theirs), (task, len(mine), len(theirs))
    max_diff, max_abs, flips, flips_norm, n_tok = 0.0, 0.0, 0, 0, 0
    acc_o = acc_t = norm_o = norm_t = 0.0
    has_norm = all(t.get("acc_norm") is not None for t in theirs)
    for o, t in zip(mine, theirs):
        assert len(o["lls"]) == len(t["lls"]), task
        for a, b, c in zip(o["lls"], t["lls"], o["cont_tokens"]):
            max_diff = max(max_diff, abs(a - b) / c)  # per continuation token
            max_abs = max(max_abs, abs(a - b))
            n_tok = max(n_tok, c)
        pred_t = max(range(len(t["lls"])), key=lambda i: (t["lls"][i], -i))
        flips += o["pred"] != pred_t
        acc_o += o["pred"] == o["gold"]
        acc_t += t["acc"]
        if has_norm:
            norm_o += o["pred_norm"] == o["gold"]
            norm_t += t["acc_norm"]
            flips_norm += (o["pred_norm"] == o["gold"]) != bool(t["acc_norm"])
    n = len(theirs)
    row = {"n": n, "max_abs_ll_diff": max_abs, "max_abs_ll_diff_per_token": max_diff,
           "decision_flips": flips, "acc_norm_flips": flips_norm,
           "acc_ours": acc_o / n, "acc_lm_eval": acc_t / n}
    if has_norm:
        row.update({"acc_norm_ours": norm_o / n, "acc_norm_lm_eval": norm_t / n})
    if partial:
        row["partial_of"] = len(ours["items"])
    norm = (f" | acc_norm ours {norm_o / n:.4f} lm-eval {norm_t / n:.4f}" if has_norm else "")
    print(f"{task:14s} n {n:5d} | max |dll| {max_abs:.2e} ({max_diff:.2e}/token) | pred flips {flips} | "
          f"acc_norm flips {flips_norm} | acc ours {acc_o / n:.4f} lm-eval {acc_t / n:.4f}{norm}"
          + (f" | PARTIAL: {n} of {len(ours['items'])} items" if partial else ""), flush=True)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["ref-17m", "stories260K"], default="ref-17m")
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--limit", type=int, default=20, help="per task; 0 = the full split")
    ap.add_argument("--mmlu-limit", type=int, default=2, help="per subject; 0 = all")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--binary", default="build-eval/tools/jointnas/jointnas")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="where both sides run (fp32 either way)")
    ap.add_argument("--only", choices=["lm-eval", "ours"], default="",
                    help="run this side alone and write it to --save, no comparison")
    ap.add_argument("--save", default="")
    ap.add_argument("--lm-eval-from", default="", help="lm-eval side from --only files (a,b,...)")
    ap.add_argument("--ours-from", default="", help="our side from --only files (a,b,...)")
    ap.add_argument("--golden", default="")
    ap.add_argument("--report", default="")
    args = ap.parse_args()
    assert not args.only or args.save, "--only needs --save"
    if args.device == "cpu":
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    tasks = args.tasks.split(",")
    data_dir = os.path.join(args.shared, "data/tasks")
    model_path = (os.path.join(args.shared, "models/ref-17m") if args.model == "ref-17m"
                  else os.environ.get("STORIES_HF_DIR", ""))
    lim = {t: args.mmlu_limit if t.startswith("mmlu") else args.limit for t in tasks}
    meta = {"model": args.model, "limit": args.limit, "mmlu_limit": args.mmlu_limit,
            "device": args.device, "dtype": "float32"}
    if args.device == "cuda":
        meta["card"] = torch.cuda.get_device_name(0)

    def save(key, side):
        with open(args.save + ".tmp", "w") as f:
            json.dump({**meta, key: side}, f)
        os.replace(args.save + ".tmp", args.save)

    ref = {}
    if args.lm_eval_from:
        ref = load_sides(args.lm_eval_from, "lm_eval")
    elif args.only != "ours":
        def progress(task, entry):
            if args.only:
                save("lm_eval", {**ref, task: entry})
        with tempfile.TemporaryDirectory() as work:
            names = build_local_tasks(data_dir, work, tasks)
            names["__work"] = work
            lm = make_lm(args.model, args.shared, args.batch, args.device)
            for task in tasks:
                try:
                    ref.update(run_lm_eval(lm, {task: names[task], "__work": work}, lim[task], None,
                                           progress))
                except Exception as e:  # e.g. HFLM's assert len(continuation_enc) <= max_length
                    if not args.only:
                        raise
                    import traceback
                    where = traceback.extract_tb(e.__traceback__)[-1]
                    ref[task] = {"error": f"{type(e).__name__}: {e} at {os.path.basename(where.filename)}:"
                                          f"{where.lineno} `{where.line}`"}
                    print(f"{task}: lm-eval failed: {ref[task]['error']}", flush=True)
                if args.only:
                    save("lm_eval", ref)
    if args.only == "lm-eval":
        return

    mine = {}
    if args.ours_from:
        mine = load_sides(args.ours_from, "ours")
    else:
        for task in tasks:
            try:
                # configs/tasks/*.yaml name their data relative to ../shared/data (tasks/...).
                mine[task] = run_ours(args.binary, model_path, [task], lim[task], os.path.dirname(data_dir),
                                      args.batch, args.device)[task]
            except subprocess.CalledProcessError as e:
                if not args.only:
                    raise
                mine[task] = {"error": f"jointnas exited with {e.returncode} (its stderr above)"}
            if args.only:
                save("ours", mine)
    if args.only == "ours":
        return

    report = {**meta, "tasks": {}}
    golden = {"model": args.model, "lm_eval": "0.4.13", "tasks": {}}
    for task in tasks:
        if task not in ref or task not in mine or "error" in ref[task] or "error" in mine[task]:
            err = {"lm_eval": ref.get(task, {}).get("error", "missing" if task not in ref else ""),
                   "ours": mine.get(task, {}).get("error", "missing" if task not in mine else "")}
            report["tasks"][task] = {"error": err}
            print(f"{task:14s} not compared: {err}", flush=True)
            continue
        theirs = ref[task]["items"]
        report["tasks"][task] = compare(task, mine[task], theirs, ref[task].get("partial", False))
        golden["tasks"][task] = {"limit": lim[task], "items": [
            {"subtask": t["subtask"], "lls": t["lls"]} for t in theirs]}
    if args.golden:
        with open(args.golden, "w") as f:
            json.dump(golden, f, indent=None)
            f.write("\n")
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
