#!/usr/bin/env python3
"""Held-out texts for the likelihood-estimator variance experiment: the first TEXTS paragraphs of
data/corpus/valid.txt that are 150-260 characters long (one window each, well under the model's 256 tokens),
each written COPIES times. `llada eval` gives every item its own seed, so the copies of a text are independent
repetitions of the estimate. Deterministic, standard library only.
Usage: make_texts.py OUT.jsonl [TEXTS] [COPIES]"""
import json
import sys

out = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 4
copies = int(sys.argv[3]) if len(sys.argv) > 3 else 8
texts = []
with open("data/corpus/valid.txt", encoding="utf-8") as f:
    for line in f:
        line = line.strip()
        if 150 <= len(line) <= 260:
            texts.append(line)
        if len(texts) == count:
            break
with open(out, "w", encoding="utf-8") as f:
    f.write(json.dumps({"eval_task": "heldout-short", "type": "perplexity",
                        "description": f"{count} short held-out paragraphs of data/corpus/valid.txt, {copies} copies each"}) + "\n")
    for i, t in enumerate(texts):
        for k in range(copies):
            f.write(json.dumps({"id": f"p{i}-r{k}", "text": t}) + "\n")
print(f"wrote {out}: {len(texts)} texts x {copies} copies")
