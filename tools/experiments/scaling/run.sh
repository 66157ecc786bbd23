#!/usr/bin/env bash
# MDM vs AR at equal compute: for each model size, train both objectives with the same config, data, seed and
# steps (same parameters, tokens and FLOPs per step) on the committed corpus with the shipped tokenizer, and compare
# the final held-out loss the trainer measures on data/corpus/valid.txt (MDM: Eq. 3 ELBO bound with fixed noise;
# AR: exact NLL). Two runs train at a time with one thread each. Resumable (re-run to continue).
# Usage: [STEPS=N] tools/experiments/scaling/run.sh [LLADA_BINARY] [SIZE...]   (sizes: configs in tools/experiments/scaling/)
# STEPS overrides the configs' 500 steps; finished runs continue to it with --resume (the WSD schedule then targets N).
set -euo pipefail
cd "$(dirname "$0")/../../.."
LLADA=${1:-src/Llada.Cli/bin/Release/net10.0/llada}
shift || true
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(small medium)
RUNS=runs/scaling
OUT=docs/experiments/results/scaling
mkdir -p "$RUNS" "$OUT"

train() { # size objective
    local out="$RUNS/$1-$2" resume=()
    [ -f "$out/training_state.json" ] && resume=(--resume)
    [ -n "${STEPS:-}" ] && resume+=(--steps "$STEPS")
    /usr/bin/time -f "$1 $2 wall %e s" -a -o "$RUNS/times.txt" "$LLADA" train --config "tools/experiments/scaling/$1.json" \
        --objective "$2" --threads 1 --data data/corpus/train.txt --valid data/corpus/valid.txt \
        --tokenizer models/llada-tiny-instruct --out "$out" "${resume[@]}" > "$RUNS/$1-$2.log" 2>&1
}
for size in "${SIZES[@]}"; do
    train "$size" mdm & train "$size" ar & wait
done
/usr/bin/python3 tools/experiments/scaling/aggregate.py "$RUNS" "$OUT/scaling.csv" "${SIZES[@]}"
"$LLADA" plot --csv "$OUT/scaling.csv" --x parameters --y mdm_elbo_ppl ar_ppl --log-x --log-y \
    --title "Held-out perplexity at equal compute (MDM: ELBO bound, AR: exact)" --xlabel "parameters" \
    --ylabel "held-out perplexity" --out "$OUT/scaling.svg" --overwrite
"$LLADA" plot --csv "$OUT/curves.csv" --x step --y loss --series run \
    --title "Held-out loss during training (MDM: ELBO bound, AR: exact NLL)" --xlabel "step" \
    --ylabel "nats / token" --out "$OUT/curves.svg" --overwrite
cat "$OUT/scaling.csv"
