#!/usr/bin/env python3
"""Builds data/eval/arith-choice.jsonl from data/sft/tasks/arith.jsonl (standard library only, deterministic).

Each held-out arithmetic question gets four candidate answers: the correct one and three distractors drawn from
{a+1, a-1, a+2, a-2, a+10, a-10, digits reversed} (non-negative, distinct, not a), picked and ordered by SHA-256 of
the prompt, so a rebuild is byte-identical.
"""
import hashlib
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "sft", "tasks", "arith.jsonl")
TARGET = os.path.join(HERE, "arith-choice.jsonl")


def key(*parts):
    return hashlib.sha256("|".join(["llada-eval-v1", *map(str, parts)]).encode()).hexdigest()


def main():
    header = {"eval_task": "arith-choice", "type": "choice",
              "description": "Held-out arithmetic with 4 candidate answers, ranked by likelihood (accuracy)."}
    lines = [json.dumps(header, separators=(",", ":"))]
    with open(SOURCE, encoding="utf-8") as f:
        for line in f:
            item = json.loads(line)
            a = int(item["answer"])
            pool = {a + 1, a - 1, a + 2, a - 2, a + 10, a - 10, int(str(a)[::-1])}
            pool = sorted(x for x in pool if x >= 0 and x != a)
            distractors = sorted(pool, key=lambda x: key(item["prompt"], "pick", x))[:3]
            choices = sorted([a, *distractors], key=lambda x: key(item["prompt"], "order", x))
            lines.append(json.dumps({"prompt": item["prompt"], "choices": [str(c) for c in choices],
                                     "answer": choices.index(a)}, separators=(",", ":")))
    with open(TARGET, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
