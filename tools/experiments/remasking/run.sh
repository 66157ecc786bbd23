#!/usr/bin/env bash
# Remasking and schedule ablation on models/llada-tiny-instruct (Sec. 2.4 / Appendix B of the paper):
# random vs low-confidence remasking vs low-confidence with semi-autoregressive blocks of 8 tokens,
# (a) quality vs sampling steps at gen_length 32, (b) quality vs gen_length with steps = gen_length.
# Tasks: the first LIMIT held-out items of spell, chat and arith. Each configuration is one `llada eval` run
# (seed 1, greedy: temperature 0); aggregate.py scores exact match, character similarity, distinct and empty answers.
# Re-running skips reports that exist. Usage: tools/experiments/remasking/run.sh [LLADA_BINARY] [LIMIT]
set -euo pipefail
cd "$(dirname "$0")/../../.."
LLADA=${1:-src/Llada.Cli/bin/Release/net10.0/llada}
LIMIT=${2:-40}
RUNS=runs/remasking
OUT=docs/experiments/results/remasking
mkdir -p "$RUNS" "$OUT"
TASKS=(data/eval/spell.jsonl data/eval/chat.jsonl data/eval/arith.jsonl)

run() { # name gen_length steps remasking block_length
    local report="$RUNS/$1-g$2-s$3.json"
    [ -f "$report" ] && return
    /usr/bin/time -f "$1 g$2 s$3: %e s" "$LLADA" eval --model models/llada-tiny-instruct --tasks "${TASKS[@]}" --limit "$LIMIT" \
        --gen-length "$2" --steps "$3" --remasking "$4" --block-length "$5" --seed 1 --threads 1 \
        --out "$report.tmp" --overwrite > /dev/null 2>> "$RUNS/eval.log"
    mv "$report.tmp" "$report"
    tail -n 1 "$RUNS/eval.log"
}
start=$(date +%s)
for steps in 4 8 16 32; do
    run random 32 "$steps" random 32
    run low_confidence 32 "$steps" low_confidence 32
    run low_confidence_blocks 32 "$steps" low_confidence 8
done
for gen in 16 64; do
    run random "$gen" "$gen" random "$gen"
    run low_confidence "$gen" "$gen" low_confidence "$gen"
    run low_confidence_blocks "$gen" "$gen" low_confidence 8
done
/usr/bin/python3 tools/experiments/remasking/aggregate.py "$RUNS" "$OUT/remasking.csv"
for metric in similarity distinct; do
    "$LLADA" plot --csv "$OUT/remasking-steps.csv" --x steps --y "$metric" --series strategy --log-x \
        --title "llada-tiny-instruct, gen_length 32: $metric vs sampling steps" --xlabel "sampling steps" --out "$OUT/steps-$metric.svg" --overwrite
    "$LLADA" plot --csv "$OUT/remasking-length.csv" --x gen_length --y "$metric" --series strategy --log-x \
        --title "llada-tiny-instruct, steps = gen_length: $metric vs generation length" --xlabel "gen_length (tokens)" --out "$OUT/length-$metric.svg" --overwrite
done
echo "total $(( $(date +%s) - start )) s"
