#!/usr/bin/env python3
"""Scores the remasking ablation's eval reports. Per configuration: exact-match accuracy (from the report) and
character similarity = difflib.SequenceMatcher ratio between the output and the reference answer (0..1, 1 = equal;
a graded score, since the tiny model rarely matches exactly), averaged over the items of all tasks, plus the same
per task, its standard error over items, and the share of distinct outputs within a task (1 = every answer
differs, low = the sampler collapses onto one answer), averaged over tasks, and the share of empty answers
(the canvas decoded to EOS / end of turn at once: the paper's "collapse into EOS" of low-confidence remasking), and
per task the mean answer length in characters (an early EOS shortens answers). Writes OUT.csv (all configurations) and OUT-steps.csv / OUT-length.csv (the two sweeps).
Usage: aggregate.py RUNS_DIR OUT.csv"""
import difflib
import glob
import json
import os
import re
import sys

runs, out = sys.argv[1], sys.argv[2]
references = {}


def reference(task_path, index):
    if task_path not in references:
        lines = [json.loads(l) for l in open(task_path, encoding="utf-8") if l.strip()]
        header = lines[0] if "eval_task" in lines[0] else None
        if header and "source" in header:
            src = os.path.normpath(os.path.join(os.path.dirname(task_path), header["source"]))
            items = [json.loads(l) for l in open(src, encoding="utf-8") if l.strip()]
        else:
            items = lines[1:] if header else lines
        references[task_path] = items
    item = references[task_path][index]
    return item.get("accept", [item["answer"]])


def mean(xs):
    return sum(xs) / len(xs)


rows = []
for path in sorted(glob.glob(os.path.join(runs, "*.json"))):
    m = re.fullmatch(r"(.+)-g(\d+)-s(\d+)\.json", os.path.basename(path))
    if not m:
        continue
    report = json.load(open(path))
    per_task, sims, correct, count, distinct, empty, chars = {}, [], 0, 0, [], 0, {}
    for task in report["tasks"]:
        task_sims = []
        for item in task["items"]:
            accepts = reference(task["path"], item["index"])
            out_text = item["output"].strip()
            task_sims.append(max(difflib.SequenceMatcher(None, out_text, a.strip()).ratio() for a in accepts))
        per_task[task["name"]] = sum(task_sims) / len(task_sims)
        chars[task["name"]] = mean([len(i["output"].strip()) for i in task["items"]])
        empty += sum(1 for i in task["items"] if not i["output"].strip())
        distinct.append(len({i["output"].strip() for i in task["items"]}) / len(task["items"]))
        sims += task_sims
        correct += task["correct"]
        count += task["count"]
    rows.append({"strategy": m.group(1), "gen_length": int(m.group(2)), "steps": int(m.group(3)),
                 "similarity": mean(sims), "similarity_se": (sum((x - mean(sims)) ** 2 for x in sims) / (len(sims) - 1) / len(sims)) ** 0.5,
                 "accuracy": correct / count, "distinct": mean(distinct), "empty": empty / count, "items": count,
                 **{f"similarity_{k}": v for k, v in per_task.items()},
                 **{f"chars_{k}": v for k, v in chars.items()}})

order = {"random": 0, "low_confidence": 1, "low_confidence_blocks": 2}
rows.sort(key=lambda r: (order.get(r["strategy"], 9), r["gen_length"], r["steps"]))
columns = list(rows[0].keys())


def write(path, selected):
    with open(path, "w") as f:
        f.write(",".join(columns) + "\n")
        for r in selected:
            f.write(",".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in columns) + "\n")


write(out, rows)
base = out[:-4]
write(base + "-steps.csv", [r for r in rows if r["gen_length"] == 32])
write(base + "-length.csv", [r for r in rows if r["steps"] == r["gen_length"]])
print(f"wrote {out} ({len(rows)} configurations), {base}-steps.csv, {base}-length.csv")
