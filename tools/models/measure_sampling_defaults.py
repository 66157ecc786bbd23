#!/usr/bin/env python3
"""Compare block lengths for a model's generation_config.json (docs/models.md, "Sampling defaults").

Runs `llada eval` (greedy, one token per step) on the first --limit items of each generation task of data/eval
once per block length, and counts per task the exact answers and the answers in the task's *format* (the tiny
model learns formats, not facts, so exact match alone is ~0 everywhere). Needs only python3 and the `llada` command.

  python3 tools/models/measure_sampling_defaults.py --llada "dotnet src/Llada.Cli/bin/Release/net10.0/Llada.Cli.dll" \
      --model models/llada-tiny-instruct --limit 8 --gen-length 64 --blocks 8 16 32 64
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import tempfile

TASKS = ["chat", "verse", "define", "hypernym", "spell", "reverse", "arith"]


def chat_format(prompt, answer, output):
    # The reference with the user's name (a capitalised word of the prompt) replaced by any capitalised word.
    names = {w for w in re.findall(r"[A-Z][a-z]+", prompt)} - {"Hello", "Hi", "Hey", "Good", "Greetings", "How"}
    pattern = re.escape(answer)
    for name in names:
        pattern = pattern.replace(re.escape(name), r"[A-Z][a-z]*")
    return re.fullmatch(pattern, output) is not None


def verse_format(prompt, answer, output):
    # A full-length verse: at least 3/4 of the reference's words, ending like a sentence.
    return len(output.split()) >= 0.75 * len(answer.split()) and output.rstrip().endswith((".", "?", "!"))


FORMATS = {
    "chat": chat_format,
    "verse": verse_format,
    "define": lambda p, a, o: re.fullmatch(r"[A-Z].*\S.*\.", o) is not None and len(o.split()) >= 3,
    "hypernym": lambda p, a, o: re.fullmatch(r"An? [\w' -]+ is a kind of [\w' -]+\.", o) is not None,
    "spell": lambda p, a, o: re.fullmatch(r"(\S )+\S", o) is not None,
    "reverse": lambda p, a, o: re.fullmatch(r"\S+", o) is not None,
    "arith": lambda p, a, o: re.fullmatch(r"-?\d+", o) is not None,
}


def items(path, limit):
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]
    header, rows = lines[0], lines[1:]
    if "source" in header:
        with open(os.path.join(os.path.dirname(path), header["source"]), encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    return rows[:limit]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llada", default="llada", help="command that runs llada (split like a shell)")
    ap.add_argument("--model", default="models/llada-tiny-instruct")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--gen-length", type=int, help="one canvas for every task (default: each task's gen_length)")
    ap.add_argument("--blocks", type=int, nargs="+", default=[8, 16, 32, 64])
    args = ap.parse_args()

    refs = {t: items(f"data/eval/{t}.jsonl", args.limit) for t in TASKS}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for block in args.blocks:
            cells = []
            for name in TASKS:
                path = f"data/eval/{name}.jsonl"
                with open(path, encoding="utf-8") as f:
                    gen = args.gen_length or json.loads(f.readline())["gen_length"]
                # As llada does with a model's default block: the largest divisor of gen_length not above it.
                b = min(block, gen)
                while gen % b:
                    b -= 1
                out = os.path.join(tmp, f"{name}-b{block}.json")
                cmd = shlex.split(args.llada) + ["eval", "--model", args.model, "--tasks", path, "--limit", str(args.limit),
                                                 "--gen-length", str(gen), "--block-length", str(b), "--out", out]
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                with open(out, encoding="utf-8") as f:
                    task = json.load(f)["tasks"][0]
                fmt = exact = 0
                for item, ref in zip(task["items"], refs[name]):
                    output = item["output"].strip()
                    exact += item["correct"]
                    fmt += FORMATS[name](ref["prompt"], ref["answer"], output)
                cells.append(f"{fmt}/{len(task['items'])} ({exact})")
            rows.append((block, cells))
    canvas = f"gen_length {args.gen_length}" if args.gen_length else "each task's gen_length"
    print(f"format ok / items (exact in brackets); greedy, steps = gen_length, {canvas}, first {args.limit} items per task")
    print("| block_length | " + " | ".join(TASKS) + " |")
    print("| ---: |" + " ---: |" * len(TASKS))
    for block, cells in rows:
        print(f"| {block} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
