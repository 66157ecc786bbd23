#!/usr/bin/env python3
"""Pools the reversal-curse eval reports into directions:
  seen     = fwd-forward + bwd-backward (asked the way the fact was written)
  reversed = fwd-backward + bwd-forward (asked the other way; never in the training text)
  both-fwd / both-bwd = control facts written both ways
Accuracy with the binomial standard error. The model label is the report's file name (mdm.json -> MDM).
Usage: aggregate.py OUT.csv REPORT.json..."""
import os
import json
import math
import sys

POOLS = {
    "seen": ["fwd-forward", "bwd-backward"],
    "reversed": ["fwd-backward", "bwd-forward"],
    "control (both written)": ["both-forward", "both-backward"],
}
rows = []
for path in sys.argv[2:]:
    model = os.path.splitext(os.path.basename(path))[0].upper()
    tasks = {t["name"]: t for t in json.load(open(path))["tasks"]}
    for direction, names in POOLS.items():
        row = [model, direction]
        for kind in ("choice", "gen"):
            correct = sum(tasks[f"{n}-{kind}"]["correct"] for n in names)
            count = sum(tasks[f"{n}-{kind}"]["count"] for n in names)
            p = correct / count
            row += [f"{p:.4f}", f"{math.sqrt(p * (1 - p) / count):.4f}", str(count)]
        rows.append(row)
with open(sys.argv[1], "w") as f:
    f.write("model,direction,choice_accuracy,choice_se,choice_items,gen_accuracy,gen_se,gen_items\n")
    for r in rows:
        f.write(",".join(f'"{x}"' if "," in x else x for x in r) + "\n")
print(f"wrote {sys.argv[1]}")
