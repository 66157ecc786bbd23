#!/usr/bin/env python3
"""Collects the scaling runs: final held-out eval of each (size, objective) from metrics.jsonl, the parameter
count from the training log, and every held-out eval as curves. Usage: aggregate.py RUNS OUT.csv SIZE..."""
import json
import math
import os
import re
import sys

runs, out, sizes = sys.argv[1], sys.argv[2], sys.argv[3:]


def evals(size, objective):
    path = os.path.join(runs, f"{size}-{objective}", "metrics.jsonl")
    return [r for r in map(json.loads, open(path)) if r["type"] == "eval"]


def parameters(size):
    text = open(os.path.join(runs, f"{size}-mdm.log")).read()
    return int(re.search(r"([\d,]+) parameters", text).group(1).replace(",", ""))


with open(out, "w") as f, open(os.path.join(os.path.dirname(out), "curves.csv"), "w") as curves:
    f.write("size,parameters,steps,mdm_elbo_nats,ar_nats,mdm_elbo_ppl,ar_ppl,gap_nats\n")
    curves.write("run,step,loss\n")
    for size in sizes:
        mdm, ar = evals(size, "mdm"), evals(size, "ar")
        m, a = mdm[-1], ar[-1]
        f.write(f"{size},{parameters(size)},{m['step']},{m['loss']:.4f},{a['loss']:.4f},"
                f"{math.exp(m['loss']):.2f},{math.exp(a['loss']):.2f},{m['loss'] - a['loss']:.4f}\n")
        for name, rows in ((f"{size} MDM", mdm), (f"{size} AR", ar)):
            for r in rows:
                curves.write(f"{name},{r['step']},{r['loss']:.4f}\n")
print(f"wrote {out}")
