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
  REFERENCE.md section 2 says "ternary x weight_scale" for 2B-4T: that is only true of
  autobitlinear; BitLinear divides.
- float master weights (as ...-2B-4T-bf16, or transformers' online quantisation): each
  linear is ternarised with absmean exactly as transformers' WeightQuant does, in float32:
  s = 1 / max(mean|W|, 1e-5), w = clip(round_half_even(W * s), -1, 1), effective weight w / s.

Everything a user can get wrong (a missing or corrupt file, a tensor of the wrong dtype or
shape, too little memory) raises CheckpointError with a message naming the file and the
tensor; nothing is allocated before every tensor's dtype and shape have been checked.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

import runtime
from runtime import Model, ModelShape
from runtime.model import HEAD_FORMATS

LINEARS = {  # runtime name -> tensor name inside model.layers.N
    "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
    "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj",
}
NORMS = {  # runtime name -> tensor name inside model.layers.N
    "attn": "input_layernorm", "ffn": "post_attention_layernorm",
    "attn_sub": "self_attn.attn_sub_norm", "ffn_sub": "mlp.ffn_sub_norm",
}
EMBEDDING, FINAL_NORM, OUTPUT = "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"

WEIGHT_FORMATS = ("i2s", "tq1", "f16")
LINEAR_CLASSES = ("bitlinear", "autobitlinear")
DEFAULT_MAX_CTX = 4096

# safetensors dtype names -> numpy dtypes (BF16 has none: it is widened by hand)
FLOAT_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": None}
DTYPE_NAMES = {"F32": "float32", "F16": "float16", "F64": "float64", "BF16": "bfloat16", "U8": "uint8",
               "I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64", "BOOL": "bool"}

# Per model_type: whether the layers have BitNet's sub-norms, and transformers' config defaults.
MODEL_TYPES = {
    "bitnet": dict(sub_norms=True, rope_theta=500000.0, rms_norm_eps=1e-5, hidden_act="relu2"),
    "llama": dict(sub_norms=False, rope_theta=10000.0, rms_norm_eps=1e-6, hidden_act="silu"),
}


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded; the message names the file and the tensor."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What config.json says, beyond the shape."""
    model_type: str
    linear_class: str
    max_position_embeddings: int | None


# ---------------------------------------------------------------- config.json

def read_config(path: Path) -> tuple[ModelShape, CheckpointInfo]:
    """The ModelShape of a checkpoint directory, from its config.json."""
    cfg = _load_json(Path(path) / "config.json")
    where = f"{Path(path) / 'config.json'}"
    model_type = cfg.get("model_type")
    if model_type not in MODEL_TYPES:
        raise CheckpointError(f"{where}: model_type {model_type!r} is not supported; "
                              f"one of {', '.join(MODEL_TYPES)}")
    defaults = MODEL_TYPES[model_type]

    def integer(key, default=None):
        v = cfg.get(key, default)
        if v is None:
            raise CheckpointError(f"{where}: missing {key!r}")
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise CheckpointError(f"{where}: {key} must be a positive integer, got {v!r}")
        return v

    def number(key, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise CheckpointError(f"{where}: {key} must be a positive number, got {value!r}")
        return float(value)

    hidden, heads = integer("hidden_size"), integer("num_attention_heads")
    if cfg.get("head_dim") is None and hidden % heads:
        raise CheckpointError(f"{where}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
                              " and no head_dim is given")
    kv_heads = integer("num_key_value_heads", heads)
    if heads % kv_heads:
        raise CheckpointError(f"{where}: num_attention_heads {heads} is not a multiple of "
                              f"num_key_value_heads {kv_heads}")
    act = cfg.get("hidden_act", defaults["hidden_act"])
    if act not in ("relu2", "silu"):
        raise CheckpointError(f"{where}: hidden_act {act!r} is not supported; relu2 or silu")
    for key in ("attention_bias", "mlp_bias"):
        if cfg.get(key):
            raise CheckpointError(f"{where}: {key} is set; the runtime has no biases")
    shape = ModelShape(
        vocab=integer("vocab_size"), hidden=hidden, ffn=integer("intermediate_size"),
        layers=integer("num_hidden_layers"), heads=heads, kv_heads=kv_heads,
        head_dim=integer("head_dim", hidden // heads),
        rope_theta=number("rope_theta", _rope_theta(cfg, where, defaults["rope_theta"])),
        norm_eps=number("rms_norm_eps", cfg.get("rms_norm_eps", defaults["rms_norm_eps"])),
        activation=act, sub_norms=defaults["sub_norms"],
        tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
    )
    max_pos = cfg.get("max_position_embeddings")
    info = CheckpointInfo(model_type, _linear_class(cfg, where), max_pos if isinstance(max_pos, int) else None)
    return shape, info


def _load_json(file: Path) -> dict:
    if not file.parent.is_dir():
        raise CheckpointError(f"{file.parent}: not a directory (a checkpoint directory holds config.json "
                              "and *.safetensors files)")
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise CheckpointError(f"{file}: not found (a Hugging Face checkpoint directory holds config.json "
                              "and *.safetensors files)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file}: cannot read: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{file}: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{file}: expected a JSON object, found {type(data).__name__}")
    return data


def _rope_theta(cfg: dict, where: str, default: float):
    """rope_theta sits at the top level (transformers 4) or in rope_parameters (5); only
    plain RoPE is supported (llama3 / yarn scaling change the frequencies)."""
    params = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    if not isinstance(params, dict):
        raise CheckpointError(f"{where}: rope_parameters must be an object, got {params!r}")
    kind = params.get("rope_type", params.get("type", "default"))
    if kind not in (None, "default"):
        raise CheckpointError(f"{where}: RoPE scaling {kind!r} is not supported (plain RoPE only)")
    return cfg.get("rope_theta", params.get("rope_theta", default))


def _linear_class(cfg: dict, where: str) -> str:
    q = cfg.get("quantization_config") or {}
    if not isinstance(q, dict):
        raise CheckpointError(f"{where}: quantization_config must be an object")
    if q and q.get("quant_method", "bitnet") != "bitnet":
        raise CheckpointError(f"{where}: quant_method {q.get('quant_method')!r} is not supported (bitnet only)")
    if q.get("use_rms_norm"):
        raise CheckpointError(f"{where}: quantization_config.use_rms_norm (an RMSNorm inside every linear) "
                              "is not supported")
    # transformers' BitNetQuantConfig defaults to bitlinear
    cls = q.get("linear_class", "bitlinear")
    if cls not in LINEAR_CLASSES:
        raise CheckpointError(f"{where}: linear_class {cls!r} is not one of {', '.join(LINEAR_CLASSES)}")
    return cls


# ---------------------------------------------------------------- safetensors

class TensorFile:
    """One .safetensors file. The safetensors package validates it (header, offsets, that
    the data covers the file) and reads the standard dtypes; bf16, which its numpy API
    cannot return, is read from the raw bytes at the offsets of our own header parse."""

    def __init__(self, path: Path):
        from safetensors import SafetensorError, safe_open

        self.path, self.name = path, path.name
        try:
            self._handle = safe_open(str(path), framework="numpy")
            self.header = self._read_header()
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file "
                                  f"(truncated or corrupt?): {e}") from None

    def _read_header(self) -> dict:
        with open(self.path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        self._data_start = 8 + n
        header.pop("__metadata__", None)
        return header

    def dtype(self, name: str) -> str:
        return self.header[name]["dtype"]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.header[name]["shape"])

    def read(self, name: str) -> np.ndarray:
        """The tensor as numpy; float tensors as float32."""
        from safetensors import SafetensorError

        dtype = self.dtype(name)
        try:
            if dtype == "BF16":
                a = self._read_bf16(name)
            else:
                a = self._handle.get_tensor(name)
        except (SafetensorError, OSError, ValueError, TypeError) as e:
            raise CheckpointError(f"{self.name}: {name}: cannot read: {e}") from None
        return a.astype(np.float32) if dtype in FLOAT_DTYPES and a.dtype != np.float32 else a

    def _read_bf16(self, name: str) -> np.ndarray:
        begin, end = self.header[name]["data_offsets"]
        raw = np.fromfile(self.path, dtype="<u2", count=(end - begin) // 2, offset=self._data_start + begin)
        # a bf16 value is the high half of the float32 with the same bits (shifted in place:
        # the embedding of a real model is over a gigabyte as float32)
        wide = raw.astype(np.uint32)
        wide <<= 16
        return wide.view(np.float32).reshape(self.shape(name))


class TensorStore:
    """Every tensor of a checkpoint directory, found by name across its (sharded) files."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.where: dict[str, TensorFile] = {}
        for f in self._files():
            for name in f.header:
                self.where.setdefault(name, f)

    def _files(self) -> list[TensorFile]:
        index = self.path / "model.safetensors.index.json"
        if index.exists():
            weight_map = _load_json(index).get("weight_map")
            if not isinstance(weight_map, dict):
                raise CheckpointError(f"{index}: no weight_map object")
            names = sorted(set(weight_map.values()))
            missing = [n for n in names if not (self.path / n).is_file()]
            if missing:
                raise CheckpointError(f"{index}: names shard files that are missing: {', '.join(missing)}")
        else:
            names = sorted(p.name for p in self.path.glob("*.safetensors"))
            if not names:
                raise CheckpointError(f"{self.path}: no *.safetensors files")
        return [TensorFile(self.path / n) for n in names]

    def __contains__(self, name: str) -> bool:
        return name in self.where

    def describe(self, name: str) -> str:
        f = self.where[name]
        return f"{DTYPE_NAMES.get(f.dtype(name), f.dtype(name))} {list(f.shape(name))}"

    def bad(self, name: str, expected: str) -> CheckpointError:
        return CheckpointError(f"{self.where[name].name}: {name}: expected {expected}, found {self.describe(name)}")

    def read(self, name: str) -> np.ndarray:
        return self.where[name].read(name)


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
        dims = {"q": (s.heads * s.head_dim, s.hidden), "k": (s.kv_heads * s.head_dim, s.hidden),
                "v": (s.kv_heads * s.head_dim, s.hidden), "o": (s.hidden, s.heads * s.head_dim),
                "gate": (s.ffn, s.hidden), "up": (s.ffn, s.hidden), "down": (s.hidden, s.ffn)}
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
        file = self.store.where[spec.name].name
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
            raise CheckpointError(f"{self.store.where[spec.scale_name].name}: {spec.scale_name}: "
                                  f"must be finite and non-zero, found {ws}")
        return scale_for(ws, self.info.linear_class)

    def vector(self, name: str) -> np.ndarray:
        return np.ascontiguousarray(self.store.read(name), dtype=np.float32)


def _listing(names: list[str], limit: int = 12) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


# ---------------------------------------------------------------- ternary conventions

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


# ---------------------------------------------------------------- memory and loading

def estimate_bytes(shape: ModelShape, weight_format: str, head_format: str, max_ctx: int,
                   kv_format: str = "f16") -> dict[str, int]:
    """What loading allocates: packed linears and head in their formats, norms, the KV cache,
    and the working copy the loader holds while converting the largest tensor (the
    embedding as float32, plus its file copy)."""
    s = shape
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    linear = [(q, s.hidden), (kv, s.hidden), (kv, s.hidden), (s.hidden, q),
              (s.ffn, s.hidden), (s.ffn, s.hidden), (s.hidden, s.ffn)]
    weights = s.layers * sum(runtime.matrix_bytes(weight_format, r, c) for r, c in linear)
    heads = (1 if s.tied_embeddings else 2) * runtime.matrix_bytes(head_format, s.vocab, s.hidden)
    norms = 4 * (s.layers * (2 * s.hidden + q + s.ffn) + s.hidden)
    return {"weights": weights + heads + norms,
            "kv_cache": 2 * s.layers * max_ctx * kv * (2 if kv_format == "f16" else 4),
            "working": 2 * 4 * s.vocab * s.hidden}


def check_memory(shape: ModelShape, weight_format: str, head_format: str, max_ctx: int,
                 kv_format: str = "f16") -> None:
    need = estimate_bytes(shape, weight_format, head_format, max_ctx, kv_format)
    total, available = sum(need.values()), psutil.virtual_memory().available
    if total > available:
        raise CheckpointError(
            f"loading needs about {_gb(total)} (weights {_gb(need['weights'])} in {weight_format} with a "
            f"{head_format} head, KV cache {_gb(need['kv_cache'])} for {max_ctx} tokens, "
            f"{_gb(need['working'])} while converting) but only {_gb(available)} is available; "
            "try a smaller max context or a smaller weight format")


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e7 else f"{n / 1e6:.2f} MB"


def load_checkpoint(path, weight_format: str = "i2s", head_format: str = "f16", max_ctx: int | None = None,
                    checkpoint: Checkpoint | None = None, kv_format: str = "f16") -> Model:
    """A runtime Model holding the checkpoint's weights in `weight_format` (i2s, tq1, or the
    f16 baseline: the same ternary values times the scale, stored as half) with the
    embedding / output head in `head_format`, and a `kv_format` KV cache of `max_ctx` tokens
    (default: the config's max_position_embeddings, at most 4096)."""
    if weight_format not in WEIGHT_FORMATS:
        raise CheckpointError(f"weight format must be one of {', '.join(WEIGHT_FORMATS)}; got {weight_format!r}")
    if head_format not in HEAD_FORMATS:
        raise CheckpointError(f"head format must be one of {', '.join(HEAD_FORMATS)}; got {head_format!r}")
    ckpt = checkpoint or Checkpoint(path)
    if max_ctx is None:
        max_ctx = min(ckpt.info.max_position_embeddings or DEFAULT_MAX_CTX, DEFAULT_MAX_CTX)
    if max_ctx <= 0:
        raise CheckpointError(f"max context must be at least 1, got {max_ctx}")
    check_memory(ckpt.shape, weight_format, head_format, max_ctx, kv_format)
    try:
        model = Model(ckpt.shape, weight_format, head_format, max_ctx, kv_format=kv_format)
    except ValueError as e:
        raise CheckpointError(f"{ckpt.path / 'config.json'}: {e}") from None
    _fill(model, ckpt)
    return model


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
