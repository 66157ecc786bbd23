#!/usr/bin/env python3
"""Builds data/prefs/{train,valid}.jsonl, a synthetic preference set for VRPO, from data/sft/{train,valid}.jsonl.

Standard library only and deterministic: every choice comes from SHA-256 of the seed string SEED and the item, so a
rebuild is byte-identical. Single-turn SFT items of four tasks become {"prompt", "chosen", "rejected"} records:
chosen is the SFT answer; rejected is a plausible wrong answer of the same shape:
  arith     a neighbour of the result: a+-1, a+-2, a+-10 or the digits reversed
  reverse   the word not reversed, or the correct reversal with two adjacent letters swapped
  spell     the correct spelling with two adjacent letters swapped or one letter dropped
  hypernym  "An X is a kind of Y." with Y taken from another item of the same file
Up to PER_TASK[split] items per task are kept (first in hash order).
The valid split is also written as the choice task data/eval/prefs-choice.jsonl (the two answers in hash order),
which `llada eval` scores with the Eq. 6 likelihood: its accuracy is the held-out preference accuracy.
"""
import hashlib
import json
import os
import re

SEED = "llada-prefs-v1"
PER_TASK = {"train": 600, "valid": 100}
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")


def h(*parts):
    return int(hashlib.sha256("|".join([SEED, *map(str, parts)]).encode()).hexdigest(), 16)


def swap_adjacent(s, key):
    spots = [i for i in range(len(s) - 1) if s[i] != s[i + 1]]
    if not spots:
        return None
    i = spots[h(key, "swap") % len(spots)]
    return s[:i] + s[i + 1] + s[i] + s[i + 2:]


def classify(prompt, answer):
    if re.fullmatch(r"\d+", answer):
        return "arith"
    if re.fullmatch(r"[a-z]( [a-z])+", answer):
        return "spell"
    if re.fullmatch(r"[a-z]+", answer) and ("revers" in prompt or "backwards" in prompt):
        return "reverse"
    if re.fullmatch(r"An? [a-z' -]+ is a kind of [a-z' -]+\.", answer) and "a kind of?" in prompt:
        return "hypernym"
    return None


def wrong(task, prompt, answer, kinds):
    key = prompt + "|" + answer
    if task == "arith":
        a = int(answer)
        pool = sorted(x for x in {a + 1, a - 1, a + 2, a - 2, a + 10, a - 10, int(answer[::-1])} if x >= 0 and x != a)
        return str(pool[h(key, "arith") % len(pool)])
    if task == "reverse":
        word = answer[::-1]
        if word != answer and h(key, "reverse") % 2 == 0:
            return word
        return swap_adjacent(answer, key)
    if task == "spell":
        letters = answer.split(" ")
        if len(letters) > 3 and h(key, "spell") % 2 == 0:
            i = h(key, "drop") % len(letters)
            return " ".join(letters[:i] + letters[i + 1:])
        swapped = swap_adjacent("".join(letters), key)
        return None if swapped is None else " ".join(swapped)
    if task == "hypernym":
        head, kind = answer[:-1].split(" is a kind of ", 1)
        others = sorted(k for k in kinds if k != kind)
        return f"{head} is a kind of {others[h(key, 'hypernym') % len(others)]}."
    raise ValueError(task)


def build(split):
    items = {}
    with open(os.path.join(ROOT, "data", "sft", f"{split}.jsonl"), encoding="utf-8") as f:
        for line in f:
            messages = json.loads(line)["messages"]
            if len(messages) != 2:
                continue
            prompt, answer = messages[0]["content"], messages[1]["content"]
            task = classify(prompt, answer)
            if task:
                items.setdefault(task, []).append((prompt, answer))
    kinds = {a[:-1].split(" is a kind of ", 1)[1] for _, a in items.get("hypernym", [])}
    records = []
    for task in sorted(items):
        chosen = sorted(items[task], key=lambda pa: h(split, task, *pa))[:PER_TASK[split]]
        for prompt, answer in chosen:
            rejected = wrong(task, prompt, answer, kinds)
            if rejected and rejected != answer:
                records.append((h(split, "order", prompt, answer), {"prompt": prompt, "chosen": answer, "rejected": rejected, "task": task}))
    records.sort(key=lambda r: r[0])
    os.makedirs(os.path.join(ROOT, "data", "prefs"), exist_ok=True)
    with open(os.path.join(ROOT, "data", "prefs", f"{split}.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for _, r in records:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")
    if split == "valid":
        header = {"eval_task": "prefs-choice", "type": "choice",
                  "description": "Held-out preference pairs (data/prefs/valid.jsonl): is the chosen answer more likely than the rejected one?"}
        with open(os.path.join(ROOT, "data", "eval", "prefs-choice.jsonl"), "w", encoding="utf-8", newline="\n") as f:
            f.write(json.dumps(header, separators=(",", ":")) + "\n")
            for _, r in records:
                choices = sorted([r["chosen"], r["rejected"]], key=lambda c: h("choice", r["prompt"], c))
                f.write(json.dumps({"prompt": r["prompt"], "choices": choices, "answer": choices.index(r["chosen"])},
                                   separators=(",", ":")) + "\n")
    return {task: sum(1 for _, r in records if r["task"] == task) for task in sorted(items)}


if __name__ == "__main__":
    for split in ("train", "valid"):
        print(split, build(split))
