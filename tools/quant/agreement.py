#!/usr/bin/env python3
"""Greedy-output agreement between `llada eval --out` reports of the same tasks run on differently stored weights.

    python3 tools/quant/agreement.py eval-f32.json eval-bf16.json eval-q8.json

For every generate task: the fraction of items whose generated text equals the first report's, and each report's
accuracy; for every perplexity task: the NLL per token (nats) and the perplexity and, against the first report, the
paired per-document change. Standard library only.
"""
import json
import math
import sys


def tasks(path):
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    return {t["name"]: t for t in report["tasks"]}


def paired_change(base_items, items):
    """Per-document change in nats/token against the first report (same documents, same Monte Carlo masks when the
    seed is shared, so the difference is paired): mean, its standard error and the largest |change|."""
    diffs = [(items[i["index"]]["nll"] - i["nll"]) / i["tokens"] for i in base_items if i["index"] in items and i["tokens"] > 0]
    if len(diffs) < 2 or all(d == 0 for d in diffs):
        return ""
    mean = sum(diffs) / len(diffs)
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs))
    return f"; paired per-document change {mean:+.5f} ± {se:.5f} nats/token (largest {max(map(abs, diffs)):.4f})"


def main(paths):
    reports = [tasks(p) for p in paths]
    base = reports[0]
    for name, task in base.items():
        kind = str(task["type"]).lower()
        print(f"## {name} ({kind})")
        for path, report in zip(paths, reports):
            other = report.get(name)
            if other is None:
                continue
            items = {i["index"]: i for i in other["items"]}
            if kind == "perplexity":
                nll = sum(i["nll"] for i in other["items"])
                tokens = sum(i["tokens"] for i in other["items"])
                print(f"{path}: {nll / tokens:.4f} nats/token, perplexity {math.exp(nll / tokens):.2f} ({tokens} tokens)"
                      + paired_change(task["items"], items))
            elif kind == "generate":
                same = sum(1 for i in task["items"] if i["index"] in items and items[i["index"]]["output"] == i["output"])
                correct = sum(1 for i in other["items"] if i["correct"])
                print(f"{path}: identical greedy output {same}/{len(task['items'])}, correct {correct}/{len(other['items'])}")


if __name__ == "__main__":
    main(sys.argv[1:])
