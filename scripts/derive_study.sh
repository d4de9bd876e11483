#!/usr/bin/env bash
# Issue 22 study on stories260K, CPU decode at context 256, batch 1, one thread: at each budget, the
# DNAS search, depth only, the exact derivation and the portfolio, each finetuned the same way and
# evaluated on held-out text (docs/search.md "Issue 22"). Usage:
#   OUT=runs/issue22 BUDGETS="0.4 0.5 0.6 0.7 0.8 0.95" STEPS=100 bash scripts/derive_study.sh
set -euo pipefail
J=${J:-build/tools/jointnas/jointnas}
SHARED=${SHARED:-../shared}
M=${M:-$SHARED/models/stories260K/stories260K.bin}
TR=${TR:-$SHARED/data/text/tinystories/tinystories_train_head.txt}
VA=${VA:-$SHARED/data/text/tinystories/tinystories_val_head.txt}
SP=${SP:-configs/spaces/stories260k.yaml}
OUT=${OUT:-runs/issue22}
BUDGETS=${BUDGETS:-"0.4 0.5 0.6 0.7 0.8 0.95"}
STEPS=${STEPS:-100}           # finetune steps of every point
SEEDS=${SEEDS:-"0"}           # DNAS seeds
export OMP_NUM_THREADS=1
T="--threads 1"
W="--workload decode --context 256 --batch 1"
mkdir -p "$OUT"
P=$OUT/permuted
[ -f $P/importance.json ] || $J importance --model $M --calib $TR --windows 16 --seq-len 128 --out $P $T
[ -f $OUT/table.json ] || $J profile --config $P/config.json --space $SP $W --repeats 15 --calibrate 8 $T --out $OUT/table.json
COMMON="--model $P --importance $P/importance.json --space $SP --table $OUT/table.json $W $T"
finetune_eval() {  # arch.json -> export dir -> eval json
  local arch=$1 dir=$2
  [ -f $dir/eval.json ] && return
  $J finetune --model $P --space $SP --arch $arch --out $dir --steps $STEPS --text $TR --train-batch 4 --seq-len 128 $T --seed 0 >/dev/null
  $J eval ppl --model $dir --text $VA --teacher $M --window 257 --max-windows 64 $T --format json > $dir/eval.json
}
for b in $BUDGETS; do
  D=$OUT/b$b
  mkdir -p $D
  for s in $SEEDS; do
    [ -f $D/dnas_s$s/arch.json ] || $J search $COMMON --text $TR --out $D/dnas_s$s --latency ${b}x --steps 80 \
        --train-batch 4 --seq-len 128 --lora-rank 4 --lr-arch 0.1 --seed $s >/dev/null
    finetune_eval $D/dnas_s$s/arch.json $D/dnas_s$s/export
  done
  [ -f $D/depth_only.json ] || $J arch $COMMON --fit-depth --latency ${b}x --out $D/depth_only.json >/dev/null
  finetune_eval $D/depth_only.json $D/depth_only
  [ -f $D/derived.json ] || $J derive $COMMON --text $TR --scores $OUT/scores.json --latency ${b}x --out $D/derived.json >/dev/null
  finetune_eval $D/derived.json $D/derived
  [ -f $D/portfolio.json ] || $J derive $COMMON --text $TR --scores $OUT/scores.json --latency ${b}x --portfolio \
      --dnas-arch $D/dnas_s0/arch.json --finetune-steps $STEPS --eval-every 20 --out $D/portfolio.json >/dev/null
  finetune_eval $D/portfolio.json $D/portfolio
done
python3 - "$OUT" $BUDGETS <<'PY'
import json, sys, os
out = sys.argv[1]
print("| budget | method | predicted ms | ppl | KL | top-1 |")
print("|---|---|---:|---:|---:|---:|")
for b in sys.argv[2:]:
    d = f"{out}/b{b}"
    rows = [(n, f"{d}/{n}") for n in sorted(os.listdir(d)) if os.path.isfile(f"{d}/{n}/eval.json")]
    rows += [(n, f"{d}/{n}/export") for n in sorted(os.listdir(d)) if os.path.isfile(f"{d}/{n}/export/eval.json")]
    for name, p in rows:
        e = json.load(open(f"{p}/eval.json"))
        x = json.load(open(f"{p}/jointnas_export.json"))
        print(f"| {b}x | {name} | {x['predicted']['latency_ms']:.4f} | {e['ppl']:.2f} | {e['teacher']['kl']:.4f} | {e['teacher']['top1_agreement']:.3f} |")
PY
