#!/usr/bin/env python3
"""Synthetic fact corpus and eval tasks for the reversal-curse experiment (docs/experiments/reversal-curse.md).

Deterministic: everything comes from random.Random(SEED). Standard library only.

Facts pair two invented people: "A's mentor is\nB." (forward form) and "B is the mentor of\nA." (backward form).
The name always follows a newline or starts the text, so the tokenizer splits it the same way in the corpus
and in the eval prompts/answers (the tokenizer attaches a preceding space or punctuation mark to a word).

Three groups of N facts each:
  fwd  - only the forward form is in the training corpus
  both - both forms are in the corpus (control: both directions seen)
  bwd  - only the backward form is in the corpus
Eval tasks ask each fact both ways. "seen" direction = fwd-group forward + bwd-group backward questions;
"reversed" direction = fwd-group backward + bwd-group forward questions.
"""
import json
import os
import random
import sys

SEED = 20240814
N = 50          # facts per group
COPIES = 4      # the corpus repeats every training sentence this often, each copy in a new order

ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kl", "st", "th"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ou", "ei"]
CODAS = ["", "", "n", "r", "l", "s", "x", "th", "nd"]


def names(rng, count):
    seen = set()
    out = []
    while len(out) < count:
        syllables = rng.choice([2, 2, 3])
        word = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(syllables - 1))
        word += rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
        word = word.capitalize()
        if word not in seen:
            seen.add(word)
            out.append(word)
    return out


def forward(a, b):
    return f"{a}'s mentor is\n{b}."


def backward(a, b):
    return f"{b} is the mentor of\n{a}."


def main(out_dir):
    rng = random.Random(SEED)
    people = names(rng, 6 * N)
    facts = [(people[2 * i], people[2 * i + 1]) for i in range(3 * N)]
    groups = {"fwd": facts[:N], "both": facts[N:2 * N], "bwd": facts[2 * N:]}

    sentences = [forward(a, b) for a, b in groups["fwd"]]
    sentences += [s for a, b in groups["both"] for s in (forward(a, b), backward(a, b))]
    sentences += [backward(a, b) for a, b in groups["bwd"]]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "train.jsonl"), "w", encoding="utf-8") as f:
        for _ in range(COPIES):
            order = sentences[:]
            rng.shuffle(order)
            for s in order:
                f.write(json.dumps({"text": s}) + "\n")
    # Plain text of the same sentences for `llada tokenizer train --input`.
    with open(os.path.join(out_dir, "tokenizer-input.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(sentences) + "\n")
    # Held-out monitoring text for `llada train --valid`: one copy of the training sentences (the task is
    # memorisation, so there is no unseen text to hold out).
    with open(os.path.join(out_dir, "valid.jsonl"), "w", encoding="utf-8") as f:
        for s in sentences:
            f.write(json.dumps({"text": s}) + "\n")

    for group, pairs in groups.items():
        for direction in ("forward", "backward"):
            name = f"{group}-{direction}"
            choice_lines = [json.dumps({"eval_task": f"{name}-choice", "type": "choice",
                                        "description": f"{group} facts asked in the {direction} form; 4 names of the same role and group"})]
            gen_lines = [json.dumps({"eval_task": f"{name}-gen", "type": "generate", "match": "exact", "gen_length": 8,
                                     "description": f"{group} facts asked in the {direction} form; exact name + '.'"})]
            for i, (a, b) in enumerate(pairs):
                if direction == "forward":
                    prompt, answer, pool = f"{a}'s mentor is\n", b, [q for _, q in pairs]
                else:
                    prompt, answer, pool = f"{b} is the mentor of\n", a, [p for p, _ in pairs]
                others = [x for x in pool if x != answer]
                choices = [answer] + rng.sample(others, 3)
                rng.shuffle(choices)
                choice_lines.append(json.dumps({"id": f"{name}-{i}", "prompt": prompt,
                                                "choices": [c + "." for c in choices], "answer": choices.index(answer)}))
                gen_lines.append(json.dumps({"id": f"{name}-{i}", "prompt": prompt, "answer": answer + "."}))
            for suffix, lines in (("choice", choice_lines), ("gen", gen_lines)):
                with open(os.path.join(out_dir, f"{name}-{suffix}.jsonl"), "w", encoding="utf-8") as f:
                    f.write("\n".join(lines) + "\n")
    print(f"wrote {out_dir}: {len(sentences)} distinct training sentences x {COPIES} copies, 6 choice + 6 generate tasks of {N} items")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/experiments/reversal")
