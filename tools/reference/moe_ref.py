#!/usr/bin/python3
"""Independent float64 PyTorch reference of the LLaDA-MoE mask predictor (LLADA_SPEC.md section 7).

Writes tiny random LLaDA-MoE checkpoints in the Hugging Face layout (model.embed_tokens, model.layers.{i}.self_attn.*,
q_norm/k_norm, mlp.gate router, mlp.experts.{e}.{gate,up,down}_proj, optional mlp.shared_experts and dense layers)
with expected logits and greedy trajectories into tests/fixtures/tiny-moe*/, in the same formats as llada_ref.py
(whose reverse process and case lists are reused: the sampler is not what this file tests).

Commands:
  make-fixtures --out tests/fixtures     regenerate every tiny-moe* fixture (deterministic)
  selftest --root tests/fixtures         reload, cross-check logits with a per-token loop over all experts, replay
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llada_ref import (  # noqa: E402
    MaskPredictedError, cached_cases, check_reloaded_logits, dump_json, generate, generate_cases, logits_cases, margin_problems,
    quantize, replay_trajectories, run_case)
from ref_layers import as_torch, load_checkpoint, rms_norm, rope, swiglu  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)


def moe_layers(config):
    """One flag per layer: True for a MoE layer (moe_layer_freq, else first_k_dense_replace, else all)."""
    n = config["num_hidden_layers"]
    if config.get("moe_layer_freq") is not None:
        return [bool(v) for v in config["moe_layer_freq"]]
    k = config.get("first_k_dense_replace") or 0
    return [i >= k for i in range(n)]


class MoeReference:
    """LLaDA-MoE mask predictor in float64; also records the smallest router top-k margin it has seen (the gap
    between the k-th and (k+1)-th router logit of any token)."""

    def __init__(self, config, tensors):
        self.c = self.config = config
        self.d = config["hidden_size"]
        self.nh = config["num_attention_heads"]
        self.nkv = config.get("num_key_value_heads") or self.nh
        self.hd = self.d // self.nh
        self.eps = config["rms_norm_eps"]
        self.theta = config["rope_theta"]
        self.k = config["num_experts_per_tok"]
        self.moe = moe_layers(config)
        self.w = as_torch(tensors)
        self.head = self.w["model.embed_tokens.weight"] if config["tie_word_embeddings"] else self.w["lm_head.weight"]
        self.min_router_gap = math.inf

    @staticmethod
    def load(directory):
        return MoeReference(*load_checkpoint(directory))

    def _rms(self, x, weight):
        return rms_norm(x, weight, self.eps)

    def _swiglu(self, x, p):
        return swiglu(x, self.w[p + "gate_proj.weight"], self.w[p + "up_proj.weight"], self.w[p + "down_proj.weight"])

    def _sparse_mlp(self, x, i):
        """x: [N, d]. Softmax router, top-k, weights not renormalised unless norm_topk_prob."""
        p = f"model.layers.{i}.mlp."
        logits = x @ self.w[p + "gate.weight"].T
        probs = torch.softmax(logits, dim=-1)
        ranked, _ = torch.sort(logits, dim=-1, descending=True)
        if probs.shape[-1] > self.k:
            self.min_router_gap = min(self.min_router_gap, (ranked[:, self.k - 1] - ranked[:, self.k]).min().item())
        top_w, top_e = torch.topk(probs, self.k, dim=-1)
        if self.c.get("norm_topk_prob"):
            top_w = top_w / top_w.sum(-1, keepdim=True)
        top_w = top_w * self.c.get("routed_scaling_factor", 1.0)
        out = torch.zeros_like(x)
        for e in range(self.c["num_experts"]):
            rows, slot = torch.nonzero(top_e == e, as_tuple=True)
            if len(rows):
                out[rows] += top_w[rows, slot][:, None] * self._swiglu(x[rows], f"{p}experts.{e}.")
        if self.c.get("shared_expert_intermediate_size"):
            out = out + self._swiglu(x, p + "shared_experts.")
        return out

    def forward(self, input_ids, key_mask=None, store=None, window=None, cached=None):
        """[B, T] ids -> [B, T, V] logits. Approximate KV cache as in llada_ref.LladaReference.forward: `store`
        receives each layer's (k, v) after QK-norm and RoPE; with `window` (s, e) and `cached` only s..e-1 run."""
        ids = torch.as_tensor(input_ids, dtype=torch.long)
        b, t_all = ids.shape
        s0, e0 = window if window is not None else (0, t_all)
        t = e0 - s0
        positions = torch.arange(s0, e0)
        h = self.w["model.embed_tokens.weight"][ids[:, s0:e0]]
        hd, nh, nkv = self.hd, self.nh, self.nkv
        for i in range(self.c["num_hidden_layers"]):
            p = f"model.layers.{i}."
            a = p + "self_attn."
            x = self._rms(h, self.w[p + "input_layernorm.weight"])
            q = (x @ self.w[a + "q_proj.weight"].T).view(b, t, nh, hd)
            k = (x @ self.w[a + "k_proj.weight"].T).view(b, t, nkv, hd)
            v = (x @ self.w[a + "v_proj.weight"].T).view(b, t, nkv, hd).transpose(1, 2)
            if self.c.get("qk_layernorm", True):
                q = self._rms(q, self.w[a + "q_norm.weight"])
                k = self._rms(k, self.w[a + "k_norm.weight"])
            q = rope(q.transpose(1, 2), positions, self.theta)
            k = rope(k.transpose(1, 2), positions, self.theta)
            if cached is not None:
                ck, cv = cached[i]
                k = torch.cat([ck[:, :, :s0], k, ck[:, :, e0:]], dim=2)
                v = torch.cat([cv[:, :, :s0], v, cv[:, :, e0:]], dim=2)
            if store is not None:
                store.append((k, v))
            k = k.repeat_interleave(nh // nkv, dim=1)
            v = v.repeat_interleave(nh // nkv, dim=1)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            if key_mask is not None:
                s = s.masked_fill(~torch.as_tensor(key_mask, dtype=torch.bool)[:, None, None, :], float("-inf"))
            att = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(b, t, self.d)
            h = h + att @ self.w[a + "o_proj.weight"].T
            x = self._rms(h, self.w[p + "post_attention_layernorm.weight"])
            if self.moe[i]:
                h = h + self._sparse_mlp(x.reshape(b * t, self.d), i).view(b, t, self.d)
            else:
                h = h + self._swiglu(x, p + "mlp.")
        return self._rms(h, self.w["model.norm.weight"]) @ self.head.T


FIXTURES = [
    {
        "name": "tiny-moe-f32",
        "description": "LLaDA-MoE layout: 2 MoE layers, 8 experts top-2 (not renormalised), QK-norm, untied head, float32",
        "d": 64, "layers": 2, "heads": 4, "kv_heads": 4, "dense_ff": 96, "experts": 8, "top_k": 2, "expert_ff": 32,
        "shared_ff": None, "norm_topk_prob": False, "scaling": 1.0, "moe_layer_freq": [1, 1], "first_k_dense": None,
        "vocab": 128, "tied": False, "dtype": "float32", "rope_theta": 50000.0, "rms_norm_eps": 1e-5,
        "eos": 120, "eot": 122, "mask": 126,
    },
    {
        "name": "tiny-moe-mixed-bf16",
        "description": "first layer dense (first_k_dense_replace 1), then 2 MoE layers of 6 experts top-3 renormalised "
                       "(norm_topk_prob) scaled by 1.5, a shared expert, GQA 4/2, tied embeddings, bfloat16",
        "d": 64, "layers": 3, "heads": 4, "kv_heads": 2, "dense_ff": 96, "experts": 6, "top_k": 3, "expert_ff": 24,
        "shared_ff": 48, "norm_topk_prob": True, "scaling": 1.5, "moe_layer_freq": None, "first_k_dense": 1,
        "vocab": 160, "tied": True, "dtype": "bfloat16", "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
        "eos": 150, "eot": 153, "mask": 156,
    },
]


def make_config(spec):
    c = {
        "model_type": "lladamoe", "architectures": ["LLaDAMoEModelLM"],
        "hidden_size": spec["d"], "num_hidden_layers": spec["layers"], "num_attention_heads": spec["heads"],
        "num_key_value_heads": spec["kv_heads"], "dense_intermediate_size": spec["dense_ff"],
        "num_experts": spec["experts"], "num_experts_per_tok": spec["top_k"],
        "expert_intermediate_size": spec["expert_ff"], "shared_expert_intermediate_size": spec["shared_ff"],
        "norm_topk_prob": spec["norm_topk_prob"], "routed_scaling_factor": spec["scaling"],
        "moe_router_score_function": "softmax", "qk_layernorm": True, "hidden_act": "silu", "attention_bias": False,
        "vocab_size": spec["vocab"], "max_position_embeddings": 128, "rope_theta": spec["rope_theta"],
        "rms_norm_eps": spec["rms_norm_eps"], "tie_word_embeddings": spec["tied"], "router_aux_loss_coef": 0.01,
        "eos_token_id": spec["eos"], "pad_token_id": spec["eos"], "mask_token_id": spec["mask"],
    }
    if spec["moe_layer_freq"] is not None:
        c["moe_layer_freq"] = spec["moe_layer_freq"]
    if spec["first_k_dense"] is not None:
        c["first_k_dense_replace"] = spec["first_k_dense"]
    return c


def make_weights(spec, seed):
    rng = np.random.RandomState(seed)
    d, hd = spec["d"], spec["d"] // spec["heads"]
    kvd = spec["kv_heads"] * hd

    def normal(shape, std):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def norm(n):
        return (1.0 + rng.standard_normal(n) * 0.1).astype(np.float32)

    def swiglu(prefix, ff):
        return [(prefix + "gate_proj.weight", normal((ff, d), 0.15)), (prefix + "up_proj.weight", normal((ff, d), 0.15)),
                (prefix + "down_proj.weight", normal((d, ff), 0.15))]

    emb = normal((spec["vocab"], d), 1.0)
    if spec["tied"]:
        emb[spec["mask"]] *= 0.05  # the mask's input row is also its output row: keep it from predicting itself
    w = [("model.embed_tokens.weight", emb)]
    flags = moe_layers(make_config(spec))
    for i in range(spec["layers"]):
        p = f"model.layers.{i}."
        w += [(p + "input_layernorm.weight", norm(d)),
              (p + "self_attn.q_proj.weight", normal((d, d), 0.2)),
              (p + "self_attn.k_proj.weight", normal((kvd, d), 0.2)),
              (p + "self_attn.v_proj.weight", normal((kvd, d), 0.2)),
              (p + "self_attn.o_proj.weight", normal((d, d), 0.15)),
              (p + "self_attn.q_norm.weight", norm(hd)),
              (p + "self_attn.k_norm.weight", norm(hd)),
              (p + "post_attention_layernorm.weight", norm(d))]
        if not flags[i]:
            w += swiglu(p + "mlp.", spec["dense_ff"])
            continue
        w.append((p + "mlp.gate.weight", normal((spec["experts"], d), 1.0)))
        for e in range(spec["experts"]):
            w += swiglu(f"{p}mlp.experts.{e}.", spec["expert_ff"])
        if spec["shared_ff"]:
            w += swiglu(p + "mlp.shared_experts.", spec["shared_ff"])
    w.append(("model.norm.weight", norm(d)))
    if not spec["tied"]:
        w.append(("lm_head.weight", normal((spec["vocab"], d), 0.3)))
    return w


class FixtureRejected(Exception):
    pass


def build_fixture(spec, seed):
    config = make_config(spec)
    stored, exact = quantize(make_weights(spec, seed), spec["dtype"])
    model = MoeReference(config, exact)
    gen_out, problems = [], []
    for name, desc, prompt, opts in generate_cases(spec):
        if name == "cfg_baseline":
            continue
        case = run_case(model, spec, name, desc, prompt, opts)
        problems += margin_problems(name, case["margins"])
        gen_out.append(case)
    logits_out = []
    for name, desc, ids, km in logits_cases(spec):
        lg = model.forward(ids, None if km is None else [[bool(v) for v in r] for r in km])
        logits_out.append({"name": name, "description": desc, "input_ids": ids, "key_mask": km, "logits": lg.tolist()})
    # A float32 implementation must pick the same experts: the k-th and (k+1)-th router logits of every token in
    # every evaluated canvas (pads included) must be far apart compared with float32 rounding (~1e-6 of a logit).
    if model.min_router_gap < 3e-4:
        problems.append(f"router top-k logit gap {model.min_router_gap:.2e} < 3e-4")
    if problems:
        raise FixtureRejected("; ".join(problems))
    worst = {k: min(c["margins"][k] for c in gen_out) for k in gen_out[0]["margins"]}
    worst["min_router_gap"] = model.min_router_gap
    return config, stored, logits_out, gen_out, worst, model


def make_fixtures(out_root):
    summary = {}
    for spec in FIXTURES:
        result = None
        for seed in range(1, 200):
            try:
                result = build_fixture(spec, seed)
                break
            except (FixtureRejected, MaskPredictedError) as e:
                print(f"{spec['name']}: seed {seed} rejected: {str(e)[:160]}", file=sys.stderr)
        if result is None:
            raise RuntimeError(f"{spec['name']}: no usable seed")
        config, stored, logits_out, gen_out, worst, model = result
        directory = os.path.join(out_root, spec["name"])
        os.makedirs(directory, exist_ok=True)
        for f in os.listdir(directory):
            if f.endswith(".safetensors") or f.endswith(".json"):
                os.remove(os.path.join(directory, f))
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
        write_safetensors(os.path.join(directory, "model.safetensors"), stored)
        fixture = {"name": spec["name"], "description": spec["description"], "dtype": spec["dtype"], "seed": seed,
                   "mask_id": spec["mask"], "eos_id": spec["eos"], "eot_id": spec["eot"], "pad_id": spec["eos"],
                   "vocab_size": spec["vocab"], "embedding_size": spec["vocab"], "sharded": False,
                   "logits_tolerance_relative": 1e-4, "margins": worst}
        with open(os.path.join(directory, "fixture.json"), "w") as f:
            json.dump(fixture, f, indent=2)
            f.write("\n")
        dump_json(os.path.join(directory, "expected_logits.json"), {"cases": logits_out})
        dump_json(os.path.join(directory, "expected_generate.json"), {"cases": gen_out})
        # KV-cache trajectories (llada_ref.cached_cases); their windows route new token states, so recheck the gap.
        cached = cached_cases(model, directory)
        if model.min_router_gap < 3e-4:
            raise RuntimeError(f"{spec['name']}: cached runs route within {model.min_router_gap:.2e} of a tie")
        dump_json(os.path.join(directory, "expected_generate_cached.json"), {"cases": cached})
        worst["min_router_gap"] = model.min_router_gap
        with open(os.path.join(directory, "fixture.json"), "w") as f:
            json.dump(dict(fixture, margins=worst), f, indent=2)
            f.write("\n")
        summary[spec["name"]] = {"seed": seed, "cached_cases": len(cached),
                                 "cached_differ": sum(c["differs_from_uncached"] for c in cached), **worst}
        print(f"{spec['name']}: seed {seed} {worst}", file=sys.stderr)
    return summary


def loop_forward_mlp(model, x, i):
    """Per token, every expert evaluated and weighted by its (possibly zero) routing weight: a second formulation."""
    p = f"model.layers.{i}.mlp."
    w = {n: a.numpy() for n, a in model.w.items() if n.startswith(p)}
    out = np.zeros_like(x)
    for t in range(x.shape[0]):
        logits = w[p + "gate.weight"] @ x[t]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        chosen = sorted(range(len(probs)), key=lambda e: (-probs[e], e))[: model.k]
        total = sum(probs[e] for e in chosen) if model.c.get("norm_topk_prob") else 1.0
        for e in range(len(probs)):
            weight = probs[e] / total * model.c.get("routed_scaling_factor", 1.0) if e in chosen else 0.0
            q = f"{p}experts.{e}."
            g, u = w[q + "gate_proj.weight"] @ x[t], w[q + "up_proj.weight"] @ x[t]
            out[t] += weight * (w[q + "down_proj.weight"] @ (g / (1 + np.exp(-g)) * u))
        if model.c.get("shared_expert_intermediate_size"):
            q = p + "shared_experts."
            g, u = w[q + "gate_proj.weight"] @ x[t], w[q + "up_proj.weight"] @ x[t]
            out[t] += w[q + "down_proj.weight"] @ (g / (1 + np.exp(-g)) * u)
    return out


def selftest(root):
    worst = 0.0
    for spec in FIXTURES:
        directory = os.path.join(root, spec["name"])
        model = MoeReference.load(directory)
        check_reloaded_logits(model, directory, spec["name"])
        # The sparse MLP against the all-experts loop on random states.
        x = np.random.RandomState(5).standard_normal((7, model.d))
        for i, is_moe in enumerate(model.moe):
            if is_moe:
                a = model._sparse_mlp(torch.from_numpy(x), i).numpy()
                b = loop_forward_mlp(model, x, i)
                worst = max(worst, float(np.abs(a - b).max() / np.abs(b).max()))
        replay_trajectories(model, directory, spec["name"])
    if worst > 1e-12:
        raise AssertionError(f"sparse MLP differs from the all-experts loop ({worst:.2e})")
    return {"max_relative_difference_sparse_vs_loop": worst}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("make-fixtures").add_argument("--out", default="tests/fixtures")
    sub.add_parser("selftest").add_argument("--root", default="tests/fixtures")
    a = ap.parse_args(argv)
    print(json.dumps(make_fixtures(a.out) if a.cmd == "make-fixtures" else selftest(a.root), indent=2))


if __name__ == "__main__":
    main()
