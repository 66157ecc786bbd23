#!/usr/bin/env python3
"""Aggregates the variance experiment's eval reports (RUNS/ESTIMATOR-nN.json) into a CSV.
For each estimator and n: per text, the standard deviation (n-1 denominator) of the NLL estimates of its copies,
divided by the text's token count (nats/token); then the mean over texts. Also the mean estimate and the mean
standard error a single estimate reports (its own sample s.d. / sqrt(n); none for n = 1).
Usage: aggregate.py RUNS_DIR OUT.csv"""
import glob
import json
import math
import os
import re
import statistics
import sys
from collections import defaultdict

runs, out = sys.argv[1], sys.argv[2]
rows = []
for path in glob.glob(os.path.join(runs, "*.json")):
    m = re.fullmatch(r"(.+)-n(\d+)\.json", os.path.basename(path))
    if not m:
        continue
    task = json.load(open(path))["tasks"][0]
    texts = defaultdict(list)
    for item in task["items"]:
        texts[item["id"].split("-")[0]].append(item)
    stds, means, ses = [], [], []
    for items in texts.values():
        per_token = [i["nll"] / i["tokens"] for i in items]
        stds.append(statistics.stdev(per_token))
        means.append(statistics.mean(per_token))
        # A single sample has no standard error of its own (the report holds 0 there).
        if int(m.group(2)) > 1:
            ses += [i["standard_error"] / i["tokens"] for i in items if i.get("standard_error") is not None]
    copies = min(len(v) for v in texts.values())
    rows.append((m.group(1), int(m.group(2)), len(texts), copies, statistics.mean(stds), min(stds), max(stds),
                 statistics.mean(means), statistics.mean(ses) if ses else math.nan))
order = {"eq6": 0, "eq6-unstratified": 1, "mask-rate": 2}
rows.sort(key=lambda r: (order.get(r[0], 9), r[1]))
with open(out, "w") as f:
    f.write("estimator,mc_num,texts,copies,std_nats_per_token,min_std,max_std,mean_nats_per_token,reported_se_nats_per_token\n")
    for r in rows:
        f.write(",".join([r[0], str(r[1]), str(r[2]), str(r[3])] + [f"{x:.5g}" for x in r[4:]]) + "\n")
print(f"wrote {out}: {len(rows)} rows")
