#!/usr/bin/python3
"""Times one forward pass of a LLaDA-shaped random model in PyTorch (CPU, 2 threads by default).

The random checkpoint is written in the Hugging Face LLaDA layout (config.json + model.safetensors)
under --out/<dtype>/ so the C# side can benchmark exactly the same file. Prints one JSON line per dtype:
{"dtype", "forward_ms_median", "forward_ms_min", "runs", "tokens", "checkpoint", ...}.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import f32_to_bf16_bits, write_safetensors  # noqa: E402

P = "model.transformer."


def random_weights(a):
    """float32 weights, std 0.02 for matrices and 1 for norm weights; name order = file order."""
    rng = np.random.default_rng(a.seed)
    d, ff, v = a.d_model, a.mlp, a.vocab
    hd = d // a.n_heads
    kvd = a.n_kv_heads * hd

    def normal(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    w = [(P + "wte.weight", normal(v, d))]
    for i in range(a.n_layers):
        b = f"{P}blocks.{i}."
        w += [(b + "attn_norm.weight", np.ones(d, np.float32)), (b + "q_proj.weight", normal(d, d)),
              (b + "k_proj.weight", normal(kvd, d)), (b + "v_proj.weight", normal(kvd, d)),
              (b + "attn_out.weight", normal(d, d)), (b + "ff_norm.weight", np.ones(d, np.float32)),
              (b + "ff_proj.weight", normal(ff, d)), (b + "up_proj.weight", normal(ff, d)),
              (b + "ff_out.weight", normal(d, ff))]
    w += [(P + "ln_f.weight", np.ones(d, np.float32)), (P + "ff_out.weight", normal(v, d))]
    return w


def config(a):
    return {"model_type": "llada", "architectures": ["LLaDAModelLM"], "d_model": a.d_model, "n_layers": a.n_layers,
            "n_heads": a.n_heads, "n_kv_heads": a.n_kv_heads, "mlp_hidden_size": a.mlp, "vocab_size": a.vocab,
            "embedding_size": a.vocab, "max_sequence_length": max(4096, a.tokens), "rope_theta": 500000.0,
            "rms_norm_eps": 1e-5, "activation_type": "silu", "layer_norm_type": "rms", "weight_tying": False,
            "include_bias": False, "rope": True, "block_type": "llama", "eos_token_id": a.vocab - 3,
            "pad_token_id": a.vocab - 3, "mask_token_id": a.vocab - 2}


def write_checkpoint(directory, cfg, weights, dtype):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    if dtype == "bfloat16":
        stored = [(n, "BF16", f32_to_bf16_bits(x)) for n, x in weights]
    else:
        stored = [(n, "F32", x) for n, x in weights]
    write_safetensors(os.path.join(directory, "model.safetensors"), stored)


def forward(w, cfg, ids):
    """Dense LLaDA forward in the weights' dtype (one sequence, no padding)."""
    d, nh, nkv = cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"]
    hd, eps, t = d // nh, cfg["rms_norm_eps"], ids.shape[0]
    dt = w[P + "wte.weight"].dtype

    def rms(x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g

    inv = cfg["rope_theta"] ** (-2.0 * torch.arange(hd // 2, dtype=torch.float32) / hd)
    ang = torch.arange(t, dtype=torch.float32)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], -1)
    cos, sin = ang.cos().to(dt), ang.sin().to(dt)

    def rope(x):
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    h = w[P + "wte.weight"][ids]
    for i in range(cfg["n_layers"]):
        b = f"{P}blocks.{i}."
        x = rms(h, w[b + "attn_norm.weight"])
        q = rope((x @ w[b + "q_proj.weight"].T).view(t, nh, hd).transpose(0, 1))
        k = rope((x @ w[b + "k_proj.weight"].T).view(t, nkv, hd).transpose(0, 1))
        v = (x @ w[b + "v_proj.weight"].T).view(t, nkv, hd).transpose(0, 1)
        k, v = k.repeat_interleave(nh // nkv, 0), v.repeat_interleave(nh // nkv, 0)
        att = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(hd), -1) @ v
        h = h + att.transpose(0, 1).reshape(t, d) @ w[b + "attn_out.weight"].T
        x = rms(h, w[b + "ff_norm.weight"])
        h = h + (torch.nn.functional.silu(x @ w[b + "ff_proj.weight"].T) * (x @ w[b + "up_proj.weight"].T)) \
            @ w[b + "ff_out.weight"].T
    head = w[P + "wte.weight"] if cfg.get("weight_tying") else w[P + "ff_out.weight"]
    return rms(h, w[P + "ln_f.weight"]) @ head.T


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d-model", type=int, default=1024)
    ap.add_argument("--n-layers", type=int, default=8)
    ap.add_argument("--n-heads", type=int, default=16)
    ap.add_argument("--n-kv-heads", type=int, default=None, help="default: n_heads")
    ap.add_argument("--mlp", type=int, default=2816)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["float32", "bfloat16", "both"], default="both")
    ap.add_argument("--out", default="/tmp/llada-bench", help="checkpoints go to OUT/float32 and OUT/bfloat16")
    ap.add_argument("--no-write", action="store_true", help="do not write the checkpoint files")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time by this thread's CPU clock (needs --threads 1): robust on a busy machine")
    a = ap.parse_args()
    a.n_kv_heads = a.n_kv_heads or a.n_heads
    if a.cpu_time and a.threads != 1:
        ap.error("--cpu-time measures the calling thread only; use it with --threads 1")
    clock = time.thread_time if a.cpu_time else time.perf_counter
    torch.set_num_threads(a.threads)
    cfg = config(a)
    weights = random_weights(a)
    ids = torch.from_numpy(np.random.RandomState(a.seed + 1).randint(0, a.vocab, a.tokens))
    dtypes = ["float32", "bfloat16"] if a.dtype == "both" else [a.dtype]
    for dtype in dtypes:
        directory = os.path.join(a.out, dtype)
        if not a.no_write:
            write_checkpoint(directory, cfg, weights, dtype)
        tdt = torch.float32 if dtype == "float32" else torch.bfloat16
        w = {n: torch.from_numpy(x).to(tdt) for n, x in weights}  # to(bfloat16) rounds to nearest even, as the file
        times = []
        with torch.no_grad():
            for r in range(a.warmup + a.runs):
                t0 = clock()
                forward(w, cfg, ids)
                if r >= a.warmup:
                    times.append((clock() - t0) * 1000.0)
        print(json.dumps({"dtype": dtype, "forward_ms_median": statistics.median(times), "forward_ms_min": min(times),
                          "runs": a.runs, "threads": a.threads, "cpu_time": a.cpu_time, "tokens": a.tokens, "d_model": a.d_model,
                          "n_layers": a.n_layers, "n_heads": a.n_heads, "n_kv_heads": a.n_kv_heads, "mlp": a.mlp,
                          "vocab": a.vocab, "torch": torch.__version__,
                          "checkpoint": None if a.no_write else directory}), flush=True)
        del w


if __name__ == "__main__":
    main()
