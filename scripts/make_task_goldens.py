#!/usr/bin/env python3
"""Goldens for jointnas's lm-eval task machinery, computed by lm-evaluation-harness's own code
(lm-eval 0.4.13 from PyPI) and Python's random module:

  * random.Random(seed) streams: random(), getrandbits, sample (lm-eval's default few-shot sampler
    draws Random(1234).sample), choices (its bootstrap);
  * lm_eval.api.metrics: mean_stderr, bootstrap_stderr(perplexity, ...) (DISABLE_MULTIPROC path and
    the pool path draw the same chunks), perplexity, weighted_perplexity, bits_per_byte,
    pooled_sample_stderr;
  * lm_eval.utils.get_rolling_token_windows + make_disjoint_window (context_len 1);
  * the standard tasks' hooks: hellaswag utils.preprocess / process_docs, wikitext
    preprocess_wikitext.wikitext_detokenizer / process_results, copa utils, winogrande
    preprocess_winogrande;
  * ConfigurableTask request construction for lm-eval task YAMLs on small hand-made documents in
    each dataset's schema (the data conventions of docs/eval.md: letter answers, 1-based labels,
    delimiter spaces, lowercasing and value mapping), via TaskManager + construct_requests.

  python3 scripts/make_task_goldens.py     # writes tests/fixtures/eval/task_goldens.json

Needs lm-eval==0.4.13 (pip; see scripts/lm_eval_parity.py for the environment). No network.
"""
import json
import math
import os
import random
import sys
import tempfile

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["DISABLE_MULTIPROC"] = "1"

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "eval", "task_goldens.json")
FIX = os.path.join(HERE, "..", "tests", "fixtures", "eval", "tasks")


def random_goldens():
    out = {}
    r = random.Random(1234)
    out["random_1234"] = [r.random() for _ in range(5)]
    r = random.Random(0)
    out["getrandbits_0"] = [r.getrandbits(k) for k in (1, 7, 32, 33, 64)]
    out["sample"] = []
    for seed, n, k, reps in [(1234, 10, 3, 4), (1234, 500, 5, 3), (1234, 4000, 25, 2), (7, 30, 8, 2)]:
        r = random.Random(seed)
        out["sample"].append({"seed": seed, "n": n, "k": k, "draws": [r.sample(range(n), k) for _ in range(reps)]})
    r = random.Random(3)
    out["choices"] = {"seed": 3, "n": 17, "k": 40, "draw": r.choices(range(17), k=40)}
    return out


def metric_goldens():
    from lm_eval.api import metrics as M
    rng = random.Random(42)
    lls = [-rng.uniform(0.1, 9.0) for _ in range(37)]
    acc = [float(rng.random() < 0.4) for _ in range(53)]
    pairs = [(-rng.uniform(10, 500), rng.randint(5, 300)) for _ in range(11)]
    return {
        "lls": lls, "acc": acc, "pairs": pairs,
        "mean": M.mean(acc), "mean_stderr": M.mean_stderr(acc),
        "perplexity": M.perplexity(lls),
        "perplexity_stderr_2000": M.bootstrap_stderr(M.perplexity, lls, iters=2000),
        "perplexity_stderr_100000_first8": M.bootstrap_stderr(M.perplexity, lls[:8], iters=100000),
        "weighted_perplexity": M.weighted_perplexity(pairs),
        "bits_per_byte": M.bits_per_byte(pairs),
        "pooled": {"stderrs": [0.05, 0.1, 0.02], "sizes": [100, 10, 1000],
                   "value": float(M.pooled_sample_stderr([0.05, 0.1, 0.02], [100, 10, 1000]))},
    }


def rolling_goldens():
    from lm_eval import utils
    out = []
    for n, max_len in [(1, 4), (4, 4), (5, 4), (13, 4), (9, 3), (20, 7), (3, 1)]:
        toks = list(range(100, 100 + n))
        wins = [list(map(list, utils.make_disjoint_window(w)))
                for w in utils.get_rolling_token_windows(token_list=toks, prefix_token=1, max_seq_len=max_len,
                                                         context_len=1)]
        out.append({"n": n, "max_len": max_len, "windows": wins})
    return out


def hook_goldens():
    import importlib.util
    import lm_eval
    tasks = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")

    def load(rel):
        spec = importlib.util.spec_from_file_location(rel.replace("/", "_"), os.path.join(tasks, rel))
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        return m

    hs = load("hellaswag/utils.py")
    wk = load("wikitext/preprocess_wikitext.py")
    texts = ["  A man [title] is on a roof. [header] He  climbs [step] up.  ",
             "Roof shingle removal: a man is sitting [on] a roof.", "x  y   z", "[a][b]c"]
    with open(os.path.join(HERE, "..", "..", "shared", "data", "text", "wikitext2", "wiki.test.raw"),
              encoding="utf-8") as f:
        raw = f.read()
    page = raw[:6000]
    extra = ' = = Heading = = \n " quoted  text " ( a b ) [ c ] { d } 3 @,@ 000 4 @.@ 5 x @-@ y 10 \u00b0 C N \'s it \' s '
    return {
        "hellaswag_preprocess": [{"in": t, "out": hs.preprocess(t)} for t in texts],
        "wikitext_detokenizer": [{"in": p, "out": wk.wikitext_detokenizer({"page": p})} for p in (page, extra)],
        "wikitext_process_results": [{"page": p, "ll": -123.5, "out": wk.process_results({"page": p}, [-123.5])}
                                     for p in (page, extra, " a\n\n b ")],
    }


HOOKS = {"copa": "super_glue/copa/utils.py", "hellaswag": "hellaswag/utils.py",
         "winogrande": "winogrande/preprocess_winogrande.py", "wikitext": "wikitext/preprocess_wikitext.py"}


def request_goldens():
    """construct_requests of lm-eval's own YAMLs (tests/fixtures/eval/tasks/*.yaml) on the hand-made
    documents there (data/), via lm-eval's TaskManager. Each YAML goes into a folder of its own
    with the Python hook module it names, copied from the installed lm-eval (its `!function`s
    resolve beside the YAML); data_files paths are relative to the fixtures folder, which is the
    working directory here and --data-dir on the jointnas side."""
    import shutil
    import lm_eval
    from lm_eval.tasks import TaskManager
    tasks_dir = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")
    out = {}
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        names = sorted(n[:-5] for n in os.listdir(FIX) if n.endswith(".yaml"))
        for name in names:
            os.makedirs(os.path.join(tmp, name))
            shutil.copy(os.path.join(FIX, name + ".yaml"), os.path.join(tmp, name, name + ".yaml"))
            if name in HOOKS:
                shutil.copy(os.path.join(tasks_dir, HOOKS[name]), os.path.join(tmp, name, os.path.basename(HOOKS[name])))
        os.chdir(FIX)
        try:
            tm = TaskManager(include_path=tmp, include_defaults=False)
            for name in names:
                with open(os.path.join(FIX, name + ".yaml")) as f:
                    task_name = [l.split(":", 1)[1].strip() for l in f if l.startswith("task:")][0]
                task = tm.load_task_or_group([task_name])[task_name]
                task.set_fewshot_seed(1234)
                items = []
                for i, doc in enumerate(task.eval_docs):
                    ctx = task.fewshot_context(doc, task.config.num_fewshot or 0)
                    inst = task.construct_requests(doc, ctx, metadata=(task_name, i, 0))
                    inst = inst if isinstance(inst, list) else [inst]
                    item = {"args": [list(x.args) for x in inst]}
                    if task.OUTPUT_TYPE == "multiple_choice":
                        # acc when choice k has the highest log-likelihood, for each k: 1 where
                        # lm-eval's gold is (all 0 when its gold is out of range, -100)
                        n = len(inst)
                        item["acc_by_pred"] = [task.process_results(doc, [(0.0 if j == k else -1.0, False)
                                                                          for j in range(n)])["acc"] for k in range(n)]
                        item["choices"] = task.doc_to_choice(doc)
                    items.append(item)
                out[name] = {"task": task_name, "output_type": task.OUTPUT_TYPE, "items": items}
        finally:
            os.chdir(cwd)
    return out


def main():
    g = {"lm_eval": __import__("lm_eval").__version__, "python": sys.version.split()[0]}
    g["random"] = random_goldens()
    g["metrics"] = metric_goldens()
    g["rolling"] = rolling_goldens()
    g["hooks"] = hook_goldens()
    g["requests"] = request_goldens()
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(g, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("->", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
