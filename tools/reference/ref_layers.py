"""Float64 building blocks shared by the dense (llada_ref.py) and MoE (moe_ref.py) reference models (LLADA_SPEC.md
sections 4 and 7): RMSNorm, rotary embedding, the SwiGLU MLP and checkpoint loading."""

import json
import os

import numpy as np
import torch

from safetensors_io import read_checkpoint_tensors


def load_checkpoint(directory):
    """(config.json as a dict, {name: float64 torch tensor}) of a checkpoint directory."""
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    return config, read_checkpoint_tensors(directory)


def as_torch(tensors):
    """{name: numpy array} -> {name: torch tensor} sharing the memory."""
    return {name: torch.from_numpy(np.ascontiguousarray(array)) for name, array in tensors.items()}


def rms_norm(x, weight, eps):
    """RMSNorm over the last dimension."""
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * weight


def rope(x, positions, theta):
    """Rotary embedding of x [..., T, head_dim] at absolute positions [T]: rotate-half pairing of the first and second
    half of each head."""
    d = x.shape[-1]
    j = torch.arange(d // 2, dtype=torch.float64)
    inv_freq = theta ** (-2.0 * j / d)
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)  # [T, D]
    rotated = torch.cat([-x[..., d // 2 :], x[..., : d // 2]], dim=-1)
    return x * torch.cos(angles) + rotated * torch.sin(angles)


def swiglu(x, gate, up, down):
    """SwiGLU MLP: down(silu(gate x) * up x), weights stored [out, in]."""
    return (torch.nn.functional.silu(x @ gate.T) * (x @ up.T)) @ down.T
