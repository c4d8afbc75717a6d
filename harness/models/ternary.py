"""Ternary conventions of BitNet checkpoints: the 2-bit packing of microsoft/bitnet-b1.58-2B-4T,
the weight_scale of each linear class, and transformers' absmean ternarisation."""
from __future__ import annotations

import numpy as np


def scale_for(weight_scale: float, linear_class: str) -> float:
    """The runtime's per-matrix scale (effective weight = ternary x scale) from a stored
    weight_scale: BitLinear divides by it, AutoBitLinear (offline) multiplies."""
    if linear_class == "bitlinear":
        return float(np.float32(1.0) / np.float32(weight_scale))
    return float(weight_scale)


def pack_ternary(w: np.ndarray) -> np.ndarray:
    """int8 ternary [out, in] (out a multiple of 4) -> uint8 [out/4, in], the 2B-4T layout:
    bits 2i..2i+1 of packed row r hold row i*(out/4) + r, stored as w + 1."""
    rows = w.shape[0] // 4
    u = (w.astype(np.int16) + 1).astype(np.uint8).reshape(4, rows, w.shape[1])
    return (u[0] | (u[1] << 2) | (u[2] << 4) | (u[3] << 6)).astype(np.uint8)


def unpack_ternary(packed: np.ndarray) -> np.ndarray:
    """The inverse of pack_ternary, as int8 [out, in]; a code of 3 (no ternary value)
    comes out as 2 for the caller to report."""
    parts = [((packed >> (2 * i)) & 3) for i in range(4)]
    return (np.concatenate(parts, axis=0).astype(np.int8) - 1)


def absmean_ternarise(w: np.ndarray) -> tuple[np.ndarray, float]:
    """transformers' WeightQuant in float32: s = 1 / max(mean|W|, 1e-5),
    w = clip(round(W * s), -1, 1); returns (w as int8, 1 / s).

    The mean is accumulated in float64 and rounded once to float32; torch's float32
    reduction can end an ulp away, which only changes weights within an ulp of x.5."""
    w32 = np.asarray(w, dtype=np.float32)
    mean = np.float32(np.abs(w32).mean(dtype=np.float64))
    s = np.float32(1.0) / max(mean, np.float32(1e-5))
    q = np.clip(np.rint(w32 * s), -1, 1).astype(np.int8)
    return q, float(np.float32(1.0) / s)
