#!/usr/bin/env python3
"""Parity of `jointnas eval tasks` with lm-evaluation-harness on lm-eval task YAMLs: every output
type (multiple_choice, loglikelihood, loglikelihood_rolling), the model's numbers per document and
the aggregated metrics with their standard errors.

lm-eval (0.4.13, pip) runs its own ConfigurableTask on its own YAML; the only changes are the data
location (`dataset_path: json` + absolute `data_files`) and, as in scripts/lm_eval_parity.py, the
tokenizer call (HFLM.tok_encode = [BOS] + the reference tokenizer, since transformers cannot load
ref-17m's tokenizer). The model is transformers' LlamaForCausalLM in fp32 on the CPU (or the GPU
with --device cuda). jointnas runs `jointnas eval tasks --items` on the same files.

Two kinds of task:
  * a task file whose data are JSON Lines in the dataset's HF schema (`dataset_kwargs.data_files`):
    both sides read the same files (the hand-made fixtures of tests/fixtures/eval/tasks, or real
    copies of a dataset placed under --data-dir);
  * wikitext: configs/tasks/wikitext.yaml reads ../shared's wiki.test.raw (local_data); the lm-eval
    side gets the articles as wikitext_document_level builds them (this script's own splitter, a
    port of lm-eval 0.3's datasets/wikitext/wikitext.py) as JSON Lines.
The paper tasks on ../shared's layouts are compared by scripts/lm_eval_parity.py.

  python3 scripts/lm_eval_task_parity.py --task-dir tests/fixtures/eval/tasks \\
      --data-dir tests/fixtures/eval/tasks --tasks openbookqa,copa,social_iqa,lambada_openai
  python3 scripts/lm_eval_task_parity.py --tasks wikitext            # ../shared's wiki.test.raw

Requires: pip install lm-eval==0.4.13 transformers==5.17.0 sentencepiece numpy accelerate (torch 2.11).
One side at a time: --save-lm-eval FILE runs lm-eval only; --lm-eval-from FILE compares with it.
Checks: accuracies equal (per document and aggregated), perplexities within 1e-4 relative,
standard errors within 1e-4 relative where lm-eval reports one.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
HOOKS = {"copa": "super_glue/copa/utils.py", "hellaswag": "hellaswag/utils.py",
         "winogrande": "winogrande/preprocess_winogrande.py", "wikitext": "wikitext/preprocess_wikitext.py"}
PPL_REL_TOL = 1e-4


def wikitext_pages(path):
    """wikitext_document_level's articles (lm-eval 0.3 datasets/wikitext/wikitext.py)."""
    with open(path, encoding="utf-8") as f:
        data = f.read().split("\n")
    out, ret = [], []
    for line in data:
        rline = line.replace("= = =", "===").replace("= =", "==").strip()
        if rline.startswith("= ") and rline.strip().endswith(" ="):
            page = "\n".join(ret)
            if page.strip():
                out.append({"page": page})
            ret = []
        ret.append(line)
    out.append({"page": "\n".join(ret)})
    return out


def lm_eval_yaml(task_file, data_dir, work, name):
    """The task file for lm-eval: data_files made absolute (under data_dir), in a folder of its own
    with the hook module its `!function`s name (from the installed lm-eval)."""
    import lm_eval
    tasks_dir = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    with open(task_file) as f:
        text = f.read()
    text = re.sub(r"^(\s+\w+: )(\S+\.jsonl?)\s*$", lambda m: m.group(1) + os.path.abspath(os.path.join(data_dir, m.group(2))),
                  text, flags=re.M)
    # lm-eval reads every split the YAML names (its few-shot pool too): unset those without files.
    m = re.search(r"data_files:\n((?:\s{4,}\w+: .*\n?)+)", text)
    have = set(re.findall(r"^\s{4,}(\w+): ", m.group(1), flags=re.M)) if m else set()
    text = re.sub(r"^(training|validation|test)_split:\s*(\S+)\s*$",
                  lambda x: x.group(0) if x.group(2) in have or x.group(2) == "null" else f"{x.group(1)}_split: null",
                  text, flags=re.M)
    with open(os.path.join(d, name + ".yaml"), "w") as f:
        f.write(text)
    family = name.split("_")[0]
    if family in HOOKS:
        shutil.copy(os.path.join(tasks_dir, HOOKS[family]), d)
    m = re.search(r"^task:\s*(\S+)", text, flags=re.M)
    return m.group(1)


def wikitext_setup(shared, work):
    """lm-eval's wikitext.yaml re-pointed at the articles of ../shared's wiki.test.raw."""
    import lm_eval
    tasks_dir = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")
    d = os.path.join(work, "wikitext")
    os.makedirs(d, exist_ok=True)
    pages = os.path.join(d, "test.jsonl")
    with open(pages, "w", encoding="utf-8") as f:
        for p in wikitext_pages(os.path.join(shared, "data/text/wikitext2/wiki.test.raw")):
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    with open(os.path.join(tasks_dir, "wikitext/wikitext.yaml")) as f:
        text = f.read()
    text = re.sub(r"^dataset_path:.*$", "dataset_path: json", text, flags=re.M)
    text = re.sub(r"^dataset_name:.*$", "dataset_name: null", text, flags=re.M)
    text = re.sub(r"^(training|validation)_split:.*$", r"\1_split: null", text, flags=re.M)
    text += f"dataset_kwargs:\n  data_files:\n    test: {pages}\n"
    with open(os.path.join(d, "wikitext.yaml"), "w") as f:
        f.write(text)
    shutil.copy(os.path.join(tasks_dir, HOOKS["wikitext"]), d)
    return "wikitext"


def run_lm_eval(lm, work, names, limit, bootstrap_iters):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager
    tm = TaskManager(include_path=work, include_defaults=False)
    out = {}
    for ours, name in names.items():
        res = simple_evaluate(model=lm, tasks=[name], task_manager=tm, limit=limit or None, log_samples=True,
                              bootstrap_iters=bootstrap_iters)
        samples = sorted(res["samples"][name], key=lambda s: s["doc_id"])
        items = []
        for s in samples:
            resps = s["resps"]
            if isinstance(resps[0][0], (list, tuple)):  # loglikelihood / multiple_choice: (ll, greedy)
                items.append({"lls": [float(r[0][0]) for r in resps], "greedy": [bool(r[0][1]) for r in resps]})
            else:  # loglikelihood_rolling: the sum
                items.append({"lls": [float(resps[0][0])]})
            for k in ("acc", "acc_norm", "perplexity"):
                if k in s:
                    items[-1][k] = s[k]
        out[ours] = {"items": items, "results": {k.split(",")[0]: v for k, v in res["results"][name].items()
                                                  if k.endswith(",none")}}
    return out


def run_ours(binary, model, task_file, data_dir, limit, batch, device, bootstrap_iters):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    cmd = [binary, "eval", "tasks", "-m", model, "--tasks", task_file, "--data-dir", data_dir, "--limit", str(limit),
           "--items", "--out", out, "--batch", str(batch), "--device", device, "--dtype", "float32",
           "--bootstrap-iters", str(bootstrap_iters)]
    subprocess.run(cmd, check=True)
    with open(out) as f:
        return json.load(f)["results"][0]


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def compare(task, ours, theirs):
    """Per document: every log-likelihood (abs diff per continuation token) and decision; then the
    aggregated metrics: accuracies exactly, perplexities and standard errors within 1e-4."""
    mine, ref = ours["items"], theirs["items"]
    assert len(mine) == len(ref), (task, len(mine), len(ref))
    max_tok = 0.0
    flips = 0
    for o, t in zip(mine, ref):
        assert len(o["lls"]) == len(t["lls"]), task
        for a, b, c in zip(o["lls"], t["lls"], o["cont_tokens"]):
            max_tok = max(max_tok, abs(a - b) / max(c, 1))
        if "pred" in o:
            pred_t = max(range(len(t["lls"])), key=lambda i: (t["lls"][i], -i))
            flips += o["pred"] != pred_t
        if "greedy" in o and "greedy" in t and o.get("greedy") != t.get("greedy"):
            flips += 1
    row = {"n": len(ref), "max_abs_ll_diff_per_token": max_tok, "decision_flips": flips, "metrics": {}}
    ok = flips == 0
    for m in ours["metrics"]:
        a, b = ours.get(m), theirs["results"].get(m)
        se_a, se_b = ours.get(m + "_stderr"), theirs["results"].get(m + "_stderr")
        if m.startswith("acc"):
            same = a is not None and b is not None and round(a * len(ref)) == round(b * len(ref))
        else:
            same = a is not None and b is not None and rel(a, b) <= PPL_REL_TOL
        se_same = (se_a is None and se_b in (None, "N/A")) or (
            isinstance(se_a, float) and isinstance(se_b, float) and rel(se_a, se_b) <= PPL_REL_TOL)
        row["metrics"][m] = {"jointnas": a, "lm_eval": b, "stderr_jointnas": se_a, "stderr_lm_eval": se_b,
                             "equal": same, "stderr_equal": se_same}
        ok = ok and same and se_same
        print(f"{task:16s} {m:16s} jointnas {a!s:>22} lm-eval {b!s:>22} | stderr {se_a!s:>22} {se_b!s:>22}"
              f" | {'ok' if same and se_same else 'DIFFERENT'}", flush=True)
    print(f"{task:16s} n {len(ref)} | max |dll|/token {max_tok:.2e} | decision flips {flips}", flush=True)
    row["ok"] = ok
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["ref-17m"], default="ref-17m")
    ap.add_argument("--shared", default=os.path.join(REPO, "..", "shared"))
    ap.add_argument("--tasks", default="openbookqa,copa,social_iqa,lambada_openai")
    ap.add_argument("--task-dir", default=os.path.join(REPO, "configs/tasks"))
    ap.add_argument("--data-dir", default="", help="default: <shared>/data")
    ap.add_argument("--binary", default=os.path.join(REPO, "build/tools/jointnas/jointnas"))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--bootstrap-iters", type=int, default=100000)
    ap.add_argument("--report", default="")
    ap.add_argument("--save-lm-eval", default="", help="run lm-eval only and save its side here")
    ap.add_argument("--lm-eval-from", default="", help="lm-eval's side from a --save-lm-eval file")
    args = ap.parse_args()
    data_dir = args.data_dir or os.path.join(args.shared, "data")
    import torch
    if args.device == "cpu":
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    from lm_eval_parity import make_lm
    model_path = os.path.join(args.shared, "models/ref-17m")
    tasks = args.tasks.split(",")
    report = {"model": args.model, "device": args.device, "limit": args.limit, "tasks": {}}
    if args.lm_eval_from:
        with open(args.lm_eval_from) as f:
            theirs = json.load(f)["lm_eval"]
    else:
        with tempfile.TemporaryDirectory() as work:
            names = {}
            for t in tasks:
                if t == "wikitext" and not args.data_dir:
                    names[t] = wikitext_setup(args.shared, work)
                else:
                    names[t] = lm_eval_yaml(os.path.join(args.task_dir, t + ".yaml"), data_dir, work, t)
            lm = make_lm(args.model, args.shared, args.batch, args.device)
            theirs = run_lm_eval(lm, work, names, args.limit, args.bootstrap_iters)
        if args.save_lm_eval:
            with open(args.save_lm_eval, "w") as f:
                json.dump({"limit": args.limit, "bootstrap_iters": args.bootstrap_iters, "lm_eval": theirs}, f)
            return
    all_ok = True
    for t in tasks:
        ours = run_ours(args.binary, model_path, os.path.join(args.task_dir, t + ".yaml"), data_dir, args.limit,
                        args.batch, args.device, args.bootstrap_iters)
        row = compare(t, ours, theirs[t])
        report["tasks"][t] = row
        all_ok = all_ok and row["ok"]
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    print("PARITY OK" if all_ok else "PARITY FAILED", flush=True)
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
