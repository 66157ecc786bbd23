#!/usr/bin/python3
"""Training throughput of the LLaDA mask predictor in PyTorch (CPU), for comparison with `llada train`.

Same model as our `tiny`/`small` run configs (dense LLaDA block: RMSNorm, RoPE, GQA attention without a causal
mask, SwiGLU, tied or separate LM head), the same step: Eq. 3 masked-diffusion loss (t ~ U[0,1],
p_mask = (1 - 1e-3) t + 1e-3, cross-entropy on masked positions weighted by 1/p_mask), backward, gradient clipping
at 1.0, AdamW. Data are random token ids (throughput does not depend on them). float32, or bfloat16 autocast
(oneDNN uses AVX512-BF16 on this machine) with float32 master weights.

Prints one JSON line per dtype: {"config", "dtype", "tokens_per_s", "step_ms_median", ...}.
Example: /usr/bin/python3 tools/reference/train_bench.py --config tiny --steps 20
"""

import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F

CONFIGS = {
    # d_model, n_layers, n_heads, n_kv_heads, mlp, vocab, seq, batch, tied  (configs/llada-tiny-pretrain.json and preset small)
    "tiny": dict(d=256, layers=4, heads=4, kv=2, mlp=704, vocab=4096, seq=256, batch=8, tied=True),
    "small": dict(d=384, layers=8, heads=6, kv=2, mlp=1024, vocab=4096, seq=256, batch=8, tied=True),
}


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d, hd = c["d"], c["d"] // c["heads"]
        self.c, self.hd = c, hd
        self.attn_norm = torch.nn.Parameter(torch.ones(d))
        self.ff_norm = torch.nn.Parameter(torch.ones(d))
        self.q = torch.nn.Linear(d, d, bias=False)
        self.k = torch.nn.Linear(d, c["kv"] * hd, bias=False)
        self.v = torch.nn.Linear(d, c["kv"] * hd, bias=False)
        self.o = torch.nn.Linear(d, d, bias=False)
        self.gate = torch.nn.Linear(d, c["mlp"], bias=False)
        self.up = torch.nn.Linear(d, c["mlp"], bias=False)
        self.down = torch.nn.Linear(c["mlp"], d, bias=False)

    def forward(self, h, cos, sin):
        b, t, d = h.shape
        nh, nkv, hd = self.c["heads"], self.c["kv"], self.hd

        def rope(x):
            x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
            return x * cos + torch.cat([-x2, x1], -1) * sin

        x = rms(h, self.attn_norm)
        q = rope(self.q(x).view(b, t, nh, hd).transpose(1, 2))
        k = rope(self.k(x).view(b, t, nkv, hd).transpose(1, 2)).repeat_interleave(nh // nkv, 1)
        v = self.v(x).view(b, t, nkv, hd).transpose(1, 2).repeat_interleave(nh // nkv, 1)
        att = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(hd), -1) @ v
        h = h + self.o(att.transpose(1, 2).reshape(b, t, d))
        x = rms(h, self.ff_norm)
        return h + self.down(F.silu(self.gate(x)) * self.up(x))


def rms(x, g, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g


class MaskPredictor(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.wte = torch.nn.Embedding(c["vocab"], c["d"])
        self.blocks = torch.nn.ModuleList(Block(c) for _ in range(c["layers"]))
        self.ln_f = torch.nn.Parameter(torch.ones(c["d"]))
        self.head = None if c["tied"] else torch.nn.Linear(c["d"], c["vocab"], bias=False)
        hd = c["d"] // c["heads"]
        inv = 500000.0 ** (-2.0 * torch.arange(hd // 2, dtype=torch.float32) / hd)
        ang = torch.arange(c["seq"], dtype=torch.float32)[:, None] * inv[None, :]
        ang = torch.cat([ang, ang], -1)
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())

    def forward(self, ids):
        h = self.wte(ids)
        for blk in self.blocks:
            h = blk(h, self.cos, self.sin)
        h = rms(h, self.ln_f)
        return h @ self.wte.weight.T if self.head is None else self.head(h)


def mdm_loss(model, x0, mask_id, gen):
    b, t = x0.shape
    tt = torch.rand(b, generator=gen)
    p = ((1 - 1e-3) * tt + 1e-3)[:, None].expand(b, t)
    masked = torch.rand(b, t, generator=gen) < p
    xt = torch.where(masked, torch.full_like(x0, mask_id), x0)
    logits = model(xt)
    ce = F.cross_entropy(logits[masked].float(), x0[masked], reduction="none") / p[masked]
    return ce.sum() / (b * t)


def run(cname, dtype, steps, warmup, threads, seed):
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    c = CONFIGS[cname]
    model = MaskPredictor(c)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "wte" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "wte" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}], lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    mask_id = c["vocab"] - 2
    times, losses = [], []
    for s in range(warmup + steps):
        x0 = torch.randint(0, c["vocab"] - 3, (c["batch"], c["seq"]), generator=gen)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if dtype == "bfloat16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = mdm_loss(model, x0, mask_id, gen)
        else:
            loss = mdm_loss(model, x0, mask_id, gen)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if s >= warmup:
            times.append(time.perf_counter() - t0)
            losses.append(loss.item())
    tokens = c["batch"] * c["seq"]
    params = sum(p.numel() for p in model.parameters())
    med = statistics.median(times)
    return {"config": cname, "dtype": dtype, "tokens_per_s": round(tokens / med, 1),
            "tokens_per_s_mean": round(tokens * len(times) / sum(times), 1), "step_ms_median": round(med * 1000, 1),
            "steps": steps, "tokens_per_step": tokens, "params": params, "threads": threads,
            "torch": torch.__version__, "last_loss": round(losses[-1], 4)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=sorted(CONFIGS) + ["both"], default="both")
    ap.add_argument("--dtype", choices=["float32", "bfloat16", "both"], default="both")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    for cname in (sorted(CONFIGS, reverse=True) if a.config == "both" else [a.config]):
        for dtype in (["float32", "bfloat16"] if a.dtype == "both" else [a.dtype]):
            print(json.dumps(run(cname, dtype, a.steps, a.warmup, a.threads, a.seed)), flush=True)


if __name__ == "__main__":
    main()
