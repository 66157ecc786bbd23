#!/usr/bin/env bash
# Reversal-curse experiment, part 1: data, tokenizer, and the two models (MDM and AR baseline) trained with the same
# config, data, seed and steps. Each run uses one thread so both can train side by side on the 2-core machine.
# Re-running resumes from the checkpoints in runs/reversal/ (rm -r runs/reversal to start over).
# Usage: tools/experiments/reversal/train.sh [LLADA_BINARY]
set -euo pipefail
cd "$(dirname "$0")/../../.."
LLADA=${1:-src/Llada.Cli/bin/Release/net10.0/llada}
DATA=data/experiments/reversal
RUNS=runs/reversal
CONFIG=tools/experiments/reversal/config.json

/usr/bin/python3 tools/experiments/reversal/make_data.py "$DATA"
mkdir -p "$RUNS"
[ -f "$RUNS/tok/tokenizer.json" ] || "$LLADA" tokenizer train --input "$DATA/tokenizer-input.txt" --vocab-size 512 --out "$RUNS/tok"

train() { # objective
    local out="$RUNS/$1" resume=()
    [ -f "$out/training_state.json" ] && resume=(--resume)
    /usr/bin/time -f "$1 wall %e s" "$LLADA" train --config "$CONFIG" --objective "$1" --threads 1 \
        --data "$DATA/train.jsonl" --valid "$DATA/valid.jsonl" --tokenizer "$RUNS/tok" --out "$out" "${resume[@]}" \
        > "$RUNS/$1.log" 2>&1
}
train mdm & train ar & wait
tail -n 4 "$RUNS/mdm.log" "$RUNS/ar.log"
