#!/usr/bin/env bash
# Reversal-curse experiment, part 2: evaluate both models (from train.sh) on the 12 tasks and aggregate.
# Choice tasks: the answer's likelihood (Eq. 6 bound for the MDM, exact for AR) against 3 names of the same role.
# Generate tasks: exact match of the name + "." (MDM: low-confidence remasking, 8 tokens, 8 steps; AR: greedy).
# Usage: tools/experiments/reversal/evaluate.sh [LLADA_BINARY] [RUN...]   (runs under runs/reversal/; default: mdm ar)
set -euo pipefail
cd "$(dirname "$0")/../../.."
LLADA=${1:-src/Llada.Cli/bin/Release/net10.0/llada}
shift || true
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(mdm ar)
DATA=data/experiments/reversal
RUNS=runs/reversal
OUT=docs/experiments/results/reversal
mkdir -p "$OUT"
TASKS=()
for group in fwd both bwd; do
    for direction in forward backward; do
        TASKS+=("$DATA/$group-$direction-choice.jsonl" "$DATA/$group-$direction-gen.jsonl")
    done
done
for model in "${MODELS[@]}"; do
    /usr/bin/time -f "$model eval wall %e s" "$LLADA" eval --model "$RUNS/$model" --tasks "${TASKS[@]}" --no-chat-template \
        --mc-num 32 --batch-size 32 --seed 1 --steps 8 --gen-length 8 --block-length 8 --threads 2 \
        --out "$OUT/$model.json" --markdown "$OUT/$model.md" --overwrite > /dev/null
done
REPORTS=()
for model in "${MODELS[@]}"; do REPORTS+=("$OUT/$model.json"); done
"$LLADA" eval --compare "${REPORTS[@]}" > "$OUT/compare.md"
/usr/bin/python3 tools/experiments/reversal/aggregate.py "$OUT/reversal.csv" "${REPORTS[@]}"
"$LLADA" plot --csv "$OUT/reversal.csv" --kind bar --x direction --y choice_accuracy --error choice_se --series model \
    --title "Reversal curse: 4-way choice accuracy (chance 0.25)" --xlabel "question direction vs training" \
    --ylabel "accuracy" --out "$OUT/reversal-choice.svg" --overwrite
"$LLADA" plot --csv "$OUT/reversal.csv" --kind bar --x direction --y gen_accuracy --error gen_se --series model \
    --title "Reversal curse: exact-match generation accuracy" --xlabel "question direction vs training" \
    --ylabel "accuracy" --out "$OUT/reversal-gen.svg" --overwrite
cat "$OUT/reversal.csv"
