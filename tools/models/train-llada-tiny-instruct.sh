#!/usr/bin/env bash
# Rebuilds the embedded default model models/llada-tiny-instruct from the committed data, with the exact commands
# (and step counts) used for the shipped weights. About 35 minutes on 2 cores (see docs/models.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
dotnet build -c Release src/Llada.Cli
L=src/Llada.Cli/bin/Release/net10.0/llada
mkdir -p runs
$L tokenizer train --input data/corpus/train.txt --vocab-size 4096 --out runs/tok4096
# Pre-training (Eq. 3). The shipped run was stopped and resumed several times (--resume is exact); the final
# schedule targets the 4000 steps written in the config.
$L train --config configs/llada-tiny-pretrain.json --data data/corpus/train.txt --valid data/corpus/valid.txt \
  --tokenizer runs/tok4096 --out runs/llada-tiny-base
# SFT (Eq. 5) on the synthetic instruction set, saved in bfloat16.
$L sft --model runs/llada-tiny-base --config configs/llada-tiny-sft.json --data data/sft/train.jsonl \
  --valid data/sft/valid.jsonl --out runs/llada-tiny-instruct --skip-long --save-dtype bf16
mkdir -p models/llada-tiny-instruct
cp runs/llada-tiny-instruct/{config.json,model.safetensors,tokenizer.json,tokenizer_config.json,special_tokens_map.json} \
  models/llada-tiny-instruct/
# models/llada-tiny-instruct/generation_config.json (its sampling defaults: blocks of 16) is not written by training:
# it was chosen by comparing block lengths with tools/models/measure_sampling_defaults.py (docs/models.md) and is kept.
