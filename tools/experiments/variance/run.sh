#!/usr/bin/env bash
# Likelihood-estimator variance: score TEXTS held-out texts, each repeated COPIES times (every item gets its own
# mask seed), with each estimator and Monte Carlo budget n; the spread of a text's estimates across its copies
# is the estimator's standard deviation at that n. One `llada eval` run per (estimator, n) under runs/variance/;
# the aggregate CSV + plot go to docs/experiments/results/variance/. Re-running skips reports that exist.
# Usage: tools/experiments/variance/run.sh [LLADA_BINARY] [TEXTS] [COPIES]
set -euo pipefail
cd "$(dirname "$0")/../../.."
LLADA=${1:-src/Llada.Cli/bin/Release/net10.0/llada}
TEXTS=${2:-4}
COPIES=${3:-8}
MODEL=models/llada-tiny-instruct
RUNS=runs/variance
OUT=docs/experiments/results/variance
mkdir -p "$RUNS" "$OUT"
TASK="$RUNS/heldout-short.jsonl"
/usr/bin/python3 tools/experiments/variance/make_texts.py "$TASK" "$TEXTS" "$COPIES"

start=$(date +%s)
for n in 1 4 16 64; do
    for estimator in eq6 eq6-unstratified mask-rate; do
        report="$RUNS/$estimator-n$n.json"
        [ -f "$report" ] && continue
        "$LLADA" eval --model "$MODEL" --tasks "$TASK" --estimator "$estimator" --mc-num "$n" --batch-size 64 \
            --seed 1 --threads 1 --out "$report.tmp" --overwrite > /dev/null 2>> "$RUNS/eval.log"
        mv "$report.tmp" "$report"
        echo "$estimator n=$n done ($(( $(date +%s) - start )) s)"
    done
done
/usr/bin/python3 tools/experiments/variance/aggregate.py "$RUNS" "$OUT/variance.csv"
"$LLADA" plot --csv "$OUT/variance.csv" --x mc_num --y std_nats_per_token --series estimator --log-x --log-y \
    --title "Spread of the likelihood estimate vs Monte Carlo samples (llada-tiny-instruct)" \
    --xlabel "Monte Carlo samples n (mc_num)" --ylabel "std across repeats (nats / token)" --out "$OUT/variance.svg" --overwrite
echo "total $(( $(date +%s) - start )) s"
