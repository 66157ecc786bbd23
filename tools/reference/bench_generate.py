#!/usr/bin/python3
"""A full generate, timed: the PyTorch reference reverse process vs `llada generate`, on the same model and prompts.

The reference is the paper's generate() (low-confidence remasking, semi-autoregressive blocks, greedy), written in
PyTorch with full logits at every position on every step, as the official code does. It runs in float32 or
bfloat16 (oneDNN AVX512-BF16). Our side is `llada generate --json` (vanilla, and any extra settings given with
--ours), whose output also supplies the prompt token ids (chat template applied by our tokenizer), so both sides
decode exactly the same input. Prints a table: seconds per setting summed over prompts, speed-up over the
reference, and how many answers are token-identical to the reference's.

Example (the shipped model, 8 arithmetic prompts):
  /usr/bin/python3 tools/reference/bench_generate.py --llada src/Llada.Cli/bin/Release/net10.0/llada \
      --prompts data/sft/tasks/arith.jsonl --limit 8 --gen-length 64 --block-length 32 \
      --ours= --ours="--cache dual --threshold 0.9"   # write --ours=VALUE: a value starting with -- needs the =
"""

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_forward import forward  # noqa: E402  (dense forward in the weights' dtype, logits at every position)
from safetensors_io import read_checkpoint_tensors  # noqa: E402


def load(directory, dtype):
    with open(os.path.join(directory, "config.json")) as f:
        cfg = json.load(f)
    raw = read_checkpoint_tensors(directory)
    w = {n: torch.from_numpy(a.astype("float32")).to(dtype) for n, a in raw.items()}
    return cfg, w


def generate(cfg, w, prompt, gen, steps, block):
    """The paper's reverse process: greedy, low-confidence remasking, blocks left to right."""
    mask = cfg["mask_token_id"]
    x = torch.tensor(list(prompt) + [mask] * gen)
    n_blocks = gen // block
    per_block = steps // n_blocks
    p = len(prompt)
    with torch.no_grad():
        for blk in range(n_blocks):
            s0, s1 = p + blk * block, p + (blk + 1) * block
            n = int((x[s0:s1] == mask).sum())
            base, extra = divmod(n, per_block)
            for s in range(per_block):
                k = base + (1 if s < extra else 0)
                if k == 0:
                    continue
                logits = forward(w, cfg, x).float()
                probs = torch.softmax(logits, -1)
                cand = logits.argmax(-1)
                conf = probs.gather(-1, cand[:, None])[:, 0]
                conf[:s0] = -math.inf
                conf[s1:] = -math.inf
                conf[x != mask] = -math.inf
                pick = torch.topk(conf, k).indices
                x[pick] = cand[pick]
    return x[p:].tolist()


def ours(llada, model, ids, gen, steps, block, extra):
    cmd = [llada, "generate", "--json", "--prompt-ids", ",".join(map(str, ids)), "--gen-length", str(gen),
           "--steps", str(steps), "--block-length", str(block)] + shlex.split(extra)
    if model:
        cmd += ["--model", model]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return out["token_ids"], out["elapsed_ms"] / 1000.0, out.get("forward_passes")  # token_ids = the answer canvas


def prompt_ids(llada, model, text):
    cmd = [llada, "generate", "--json", "--prompt", text, "--gen-length", "1", "--steps", "1", "--block-length", "1"]
    if model:
        cmd += ["--model", model]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["prompt_ids"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llada", required=True, help="path of the llada executable")
    ap.add_argument("--model", default="models/llada-tiny-instruct")
    ap.add_argument("--prompts", required=True, help='JSONL with a "prompt" field per line')
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--gen-length", type=int, default=64)
    ap.add_argument("--steps", type=int, default=None, help="default: gen-length")
    ap.add_argument("--block-length", type=int, default=32)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ours", action="append", default=None,
                    help='extra `llada generate` options of one setting, repeatable; "" = vanilla')
    a = ap.parse_args()
    steps = a.steps or a.gen_length
    settings = a.ours if a.ours is not None else ["", "--cache dual --threshold 0.9"]
    torch.set_num_threads(a.threads)
    cfg, w = load(a.model, torch.float32 if a.dtype == "float32" else torch.bfloat16)
    with open(a.prompts) as f:
        texts = [json.loads(line)["prompt"] for line in f if line.strip()][: a.limit]

    ref_s, ref_answers = 0.0, []
    ours_s = [0.0] * len(settings)
    same = [0] * len(settings)
    passes = [0] * len(settings)
    for i, text in enumerate(texts):
        ids = prompt_ids(a.llada, a.model, text)
        t0 = time.perf_counter()
        ref = generate(cfg, w, ids, a.gen_length, steps, a.block_length)
        ref_s += time.perf_counter() - t0
        for j, extra in enumerate(settings):
            toks, secs, fp = ours(a.llada, a.model, ids, a.gen_length, steps, a.block_length, extra)
            ours_s[j] += secs
            passes[j] += fp or 0
            same[j] += toks == ref
        print(f"prompt {i + 1}/{len(texts)} done", file=sys.stderr, flush=True)

    n = len(texts)
    print(f"| implementation | setting | seconds ({n} prompts, gen {a.gen_length}, block {a.block_length}) | speed-up vs reference | same tokens as reference |")
    print("| --- | --- | ---: | ---: | ---: |")
    print(f"| PyTorch {torch.__version__} reference ({a.dtype}, {a.threads} threads) | vanilla | {ref_s:.2f} | 1.00x | {n}/{n} |")
    for j, extra in enumerate(settings):
        print(f"| llada | {extra or 'vanilla'} ({passes[j]} forward passes) | {ours_s[j]:.2f} | {ref_s / ours_s[j]:.2f}x | {same[j]}/{n} |")


if __name__ == "__main__":
    main()
