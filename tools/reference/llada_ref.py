#!/usr/bin/python3
"""Independent float64 PyTorch reference of the LLaDA mask predictor and reverse process.

Written from /work/shared/LLADA_SPEC.md sections 2 (reverse process) and 4 (dense architecture); it
produces the golden fixtures under tests/fixtures/tiny-*/ that the C# implementation is tested against.

Commands:
  make-fixtures --out tests/fixtures     regenerate every tiny-* fixture (deterministic)
  make-cached-fixtures --root tests/fixtures
                                         write expected_generate_cached.json (KV cache trajectories) into each
  selftest --root tests/fixtures         reload fixtures, cross-check logits with a naive loop evaluation
  logits CKPT_DIR --ids 1,2,3            print logits of one sequence (debugging)
  generate CKPT_DIR --prompt 1,2,3 ...   run the reverse process and print the trace (debugging)
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_layers import as_torch, load_checkpoint, rms_norm, rope, swiglu  # noqa: E402
from safetensors_io import f32_to_bf16_bits, read_checkpoint_tensors, write_safetensors  # noqa: E402

torch.set_num_threads(1)  # one thread: identical float64 sums on every rerun
torch.set_default_dtype(torch.float64)

PREFIX = "model.transformer."


# --------------------------------------------------------------------------------------------------
# Mask predictor (spec section 4), float64 throughout.
# --------------------------------------------------------------------------------------------------


class LladaReference:
    """Dense LLaDA mask predictor: weights widened exactly to float64, all arithmetic in float64."""

    def __init__(self, config, tensors):
        self.config = config
        self.d = config["d_model"]
        self.n_layers = config["n_layers"]
        self.n_heads = config["n_heads"]
        self.n_kv_heads = config.get("n_kv_heads") or self.n_heads
        self.head_dim = self.d // self.n_heads
        self.eps = config["rms_norm_eps"]
        self.theta = config["rope_theta"]
        self.w = as_torch(tensors)
        emb = config.get("embedding_size") or config["vocab_size"]
        if self.w[PREFIX + "wte.weight"].shape != (emb, self.d):
            raise ValueError(f"wte.weight shape {tuple(self.w[PREFIX + 'wte.weight'].shape)} != {(emb, self.d)}")
        self.head = self.w[PREFIX + "wte.weight"] if config["weight_tying"] else self.w[PREFIX + "ff_out.weight"]

    @staticmethod
    def load(directory):
        return LladaReference(*load_checkpoint(directory))

    def _rms(self, x, weight):
        return rms_norm(x, weight, self.eps)

    def forward(self, input_ids, key_mask=None, store=None, window=None, cached=None):
        """input_ids: [B, T] ints; key_mask: [B, T] bools (True = real token) or None. Returns [B, T, E] float64.

        Approximate KV cache (Fast-dLLM): `store`, a list, receives each layer's (k, v) after RoPE,
        [B, kv_heads, T, head_dim]. With `window` (s, e) and `cached` (such a list from an earlier pass) only
        positions s..e-1 are run: their queries attend to their own fresh k/v and to the cached k/v of every other
        position; the result is [B, e - s, E] for those positions.
        """
        ids = torch.as_tensor(input_ids, dtype=torch.long)
        b, t = ids.shape
        s, e = window if window is not None else (0, t)
        w = e - s
        h = self.w[PREFIX + "wte.weight"][ids[:, s:e]]
        positions = torch.arange(s, e)  # absolute positions, also for left-padded rows
        hd, nh, nkv = self.head_dim, self.n_heads, self.n_kv_heads
        if key_mask is not None:
            km = torch.as_tensor(key_mask, dtype=torch.bool)
        for i in range(self.n_layers):
            p = f"{PREFIX}blocks.{i}."
            x = self._rms(h, self.w[p + "attn_norm.weight"])
            q = (x @ self.w[p + "q_proj.weight"].T).view(b, w, nh, hd).transpose(1, 2)
            k = (x @ self.w[p + "k_proj.weight"].T).view(b, w, nkv, hd).transpose(1, 2)
            v = (x @ self.w[p + "v_proj.weight"].T).view(b, w, nkv, hd).transpose(1, 2)
            q = rope(q, positions, self.theta)
            k = rope(k, positions, self.theta)
            if cached is not None:
                ck, cv = cached[i]
                k = torch.cat([ck[:, :, :s], k, ck[:, :, e:]], dim=2)
                v = torch.cat([cv[:, :, :s], v, cv[:, :, e:]], dim=2)
            if store is not None:
                store.append((k, v))
            group = nh // nkv  # query head h reads kv head h // group
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)  # [B, H, W, T], no causal mask
            if key_mask is not None:
                scores = scores.masked_fill(~km[:, None, None, :], float("-inf"))
            attn = torch.softmax(scores, dim=-1) @ v
            attn = attn.transpose(1, 2).reshape(b, w, nh * hd)
            h = h + attn @ self.w[p + "attn_out.weight"].T
            x = self._rms(h, self.w[p + "ff_norm.weight"])
            h = h + swiglu(x, self.w[p + "ff_proj.weight"], self.w[p + "up_proj.weight"], self.w[p + "ff_out.weight"])
        h = self._rms(h, self.w[PREFIX + "ln_f.weight"])
        return h @ self.head.T


# --------------------------------------------------------------------------------------------------
# Reverse process (spec section 2), greedy (temperature 0), low_confidence remasking.
# --------------------------------------------------------------------------------------------------


def transfer_schedule(n, steps_per_block):
    """Tokens to commit at each step of a block with n masks: floor(n/s), plus one for the first n mod s steps."""
    base, extra = divmod(n, steps_per_block)
    return [base + (1 if s < extra else 0) for s in range(steps_per_block)]


def generate(model, prompt, opts, mask_id):
    """Greedy reverse process. Returns (gen tokens, per-step trace, margin stats).

    opts keys: gen_length, steps, block_length, temperature (must be 0), cfg_scale, remasking
    ("low_confidence"), logits_eos_inf, confidence_eos_eot_inf, eos_id, eot_id, threshold, factor, and optionally
    cache: None, "prefix" or "dual" (Fast-dLLM approximate KV cache). With a cache the first evaluation of each block
    is a full pass that stores every position's k/v; later evaluations of the block run only a window with the
    cached k/v elsewhere: prefix = the block and everything after it (the cached prompt and finished blocks are
    reused), dual = the block alone (the masked suffix's k/v are reused too).
    """
    if opts["temperature"] != 0 or opts["remasking"] != "low_confidence":
        raise ValueError("reference covers temperature 0 with low_confidence remasking only")
    gen, bl = opts["gen_length"], opts["block_length"]
    if gen % bl:
        raise ValueError("gen_length must be divisible by block_length")
    n_blocks = gen // bl
    parallel = opts.get("threshold") is not None or opts.get("factor") is not None
    if not parallel and opts["steps"] % n_blocks:
        raise ValueError("steps must be divisible by the number of blocks")
    eos, eot = opts["eos_id"], opts["eot_id"]
    plen = len(prompt)
    x = list(prompt) + [mask_id] * gen
    trace = []
    margins = {"min_logit_gap": math.inf, "min_conf_gap": math.inf, "min_conf_rel_gap": math.inf}

    cache_mode = opts.get("cache")
    if cache_mode not in (None, "prefix", "dual"):
        raise ValueError(f"unknown cache mode {cache_mode!r}")
    caches = {}

    def run(seq, branch, first, s0, s1):
        if cache_mode is None:
            return model.forward([seq])[0]
        if first:
            caches[branch] = []
            return model.forward([seq], store=caches[branch])[0]
        end = s1 if cache_mode == "dual" else len(seq)
        out = torch.zeros(len(seq), model.head.shape[0])  # rows outside the window are never read
        out[s0:end] = model.forward([seq], window=(s0, end), cached=caches[branch])[0]
        return out

    def step_logits(first, s0, s1):
        c = run(x, "conditional", first, s0, s1)
        if opts["cfg_scale"] > 0:
            un = [mask_id] * plen + x[plen:]
            u = run(un, "unconditional", first, s0, s1)
            c = u + (opts["cfg_scale"] + 1.0) * (c - u)
        if opts["logits_eos_inf"]:
            c = c.clone()
            c[:, eos] = float("-inf")  # after CFG, so no inf - inf
        return c

    for blk in range(n_blocks):
        s0, s1 = plen + blk * bl, plen + (blk + 1) * bl
        if parallel:
            schedule = None
        else:
            n = sum(1 for i in range(s0, s1) if x[i] == mask_id)
            schedule = transfer_schedule(n, opts["steps"] // n_blocks)
        step_in_block = 0
        while True:
            masked = [i for i in range(s0, s1) if x[i] == mask_id]
            if schedule is not None:
                if step_in_block >= len(schedule):
                    break
                k_sched = schedule[step_in_block]
            elif not masked:
                break
            logits = step_logits(step_in_block == 0, s0, s1)
            probs = torch.softmax(logits, dim=-1)
            cand = torch.argmax(logits, dim=-1)  # ties -> lowest token id
            conf = probs.gather(-1, cand[:, None])[:, 0].clone()
            if opts["confidence_eos_eot_inf"]:
                conf[(cand == eos) | (cand == eot)] = float("-inf")
            # Only masked positions of the current block compete; positions after the block are -inf
            # and never win over an in-block masked position (k never exceeds the masked count).
            order = sorted(masked, key=lambda i: (-conf[i].item(), i))
            confs = [conf[i].item() for i in order]
            if schedule is not None:
                k = k_sched
                if 0 < k < len(order):
                    _note_conf_gap(margins, confs[k - 1], confs[k])
            elif opts.get("threshold") is not None:
                tau = opts["threshold"]
                k = max(1, sum(1 for c in confs if c >= tau))
                for c in confs:
                    _note_conf_gap(margins, c, tau)
            else:
                f = opts["factor"]
                k = 0
                # 1-based rank i: commit the largest n with c_i >= 1 - f/(i+1) for all i <= n.
                while k < len(confs) and confs[k] >= 1.0 - f / (k + 2):
                    k += 1
                for i, c in enumerate(confs):
                    _note_conf_gap(margins, c, 1.0 - f / (i + 2))
                k = max(1, k)
            chosen = sorted(order[:k])
            # The candidate's identity is a decision at committed positions, and at every competing
            # position when EOS/EOT candidates are demoted; elsewhere only its (continuous) probability counts.
            decided = masked if opts["confidence_eos_eot_inf"] else chosen
            for i in masked:
                if int(cand[i]) == mask_id:
                    raise MaskPredictedError(f"mask token is the argmax at position {i}")
            for i in decided:
                top2 = torch.topk(logits[i], 2).values
                margins["min_logit_gap"] = min(margins["min_logit_gap"], (top2[0] - top2[1]).item())
            for i in chosen:
                x[i] = int(cand[i])
            trace.append({"block": blk, "positions": chosen, "tokens": [x[i] for i in chosen]})
            step_in_block += 1
    return x[plen:], trace, margins


class MaskPredictedError(ValueError):
    """The mask token won the argmax at a masked position: behaviour left undefined, fixtures avoid it."""


def _note_conf_gap(margins, a, b):
    if math.isinf(a) or math.isinf(b):
        return
    gap = abs(a - b)
    margins["min_conf_gap"] = min(margins["min_conf_gap"], gap)
    margins["min_conf_rel_gap"] = min(margins["min_conf_rel_gap"], gap / max(abs(a), abs(b)))


# --------------------------------------------------------------------------------------------------
# Tiny checkpoint generator.
# --------------------------------------------------------------------------------------------------


def make_config(spec):
    return {
        "model_type": "llada",
        "architectures": ["LLaDAModelLM"],
        "d_model": spec["d_model"],
        "n_layers": spec["n_layers"],
        "n_heads": spec["n_heads"],
        "n_kv_heads": spec["n_kv_heads"],
        "mlp_hidden_size": spec["mlp"],
        "vocab_size": spec["vocab"],
        "embedding_size": spec["embedding"],
        "max_sequence_length": 128,
        "rope_theta": spec["rope_theta"],
        "rms_norm_eps": spec["rms_norm_eps"],
        "activation_type": "silu",
        "layer_norm_type": "rms",
        "weight_tying": spec["tied"],
        "include_bias": False,
        "rope": True,
        "block_type": "llama",
        "eos_token_id": spec["eos"],
        "pad_token_id": spec["eos"],
        "mask_token_id": spec["mask"],
    }


def make_weights(spec, seed):
    """Random float32 weights (name order = file order). Scales keep logits well separated."""
    rng = np.random.RandomState(seed)
    d, ff, emb = spec["d_model"], spec["mlp"], spec["embedding"]
    hd = d // spec["n_heads"]
    kvd = spec["n_kv_heads"] * hd

    def normal(shape, std):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def norm_weight():
        return (1.0 + rng.standard_normal(d) * 0.1).astype(np.float32)

    w = [(PREFIX + "wte.weight", normal((emb, d), 1.0))]
    for i in range(spec["n_layers"]):
        p = f"{PREFIX}blocks.{i}."
        w += [
            (p + "attn_norm.weight", norm_weight()),
            (p + "q_proj.weight", normal((d, d), 0.2)),
            (p + "k_proj.weight", normal((kvd, d), 0.2)),
            (p + "v_proj.weight", normal((kvd, d), 0.2)),
            (p + "attn_out.weight", normal((d, d), 0.15)),
            (p + "ff_norm.weight", norm_weight()),
            (p + "ff_proj.weight", normal((ff, d), 0.15)),
            (p + "up_proj.weight", normal((ff, d), 0.15)),
            (p + "ff_out.weight", normal((d, ff), 0.15)),
        ]
    w.append((PREFIX + "ln_f.weight", norm_weight()))
    if not spec["tied"]:
        w.append((PREFIX + "ff_out.weight", normal((emb, d), 0.3)))
    return w


def boost_end_tokens(spec, weights, seed):
    """Make EOS / EOT frequent argmax winners, so the EOS/EOT options visibly change trajectories.

    The LM-head rows of EOS and EOT are pointed along the mean final hidden state of random canvases
    (untied head) or the same is done to their embedding rows (tied), scaled by spec["eos_boost"].
    """
    names = [n for n, _ in weights]
    head_name = PREFIX + ("wte.weight" if spec["tied"] else "ff_out.weight")
    cfg = make_config(spec)
    model = LladaReference(cfg, {n: a.astype(np.float64) for n, a in weights})
    rng = np.random.RandomState(seed + 7)
    ids = rng.randint(0, spec["vocab"], size=(4, 16))
    ids[:, 8:] = spec["mask"]
    # Final normed hidden = logits computed against an identity head.
    model.head = torch.eye(spec["d_model"])
    hid = model.forward(ids.tolist()).reshape(-1, spec["d_model"]).numpy()
    mean = hid.mean(0)
    head = dict(weights)[head_name].copy()
    row_norm = np.linalg.norm(head, axis=1).mean()
    direction = mean / np.linalg.norm(mean)
    head[spec["eos"]] = (direction * row_norm * spec["eos_boost"] + head[spec["eos"]] * 0.5).astype(np.float32)
    head[spec["eot"]] = (direction * row_norm * spec["eos_boost"] * 0.97 + head[spec["eot"]] * 0.5).astype(np.float32)
    # The mask token must never be a candidate (what to commit then is undefined). Untied: point its
    # head row away from the mean state. Tied: the row is also the mask's input embedding, which the
    # residual stream carries to the output, so shrink it instead.
    if spec["tied"]:
        head[spec["mask"]] *= 0.05
    else:
        head[spec["mask"]] = (-direction * row_norm + head[spec["mask"]] * 0.5).astype(np.float32)
    weights[names.index(head_name)] = (head_name, head)
    return weights


def quantize(weights, dtype):
    """Stored form of each weight plus the exact float64 values the reference computes with."""
    stored, exact = [], {}
    for name, a in weights:
        if dtype == "bfloat16":
            bits = f32_to_bf16_bits(a)
            stored.append((name, "BF16", bits))
            exact[name] = (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            stored.append((name, "F32", a))
            exact[name] = a.astype(np.float64)
    return stored, exact


def write_checkpoint(directory, config, stored, shards):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    if shards == 1:
        write_safetensors(os.path.join(directory, "model.safetensors"), stored)
        return
    # Split by tensor order: shard 1 = embeddings + first half of the blocks, shard 2 = the rest.
    half = config["n_layers"] // 2
    first = [t for t in stored if t[0] == PREFIX + "wte.weight" or any(t[0].startswith(f"{PREFIX}blocks.{i}.") for i in range(half))]
    second = [t for t in stored if t not in first]
    files = [f"model-0000{i + 1}-of-00002.safetensors" for i in range(2)]
    weight_map = {}
    total = 0
    for fname, part in zip(files, (first, second)):
        write_safetensors(os.path.join(directory, fname), part)
        for name, _, arr in part:
            weight_map[name] = fname
            total += arr.nbytes
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
        f.write("\n")


# --------------------------------------------------------------------------------------------------
# Fixtures.
# --------------------------------------------------------------------------------------------------

FIXTURES = [
    {
        "name": "tiny-mha-f32",
        "description": "multi-head attention (n_kv_heads == n_heads), untied LM head, float32, single file",
        "d_model": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 4, "mlp": 96,
        "vocab": 128, "embedding": 128, "tied": False, "dtype": "float32", "shards": 1,
        "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "eos": 120, "eot": 122, "mask": 126,
    },
    {
        "name": "tiny-gqa-tied-f32",
        "description": "grouped-query attention (4 query heads, 2 kv heads), tied LM head (wte), float32, single file",
        "d_model": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "mlp": 96,
        "vocab": 160, "embedding": 160, "tied": True, "dtype": "float32", "shards": 1,
        "rope_theta": 500000.0, "rms_norm_eps": 1e-6, "eos": 150, "eot": 153, "mask": 156,
    },
    {
        "name": "tiny-gqa-bf16",
        "description": "grouped-query attention (4 query heads, 1 kv head), untied LM head, bfloat16, single file",
        "d_model": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 1, "mlp": 172,
        "vocab": 200, "embedding": 200, "tied": False, "dtype": "bfloat16", "shards": 1,
        "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "eos": 190, "eot": 193, "mask": 196,
    },
    {
        "name": "tiny-padded-sharded",
        "description": "embedding_size (160) > vocab_size (150), tied LM head, 3 heads of 16, float32, "
                       "two shards with model.safetensors.index.json",
        "d_model": 48, "n_layers": 2, "n_heads": 3, "n_kv_heads": 3, "mlp": 128,
        "vocab": 150, "embedding": 160, "tied": True, "dtype": "float32", "shards": 2,
        "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "eos": 140, "eot": 143, "mask": 146,
    },
]


def base_options(spec, **kw):
    o = {
        "gen_length": 8, "steps": 8, "block_length": 8, "temperature": 0.0, "cfg_scale": 0.0,
        "remasking": "low_confidence", "logits_eos_inf": False, "confidence_eos_eot_inf": False,
        "eos_id": spec["eos"], "eot_id": spec["eot"], "threshold": None, "factor": None,
    }
    o.update(kw)
    return o


def generate_cases(spec):
    """(name, description, prompt, options) for every golden trajectory."""
    specials = {spec["eos"], spec["eot"], spec["mask"]}
    rng = np.random.RandomState(1000 + spec["vocab"])
    ordinary = [t for t in range(spec["vocab"]) if t not in specials]
    p1 = [int(t) for t in rng.choice(ordinary, 5)]
    p2 = [int(t) for t in rng.choice(ordinary, 7)]
    o = lambda **kw: base_options(spec, **kw)  # noqa: E731
    return [
        ("pure_diffusion", "block_length = gen_length, 2 tokens per step", p1,
         o(gen_length=12, steps=6, block_length=12)),
        ("semi_ar", "3 blocks of 4, 2 steps per block (k = 2,2)", p2,
         o(gen_length=12, steps=6, block_length=4)),
        ("uneven_schedule", "2 blocks of 8, 3 steps per block (k = 3,3,2)", p1,
         o(gen_length=16, steps=6, block_length=8)),
        ("cfg", "classifier-free guidance cfg_scale 1.5, 2 blocks of 6", p2,
         o(gen_length=12, steps=6, block_length=6, cfg_scale=1.5)),
        ("logits_eos_inf", "EOS logit forced to -inf", p1,
         o(gen_length=12, steps=6, block_length=12, logits_eos_inf=True)),
        ("confidence_eos_eot_inf", "EOS and EOT candidates get confidence -inf", p1,
         o(gen_length=12, steps=6, block_length=12, confidence_eos_eot_inf=True)),
        ("ar", "autoregressive: block_length 1, one token per step", p2,
         o(gen_length=8, steps=8, block_length=1)),
        ("cfg_baseline", "cfg case without guidance (only to check that cfg matters; not written)", p2,
         o(gen_length=12, steps=6, block_length=6)),
    ]


def logits_cases(spec):
    specials = {spec["eos"], spec["eot"], spec["mask"]}
    rng = np.random.RandomState(2000 + spec["vocab"])
    ordinary = [t for t in range(spec["vocab"]) if t not in specials]
    pad = spec["eos"]  # pad_token_id == eos_token_id
    single = [int(t) for t in rng.choice(ordinary, 4)] + [spec["mask"]] * 3 + [spec["eos"]]
    long_row = [int(t) for t in rng.choice(ordinary, 3)] + [spec["mask"]] * 4
    short_row = [int(t) for t in rng.choice(ordinary, 2)] + [spec["mask"]] * 2
    return [
        ("single", "one row, prompt + masks + EOS, no key mask", [single], None),
        ("left_padded", "two rows of lengths 7 and 4, the second left-padded with pad_token_id", [
            long_row, [pad] * 3 + short_row], [[1] * 7, [0] * 3 + [1] * 4]),
    ]


def run_case(model, spec, name, desc, prompt, opts, mask_id=None):
    tokens, trace, margins = generate(model, prompt, opts, spec["mask"] if mask_id is None else mask_id)
    return {"name": name, "description": desc, "prompt_ids": prompt, "options": opts,
            "token_ids": tokens, "steps": trace, "margins": margins}


def margin_problems(name, margins):
    problems = []
    if margins["min_logit_gap"] < 1e-3:
        problems.append(f"{name}: argmax logit gap {margins['min_logit_gap']:.2e} < 1e-3")
    if margins["min_conf_rel_gap"] < 1e-3:
        problems.append(f"{name}: relative confidence gap {margins['min_conf_rel_gap']:.2e} < 1e-3")
    return problems


def mixes_commit_sizes(case):
    sizes = [len(s["positions"]) for s in case["steps"]]
    return min(sizes) == 1 and max(sizes) >= 2


def pick_parallel_case(model, spec, kind, desc, prompt, grid, **kw):
    """First value of the grid whose trajectory mixes single and parallel commits with safe margins."""
    for value in grid:
        opts = base_options(spec, **{kind: value}, **kw)
        case = run_case(model, spec, kind, desc.format(value), prompt, opts)
        if mixes_commit_sizes(case) and not margin_problems(kind, case["margins"]):
            return case
    return None


class FixtureRejected(Exception):
    """A candidate checkpoint whose golden decisions are too close to call or whose option cases test nothing."""


def build_fixture(spec, seed, boost):
    """Checkpoint and golden cases for one (seed, EOS boost); raises FixtureRejected when unusable."""
    config = make_config(spec)
    weights = make_weights(spec, seed)
    weights = boost_end_tokens(dict(spec, eos_boost=boost), weights, seed)
    stored, exact = quantize(weights, spec["dtype"])
    model = LladaReference(config, exact)

    gen_out = []
    problems = []
    for name, desc, prompt, opts in generate_cases(spec):
        case = run_case(model, spec, name, desc, prompt, opts)
        problems += margin_problems(name, case["margins"])
        gen_out.append(case)
    by_name = {c["name"]: c for c in gen_out}
    base = by_name["pure_diffusion"]
    if by_name["logits_eos_inf"]["token_ids"] == base["token_ids"]:
        problems.append("logits_eos_inf does not change the output")
    if by_name["confidence_eos_eot_inf"]["steps"] == base["steps"]:
        problems.append("confidence_eos_eot_inf does not change the trajectory")
    if by_name["cfg"]["token_ids"] == by_name["cfg_baseline"]["token_ids"]:
        problems.append("cfg does not change the output")
    if problems:
        raise FixtureRejected("; ".join(problems))
    prompt = base["prompt_ids"]
    threshold = pick_parallel_case(model, spec, "threshold", "Fast-dLLM threshold {}, 2 blocks of 6 (steps unused)",
                                   prompt, [round(0.05 * i, 2) for i in range(19, 0, -1)],
                                   gen_length=12, steps=12, block_length=6)
    factor = pick_parallel_case(model, spec, "factor", "Fast-dLLM factor {}, 2 blocks of 6 (steps unused)",
                                prompt, [round(0.1 * i, 1) for i in range(1, 41)],
                                gen_length=12, steps=12, block_length=6)
    if threshold is None or factor is None:
        raise FixtureRejected("no threshold / factor value mixes single and parallel commits")
    gen_out = [c for c in gen_out if c["name"] != "cfg_baseline"] + [threshold, factor]

    logits_out = []
    for name, desc, ids, km in logits_cases(spec):
        lg = model.forward(ids, None if km is None else [[bool(v) for v in r] for r in km])
        logits_out.append({"name": name, "description": desc, "input_ids": ids, "key_mask": km,
                           "logits": lg.tolist()})
    worst = {k: min(c["margins"][k] for c in gen_out) for k in gen_out[0]["margins"]}
    return config, stored, logits_out, gen_out, worst


def dump_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def make_fixtures(out_root, verbose=True):
    summary = {}
    for spec in FIXTURES:
        result = None
        for seed in range(1, 41):
            for boost in (0.4, 0.6, 0.8, 1.0):
                try:
                    result = build_fixture(spec, seed, boost)
                    break
                except (FixtureRejected, MaskPredictedError) as e:
                    if verbose:
                        print(f"{spec['name']}: seed {seed} boost {boost} rejected: {str(e)[:200]}", file=sys.stderr)
            if result is not None:
                break
        if result is None:
            raise RuntimeError(f"{spec['name']}: no usable seed")
        config, stored, logits_out, gen_out, worst = result
        directory = os.path.join(out_root, spec["name"])
        os.makedirs(directory, exist_ok=True)
        for f in os.listdir(directory):
            if f.endswith(".safetensors") or f.endswith(".json"):
                os.remove(os.path.join(directory, f))
        write_checkpoint(directory, config, stored, spec["shards"])
        fixture = {
            "name": spec["name"],
            "description": spec["description"],
            "dtype": spec["dtype"],
            "seed": seed,
            "eos_boost": boost,
            "mask_id": spec["mask"],
            "eos_id": spec["eos"],
            "eot_id": spec["eot"],
            "pad_id": spec["eos"],
            "vocab_size": spec["vocab"],
            "embedding_size": spec["embedding"],
            "sharded": spec["shards"] > 1,
            "logits_tolerance_relative": 1e-4,
            "margins": worst,
        }
        with open(os.path.join(directory, "fixture.json"), "w") as f:
            json.dump(fixture, f, indent=2)
            f.write("\n")
        dump_json(os.path.join(directory, "expected_logits.json"), {"cases": logits_out})
        dump_json(os.path.join(directory, "expected_generate.json"), {"cases": gen_out})
        summary[spec["name"]] = {"seed": seed, "eos_boost": boost, **worst}
        if verbose:
            print(f"{spec['name']}: seed {seed} boost {boost} {worst}", file=sys.stderr)
    return summary


CACHED_CASES = ["pure_diffusion", "semi_ar", "uneven_schedule", "cfg", "threshold", "factor"]


def cached_cases(model, directory, verbose=True):
    """The cases of expected_generate.json named in CACHED_CASES, rerun with cache prefix and dual.

    A case whose decisions are too close to call (margins below 1e-3) is left out and reported.
    """
    with open(os.path.join(directory, "expected_generate.json")) as f:
        vanilla = {c["name"]: c for c in json.load(f)["cases"]}
    out = []
    for name in CACHED_CASES:
        if name not in vanilla:  # the MoE fixtures (moe_ref.py) have no threshold / factor cases
            continue
        base = vanilla[name]
        for mode in ("prefix", "dual"):
            opts = dict(base["options"], cache=mode)
            case = run_case(model, None, f"{name}/{mode}", f"{base['description']}; {mode} KV cache",
                            base["prompt_ids"], opts, model.config["mask_token_id"])
            case["differs_from_uncached"] = case["token_ids"] != base["token_ids"] or case["steps"] != base["steps"]
            problems = margin_problems(case["name"], case["margins"])
            if problems:
                if verbose:
                    print(f"{directory}: left out {'; '.join(problems)}", file=sys.stderr)
                continue
            out.append(case)
    return out


def make_cached_fixtures(root, verbose=True):
    """Writes expected_generate_cached.json into every tiny-* fixture (the checkpoints are not touched)."""
    summary = {}
    for spec in FIXTURES:
        directory = os.path.join(root, spec["name"])
        model = LladaReference.load(directory)
        cases = cached_cases(model, directory, verbose)
        dump_json(os.path.join(directory, "expected_generate_cached.json"), {"cases": cases})
        summary[spec["name"]] = {"cases": len(cases), "differ_from_uncached": sum(c["differs_from_uncached"] for c in cases)}
    return summary


def naive_forward(config, tensors, ids, key_mask):
    """Second, loop-by-loop numpy evaluation of the same equations (one row), to cross-check forward()."""
    d, nh = config["d_model"], config["n_heads"]
    nkv = config.get("n_kv_heads") or nh
    hd = d // nh
    eps, theta = config["rms_norm_eps"], config["rope_theta"]
    w = tensors
    t_len = len(ids)

    def rms(v, g):
        return v / math.sqrt(sum(a * a for a in v) / len(v) + eps) * g

    def rope(vec, pos):
        out = np.empty(hd)
        for j in range(hd // 2):
            ang = pos * theta ** (-2.0 * j / hd)
            c, s_ = math.cos(ang), math.sin(ang)
            a, b = vec[j], vec[j + hd // 2]
            out[j] = a * c - b * s_
            out[j + hd // 2] = b * c + a * s_
        return out

    h = np.array([w[PREFIX + "wte.weight"][i] for i in ids])
    for layer in range(config["n_layers"]):
        p = f"{PREFIX}blocks.{layer}."
        x = np.array([rms(h[t], w[p + "attn_norm.weight"]) for t in range(t_len)])
        q, k, v = x @ w[p + "q_proj.weight"].T, x @ w[p + "k_proj.weight"].T, x @ w[p + "v_proj.weight"].T
        attn = np.zeros((t_len, d))
        for head in range(nh):
            kvh = head // (nh // nkv)
            for t in range(t_len):
                qt = rope(q[t, head * hd:(head + 1) * hd], t)
                scores = []
                for u in range(t_len):
                    if key_mask is not None and not key_mask[u]:
                        continue
                    ku = rope(k[u, kvh * hd:(kvh + 1) * hd], u)
                    scores.append((float(qt @ ku) / math.sqrt(hd), u))
                m = max(sc for sc, _ in scores)
                z = sum(math.exp(sc - m) for sc, _ in scores)
                for sc, u in scores:
                    attn[t, head * hd:(head + 1) * hd] += math.exp(sc - m) / z * v[u, kvh * hd:(kvh + 1) * hd]
        h = h + attn @ w[p + "attn_out.weight"].T
        x = np.array([rms(h[t], w[p + "ff_norm.weight"]) for t in range(t_len)])
        g, up = x @ w[p + "ff_proj.weight"].T, x @ w[p + "up_proj.weight"].T
        h = h + (g / (1.0 + np.exp(-g)) * up) @ w[p + "ff_out.weight"].T
    h = np.array([rms(h[t], w[PREFIX + "ln_f.weight"]) for t in range(t_len)])
    head_w = w[PREFIX + "wte.weight"] if config["weight_tying"] else w[PREFIX + "ff_out.weight"]
    return h @ head_w.T


def selftest(root):
    """Reloads every fixture from disk; checks logits against naive_forward and replays the trajectories."""
    worst = 0.0
    for spec in FIXTURES:
        directory = os.path.join(root, spec["name"])
        model = LladaReference.load(directory)
        tensors = read_checkpoint_tensors(directory)
        for case in check_reloaded_logits(model, directory, spec["name"]):
            km = case["key_mask"]
            for b, row in enumerate(case["input_ids"]):
                naive = naive_forward(model.config, tensors, row, None if km is None else km[b])
                ref = np.array(case["logits"][b])
                keep = [t for t in range(len(row)) if km is None or km[b][t]]
                err = np.abs(naive[keep] - ref[keep]).max() / np.abs(ref[keep]).max()
                worst = max(worst, err)
                if err > 1e-12:
                    raise AssertionError(f"{spec['name']}/{case['name']} row {b}: naive forward differs ({err:.2e})")
        replay_trajectories(model, directory, spec["name"])
    return {"max_relative_difference_naive_vs_torch": worst}


def check_reloaded_logits(model, directory, name):
    """Runs every case of expected_logits.json again; the logits must equal the stored ones exactly. Returns the cases."""
    with open(os.path.join(directory, "expected_logits.json")) as f:
        cases = json.load(f)["cases"]
    for case in cases:
        km = case["key_mask"]
        got = model.forward(case["input_ids"], None if km is None else [[bool(v) for v in r] for r in km])
        if got.tolist() != case["logits"]:
            raise AssertionError(f"{name}/{case['name']}: reloaded logits differ from the file")
    return cases


def replay_trajectories(model, directory, name):
    """Replays expected_generate.json and, when present, expected_generate_cached.json: every trajectory must match."""
    for file, what in (("expected_generate.json", "trajectory"), ("expected_generate_cached.json", "cached trajectory")):
        path = os.path.join(directory, file)
        if not os.path.exists(path) and what == "cached trajectory":
            continue  # written separately, by make-cached-fixtures
        with open(path) as f:
            cases = json.load(f)["cases"]
        for case in cases:
            tokens, trace, _ = generate(model, case["prompt_ids"], case["options"], model.config["mask_token_id"])
            if tokens != case["token_ids"] or trace != case["steps"]:
                raise AssertionError(f"{name}/{case['name']}: replayed {what} differs")


def _ids(s):
    return [int(t) for t in s.split(",") if t.strip()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mf = sub.add_parser("make-fixtures")
    mf.add_argument("--out", default="tests/fixtures")
    mc = sub.add_parser("make-cached-fixtures")
    mc.add_argument("--root", default="tests/fixtures")
    st = sub.add_parser("selftest")
    st.add_argument("--root", default="tests/fixtures")
    lg = sub.add_parser("logits")
    lg.add_argument("checkpoint")
    lg.add_argument("--ids", required=True)
    gn = sub.add_parser("generate")
    gn.add_argument("checkpoint")
    gn.add_argument("--prompt", required=True)
    gn.add_argument("--gen-length", type=int, default=16)
    gn.add_argument("--steps", type=int, default=16)
    gn.add_argument("--block-length", type=int, default=16)
    gn.add_argument("--cfg-scale", type=float, default=0.0)
    gn.add_argument("--logits-eos-inf", action="store_true")
    gn.add_argument("--confidence-eos-eot-inf", action="store_true")
    gn.add_argument("--eot-id", type=int, default=-1)
    gn.add_argument("--threshold", type=float)
    gn.add_argument("--factor", type=float)
    gn.add_argument("--cache", choices=["prefix", "dual"])
    a = ap.parse_args(argv)
    if a.cmd == "make-fixtures":
        print(json.dumps(make_fixtures(a.out), indent=2))
    elif a.cmd == "make-cached-fixtures":
        print(json.dumps(make_cached_fixtures(a.root), indent=2))
    elif a.cmd == "selftest":
        print(json.dumps(selftest(a.root)))
    elif a.cmd == "logits":
        m = LladaReference.load(a.checkpoint)
        print(json.dumps(m.forward([_ids(a.ids)])[0].tolist()))
    else:
        m = LladaReference.load(a.checkpoint)
        opts = {"gen_length": a.gen_length, "steps": a.steps, "block_length": a.block_length, "temperature": 0.0,
                "cfg_scale": a.cfg_scale, "remasking": "low_confidence", "logits_eos_inf": a.logits_eos_inf,
                "confidence_eos_eot_inf": a.confidence_eos_eot_inf, "eos_id": m.config["eos_token_id"],
                "eot_id": a.eot_id, "threshold": a.threshold, "factor": a.factor, "cache": a.cache}
        tokens, trace, margins = generate(m, _ids(a.prompt), opts, m.config["mask_token_id"])
        print(json.dumps({"token_ids": tokens, "steps": trace, "margins": margins}, indent=1))


if __name__ == "__main__":
    main()
