"""Hugging Face BitNet b1.58 checkpoints (config.json + *.safetensors) into a runtime Model.

Two kinds of linear weights are read:

- packed ternary (as microsoft/bitnet-b1.58-2B-4T): uint8 [out/4, in]; bits 2i..2i+1 of
  packed row r hold unpacked row i*(out/4) + r, stored as w + 1; a one-element
  `weight_scale` beside each weight. What that scale means depends on the class that
  transformers builds for the linear (config.json quantization_config.linear_class):
    bitlinear (the default, and the 2B-4T checkpoint): BitLinear computes
        y = (q_x @ w.T) / (weight_scale * input_scale), so the effective weight is
        ternary / weight_scale;
    autobitlinear (offline mode): y = (x_q @ w.T) * weight_scale, so the effective weight
        is ternary * weight_scale.
  Descriptions of 2B-4T that say "ternary x weight_scale" are only true of autobitlinear;
  BitLinear divides.
- float master weights (as ...-2B-4T-bf16, or transformers' online quantisation): each
  linear is ternarised with absmean exactly as transformers' WeightQuant does, in float32:
  s = 1 / max(mean|W|, 1e-5), w = clip(round_half_even(W * s), -1, 1), effective weight w / s.

Everything a user can get wrong (a missing or corrupt file, a tensor of the wrong dtype or
shape, too little memory) raises CheckpointError with a message naming the file and the
tensor; nothing is allocated before every tensor's dtype and shape have been checked.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import runtime
from harness.models import sizes
from runtime import Model

from .hf_config import CheckpointError, read_config
from .safetensors_store import FLOAT_DTYPES, TensorStore
from .ternary import absmean_ternarise, scale_for, unpack_ternary

LINEARS = {  # runtime name -> tensor name inside model.layers.N
    "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
    "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj",
}
NORMS = {  # runtime name -> tensor name inside model.layers.N
    "attn": "input_layernorm", "ffn": "post_attention_layernorm",
    "attn_sub": "self_attn.attn_sub_norm", "ffn_sub": "mlp.ffn_sub_norm",
}
EMBEDDING, FINAL_NORM, OUTPUT = "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"

DEFAULT_MAX_CTX = 4096


# ---------------------------------------------------------------- the plan: names, shapes, checks

@dataclass(frozen=True)
class LinearSpec:
    layer: int
    which: str
    name: str            # ...q_proj.weight
    rows: int
    cols: int
    packed: bool         # uint8 [rows/4, cols] with a weight_scale
    scale_name: str | None


class Checkpoint:
    """A checkpoint directory whose config and tensor table have been checked: every
    tensor present, with a dtype and shape that fit the config. Reading comes later."""

    def __init__(self, path):
        self.path = Path(path)
        self.shape, self.info = read_config(self.path)
        self.store = TensorStore(self.path)
        self.linears: list[LinearSpec] = []
        self.vectors: list[tuple[int, str, str, int]] = []   # (layer, runtime norm, tensor, size)
        self._plan()

    def _plan(self):
        s, missing = self.shape, []
        dims = {name: (rows, cols) for name, rows, cols in sizes.linear_shapes(s)}
        norm_sizes = {"attn": s.hidden, "ffn": s.hidden, "attn_sub": s.heads * s.head_dim, "ffn_sub": s.ffn}
        norms = NORMS if s.sub_norms else {k: v for k, v in NORMS.items() if not k.endswith("_sub")}
        for layer in range(s.layers):
            for which, base in LINEARS.items():
                name = f"model.layers.{layer}.{base}.weight"
                if name not in self.store:
                    missing.append(name)
                    continue
                self.linears.append(self._check_linear(layer, which, name, *dims[which], missing))
            for which, base in norms.items():
                self.vectors.append((layer, which, f"model.layers.{layer}.{base}.weight", norm_sizes[which]))
        self.vectors.append((-1, "final", FINAL_NORM, s.hidden))
        heads = [EMBEDDING] + ([] if s.tied_embeddings else [OUTPUT])
        for _, _, name, size in self.vectors:
            self._check_float(name, (size,), missing)
        for name in heads:
            self._check_float(name, (s.vocab, s.hidden), missing)
        if missing:
            raise CheckpointError(f"{self.path}: {len(missing)} tensor(s) missing: {_listing(missing)}")

    def _check_linear(self, layer, which, name, rows, cols, missing) -> LinearSpec:
        st = self.store
        dtype, shape = st.where[name].dtype(name), st.where[name].shape(name)
        packed = dtype == "U8" and rows % 4 == 0 and shape == (rows // 4, cols)
        if not packed and not (dtype in FLOAT_DTYPES and shape == (rows, cols)):
            packed_form = f"uint8 [{rows // 4}, {cols}] (packed) or " if rows % 4 == 0 else ""
            raise st.bad(name, f"{packed_form}a float [{rows}, {cols}]")
        scale_name = name[: -len("weight")] + "weight_scale"
        if scale_name in st:
            if st.where[scale_name].dtype(scale_name) not in FLOAT_DTYPES or \
                    math.prod(st.where[scale_name].shape(scale_name)) != 1:
                raise st.bad(scale_name, "a one-element float")
        elif packed:
            missing.append(scale_name)
            scale_name = None
        else:
            scale_name = None
        return LinearSpec(layer, which, name, rows, cols, packed, scale_name)

    def _check_float(self, name, shape, missing):
        if name not in self.store:
            missing.append(name)
            return
        f = self.store.where[name]
        if f.dtype(name) not in FLOAT_DTYPES or f.shape(name) != shape:
            raise self.store.bad(name, f"a float {list(shape)}")

    # ---- reading ----
    def ternary(self, spec: LinearSpec) -> tuple[np.ndarray, float]:
        """The ternary values (int8) and the runtime scale of one linear."""
        raw = self.store.read(spec.name)
        file = self.store.where[spec.name].path
        if spec.scale_name is None:         # float master weights
            if not np.isfinite(raw).all():
                r, c = np.argwhere(~np.isfinite(raw))[0]
                raise CheckpointError(f"{file}: {spec.name}: {raw[r, c]} at row {r}, column {c}")
            return absmean_ternarise(raw)
        # already ternary: packed codes, or float values -1, 0, 1, with a weight_scale
        w = unpack_ternary(raw) if spec.packed else raw
        bad = (w != -1) & (w != 0) & (w != 1)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            found = f"code {raw[r % raw.shape[0], c]}" if spec.packed else f"value {w[r, c]}"
            raise CheckpointError(f"{file}: {spec.name}: not ternary ({found} for row {r}, column {c})")
        return w.astype(np.int8), self.scale(spec)

    def scale(self, spec: LinearSpec) -> float:
        ws = float(np.float32(self.store.read(spec.scale_name).reshape(-1)[0]))
        if not math.isfinite(ws) or ws == 0.0:
            raise CheckpointError(f"{self.store.where[spec.scale_name].path}: {spec.scale_name}: "
                                  f"must be finite and non-zero, found {ws}")
        return scale_for(ws, self.info.linear_class)

    def vector(self, name: str) -> np.ndarray:
        return np.ascontiguousarray(self.store.read(name), dtype=np.float32)


def _listing(names: list[str], limit: int = 12) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


# ---------------------------------------------------------------- memory and loading

def load_checkpoint(path, weight_format: str = "i2s", head_format: str = "f16", max_ctx: int | None = None,
                    checkpoint: Checkpoint | None = None, kv_format: str = "f16") -> Model:
    """A runtime Model holding the checkpoint's weights in `weight_format` (i2s, tq1, or the
    f16 baseline: the same ternary values times the scale, stored as half) with the
    embedding / output head in `head_format`, and a `kv_format` KV cache of `max_ctx` tokens
    (default: the config's max_position_embeddings, at most 4096)."""
    check_formats(weight_format, head_format, CheckpointError)
    ckpt = checkpoint or Checkpoint(path)
    if max_ctx is None:
        max_ctx = min(ckpt.info.max_position_embeddings or DEFAULT_MAX_CTX, DEFAULT_MAX_CTX)
    model = empty_model(ckpt.shape, weight_format, head_format, max_ctx, kv_format, ckpt.path,
                        ckpt.path / "config.json", CheckpointError)
    _fill(model, ckpt)
    return model


def check_formats(weight_format: str, head_format: str, error) -> None:
    if weight_format not in runtime.LINEAR_FORMATS:
        raise error(f"weight format must be one of {', '.join(runtime.LINEAR_FORMATS)}; got {weight_format!r}")
    if head_format not in runtime.HEAD_FORMATS:
        raise error(f"head format must be one of {', '.join(runtime.HEAD_FORMATS)}; got {head_format!r}")


def empty_model(shape, weight_format: str, head_format: str, max_ctx: int, kv_format: str, path, where,
                error) -> Model:
    """A runtime Model for loading weights into, once the memory estimate says it fits: every
    problem an ERROR naming PATH (the model) or WHERE (the file that defines its shape)."""
    if max_ctx <= 0:
        raise error(f"max context must be at least 1, got {max_ctx}")
    try:
        sizes.check_fits(shape, weight_format, head_format, max_ctx, kv=kv_format, loading=True,
                         name=f"loading {path}")
    except sizes.DoesNotFit as e:
        raise error(f"{e}; try a smaller max context or a smaller weight format") from None
    try:
        return Model(shape, weight_format, head_format, max_ctx, kv_format=kv_format)
    except ValueError as e:
        raise error(f"{where}: {e}") from None


def _fill(model: Model, ckpt: Checkpoint) -> None:
    # one tensor at a time, so that the loader holds at most one float copy
    for spec in ckpt.linears:
        w, scale = ckpt.ternary(spec)
        model.set_linear(spec.layer, spec.which, w, scale)
    for layer, which, name, _ in ckpt.vectors:
        model.set_norm(layer, which, ckpt.vector(name))
    model.set_embedding(ckpt.vector(EMBEDDING))
    if not ckpt.shape.tied_embeddings:
        model.set_output(ckpt.vector(OUTPUT))
