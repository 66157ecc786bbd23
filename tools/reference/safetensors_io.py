"""Minimal safetensors reader/writer (no dependency on the safetensors package).

File layout: u64 little-endian header length N, then N bytes of UTF-8 JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}} padded with spaces to a
multiple of 8, then the raw little-endian tensor bytes; offsets are relative to the start of that data.
"""

import json
import os
import struct

import numpy as np

# bf16 is kept as its raw uint16 bit pattern; F32 as float32.
_DTYPE_SIZES = {"F32": 4, "BF16": 2, "F16": 2, "F64": 8}


def f32_to_bf16_bits(a):
    """Round float32 values to bfloat16 (round to nearest, ties to even); returns uint16 bit patterns."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_bits_to_f32(bits):
    """Exact widening of bfloat16 bit patterns to float32."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, numpy array) where dtype is "F32" (float32 array) or "BF16" (uint16 bits)."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name, dtype, arr in tensors:
        if dtype == "F32":
            raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        elif dtype == "BF16":
            assert arr.dtype == np.uint16, name
            raw = np.ascontiguousarray(arr, dtype="<u2").tobytes()
        else:
            raise ValueError(f"{name}: unsupported dtype {dtype}")
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def read_safetensors(path):
    """Returns {name: float64 numpy array} (F32/BF16/F16/F64 widened exactly)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin : base + end]
        dt = info["dtype"]
        if dt == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif dt == "BF16":
            arr = bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2")).astype(np.float64)
        elif dt == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif dt == "F64":
            arr = np.frombuffer(raw, dtype="<f8").copy()
        else:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {dt}")
        if arr.size * _DTYPE_SIZES[dt] != len(raw):
            raise ValueError(f"{path}: tensor {name} byte length mismatch")
        out[name] = arr.reshape(info["shape"])
    return out


def read_checkpoint_tensors(directory):
    """Reads model.safetensors, or every shard listed by model.safetensors.index.json."""
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        out = {}
        for shard in sorted(set(weight_map.values())):
            tensors = read_safetensors(os.path.join(directory, shard))
            for name, arr in tensors.items():
                if weight_map.get(name) != shard:
                    raise ValueError(f"{shard}: tensor {name} not mapped to this shard in the index")
                out[name] = arr
        missing = set(weight_map) - set(out)
        if missing:
            raise ValueError(f"{directory}: tensors listed in the index but absent: {sorted(missing)}")
        return out
    return read_safetensors(os.path.join(directory, "model.safetensors"))
