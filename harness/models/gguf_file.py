"""A GGUF model file into the runtime: the engines' own files (llama.cpp's TQ1_0 / TQ2_0,
bitnet.cpp's I2_S, F16 and F32 linears) repacked into ternbench's formats.

The header is parsed here rather than by the `gguf` package, because bitnet.cpp's I2_S (type 36)
is no type the package knows; the package dequantises the block types it does know.

Linears become ternary values times one scale per matrix, as every ternbench format holds them:
- TQ1_0 / TQ2_0: 256-weight blocks of trits with an fp16 scale each. Exactly one scale across
  the matrix (blocks of zeros aside) is lossless; a matrix whose blocks differ cannot be held.
- I2_S: codes w + 1 in 2 bits, 128-weight blocks in 32 bytes (byte j holds elements j, j+32,
  j+64, j+96, the first in the high bits), one fp32 scale after the codes.
- F16 / F32 / BF16: values that are ternary times one scale are read exactly; float master
  weights are ternarised with absmean, as BitNet's float checkpoints are (and the output says so).
The embedding / output head is read as stored (dequantised: Q6_K, Q8_0) into the head format
that holds it without loss: f16 for F16, f32 otherwise, unless another is asked for.
Every problem is a GgufError naming the file, and the tensor and its type where there is one."""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime import Model, ModelShape

from . import sizes
from .checkpoint import check_formats, empty_model
from .ternary import absmean_ternarise

MAGIC = b"GGUF"
ALIGNMENT = 32
I2_S = 36                     # bitnet.cpp's type id; not in the gguf package's enum
TL2 = 39                      # bitnet.cpp's x86 lookup-table type: its size is known, its layout not read
# type id -> (name, elements per block, bytes per block)
TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 30: ("BF16", 1, 2), 8: ("Q8_0", 32, 34), 14: ("Q6_K", 256, 210),
         34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66), I2_S: ("I2_S", 4, 1),
         TL2: ("TL2", 1, 0)}
TERNARY_TYPES = {"TQ1_0": "tq1", "TQ2_0": "i2s", "I2_S": "i2s"}
FLOAT_TYPES = {"F32": "f32", "F16": "f16", "BF16": "f32"}
# the FFN activation each architecture computes: llama.cpp's `bitnet` is 1bitLLM's (SiLU-gated),
# bitnet.cpp's `bitnet-b1.58` the 2B4T's (squared ReLU)
ARCHS = {"bitnet": "silu", "bitnet-b1.58": "relu2", "llama": "silu"}
ACTIVATION_KEY = "ternbench.activation"   # what ternbench's writer records (engines/gguf_model.py)
ACTIVATIONS = ("silu", "relu2")
LINEARS = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output",
           "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}
NORMS = {"attn": "attn_norm", "ffn": "ffn_norm", "attn_sub": "attn_sub_norm", "ffn_sub": "ffn_sub_norm"}
# GGUF metadata value types: struct format of the scalars, 8 = string, 9 = array
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


class GgufError(Exception):
    """A GGUF file that ternbench cannot run: the message names the file, the tensor and its type."""


@dataclass(frozen=True)
class Tensor:
    name: str
    type: str
    shape: tuple[int, ...]     # row-major: (rows, cols) for a matrix
    offset: int                # from the file's start
    nbytes: int


class _Cursor:
    def __init__(self, data, path):
        self.data, self.at, self.path = data, 0, path

    def take(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.at + size > len(self.data):
            raise GgufError(f"{self.path}: truncated header (at byte {self.at})")
        value = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += size
        return value[0] if len(value) == 1 else value

    def string(self) -> str:
        n = self.take("Q")
        if n > 1 << 24 or self.at + n > len(self.data):
            raise GgufError(f"{self.path}: truncated header (a string of {n} bytes at byte {self.at} runs past "
                            "the end)")
        s = bytes(self.data[self.at:self.at + n]).decode("utf-8", errors="replace")
        self.at += n
        return s

    def value(self, kind: int, depth: int = 0):
        if kind in SCALARS:
            return self.take(SCALARS[kind])
        if kind == 8:
            return self.string()
        if kind == 9 and depth == 0:
            inner, n = self.take("I"), self.take("Q")
            if n > 1 << 26:
                raise GgufError(f"{self.path}: an array of {n} values at byte {self.at}")
            if inner in SCALARS:   # skipped in one step: token tables hold hundreds of thousands
                size = struct.calcsize("<" + SCALARS[inner])
                self.at += n * size
                return n
            return [self.value(inner, 1) for _ in range(n)]
        raise GgufError(f"{self.path}: unknown metadata value type {kind} at byte {self.at}")


class GgufFile:
    """A GGUF file's header: metadata and tensor table, every tensor's type known and its data
    inside the file. Nothing about what model it is."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            self.data = np.memmap(self.path, dtype=np.uint8, mode="r")
        except (OSError, ValueError) as e:
            raise GgufError(f"{self.path}: cannot read: {e}") from None
        cur = _Cursor(self.data, self.path)
        if bytes(self.data[:4]) != MAGIC:
            raise GgufError(f"{self.path}: not a GGUF file (it does not start with 'GGUF')")
        cur.at = 4
        version, n_tensors, n_kv = cur.take("I"), cur.take("Q"), cur.take("Q")
        if version not in (2, 3):
            raise GgufError(f"{self.path}: GGUF version {version}; ternbench reads versions 2 and 3")
        if n_tensors > 1 << 20 or n_kv > 1 << 20:
            raise GgufError(f"{self.path}: {n_tensors} tensors and {n_kv} metadata keys: a corrupt header")
        self.meta = {}
        for _ in range(n_kv):
            key = cur.string()
            self.meta[key] = cur.value(cur.take("I"))
        infos = []
        for _ in range(n_tensors):
            name = cur.string()
            dims = [cur.take("Q") for _ in range(cur.take("I"))]
            kind, offset = cur.take("I"), cur.take("Q")
            infos.append((name, dims, kind, offset))
        align = self.meta.get("general.alignment", ALIGNMENT)
        start = -(-cur.at // align) * align
        self.tensors: dict[str, Tensor] = {}
        for name, dims, kind, offset in infos:
            if kind not in TYPES:
                raise GgufError(f"{self.path}: tensor {name}: type {kind} is not one ternbench reads "
                                f"({', '.join(t[0] for t in TYPES.values())})")
            type_name, block, block_bytes = TYPES[kind]
            count = math.prod(dims)
            if dims and dims[0] % block:
                raise GgufError(f"{self.path}: tensor {name} ({type_name}): rows of {dims[0]} are not whole "
                                f"blocks of {block}")
            nbytes = count // block * block_bytes + (4 if kind == I2_S else 0)   # I2_S: the fp32 scale after
            if kind == TL2:
                nbytes = tl2_nbytes(dims)
            if start + offset + nbytes > len(self.data):
                raise GgufError(f"{self.path}: tensor {name} ({type_name}) runs past the end of the file "
                                "(truncated?)")
            self.tensors[name] = Tensor(name, type_name, tuple(reversed(dims)), start + offset, nbytes)

    def raw(self, t: Tensor) -> np.ndarray:
        return self.data[t.offset:t.offset + t.nbytes]


def tl2_nbytes(dims) -> int:
    """The bytes of a TL2 matrix (K = dims[0] inputs, M = dims[1] outputs) as bitnet.cpp's llama.cpp
    reads them (ggml_nbytes): its converter's formula of the codes (3 weights in 5 bits, but 256
    columns' worth at 2 weights in 4 bits whatever the kernels' real split), padded to 32 bytes,
    then 32 bytes whose first 4 are the float32 scale."""
    k, m = dims[0], math.prod(dims[1:])
    codes = (k - 256) * m // 3 * 5 // 8 + 256 * m // 2 * 4 // 8
    return -(-codes // 32) * 32 + 32


class GgufModel(GgufFile):
    """A GGUF file whose header has been checked against the runtime's architecture: every
    tensor present, with a type and shape the loader handles. Reading comes later."""

    def __init__(self, path):
        super().__init__(path)
        self.shape = self._shape()
        self._check()

    # ---- the architecture ----
    def _shape(self) -> ModelShape:
        arch = self.meta.get("general.architecture")
        if arch not in ARCHS:
            raise GgufError(f"{self.path}: architecture {arch!r} is not one ternbench runs ({', '.join(ARCHS)})")
        self.arch = arch

        def get(key, default=None):
            v = self.meta.get(f"{arch}.{key}", default)
            if v is None:
                raise GgufError(f"{self.path}: metadata {arch}.{key} is missing")
            return v

        embd = self.tensors.get("token_embd.weight")
        if embd is None or len(embd.shape) != 2:
            raise GgufError(f"{self.path}: no 2-D token_embd.weight tensor")
        hidden, heads = int(get("embedding_length")), int(get("attention.head_count"))
        kv_heads = int(get("attention.head_count_kv", heads))
        if heads <= 0 or kv_heads <= 0 or hidden % heads or heads % kv_heads:
            raise GgufError(f"{self.path}: {heads} heads, {kv_heads} KV heads and {hidden} hidden do not fit together")
        return ModelShape(vocab=embd.shape[0], hidden=hidden, ffn=int(get("feed_forward_length")),
                          layers=int(get("block_count")), heads=heads, kv_heads=kv_heads,
                          head_dim=int(get("rope.dimension_count", hidden // heads)),
                          rope_theta=float(get("rope.freq_base", 10000.0)),
                          norm_eps=float(get("attention.layer_norm_rms_epsilon", 1e-5)),
                          activation=self._activation(arch), sub_norms="blk.0.attn_sub_norm.weight" in self.tensors,
                          tied_embeddings="output.weight" not in self.tensors)

    def _activation(self, arch: str) -> str:
        """The FFN activation: the one ternbench wrote (ternbench.activation; a relu2 model keeps
        relu2 in the `bitnet` architecture that every engine loads), else the architecture's."""
        act = self.meta.get(ACTIVATION_KEY, ARCHS[arch])
        if act not in ACTIVATIONS:
            raise GgufError(f"{self.path}: {ACTIVATION_KEY} {act!r} is not an activation ternbench runs "
                            f"({', '.join(ACTIVATIONS)})")
        return act

    @property
    def max_context(self) -> int:
        return int(self.meta.get(f"{self.arch}.context_length", 4096))

    def _check(self) -> None:
        s, missing = self.shape, []
        dims = {which: (rows, cols) for which, rows, cols in sizes.linear_shapes(s)}
        norm_sizes = {"attn": s.hidden, "ffn": s.hidden, "attn_sub": s.heads * s.head_dim, "ffn_sub": s.ffn}
        for layer in range(s.layers):
            for which, base in LINEARS.items():
                self._expect(f"blk.{layer}.{base}.weight", dims[which], (*TERNARY_TYPES, *FLOAT_TYPES), missing)
            for which, base in NORMS.items():
                if which.endswith("_sub") and not s.sub_norms:
                    continue
                self._expect(f"blk.{layer}.{base}.weight", (norm_sizes[which],), FLOAT_TYPES, missing)
        self._expect("output_norm.weight", (s.hidden,), FLOAT_TYPES, missing)
        for name in ("token_embd.weight", *(() if s.tied_embeddings else ("output.weight",))):
            self._expect(name, (s.vocab, s.hidden), ("F32", "F16", "BF16", "Q8_0", "Q6_K"), missing)
        if missing:
            more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
            raise GgufError(f"{self.path}: {len(missing)} tensor(s) missing: {', '.join(missing[:8])}{more}")

    def _expect(self, name, shape, types, missing) -> None:
        t = self.tensors.get(name)
        if t is None:
            missing.append(name)
        elif t.type not in types:
            raise GgufError(f"{self.path}: tensor {name}: type {t.type} is not supported here "
                            f"(ternbench reads {', '.join(types)})")
        elif t.shape != tuple(shape):
            raise GgufError(f"{self.path}: tensor {name} ({t.type}): shape {list(t.shape)}, the header's "
                            f"architecture needs {list(shape)}")

    # ---- reading ----
    def floats(self, name: str) -> np.ndarray:
        """A tensor as float32, dequantised when it is a block type."""
        t = self.tensors[name]
        raw = self.raw(t)
        if t.type == "F32":
            out = raw.view(np.float32)
        elif t.type == "F16":
            out = raw.view(np.float16).astype(np.float32)
        elif t.type == "I2_S":
            w, scale = self._i2_s(t)
            out = w.astype(np.float32) * np.float32(scale)
        else:
            import gguf

            out = gguf.quants.dequantize(np.asarray(raw), getattr(gguf.GGMLQuantizationType, t.type))
        out = np.ascontiguousarray(out, dtype=np.float32).reshape(t.shape)
        if not np.isfinite(out).all():
            raise GgufError(f"{self.path}: tensor {name} ({t.type}): holds values that are not finite")
        return out

    def ternary(self, name: str) -> tuple[np.ndarray, float, str]:
        """(int8 ternary values, the one scale, how they were obtained) of a linear."""
        t = self.tensors[name]
        if t.type == "I2_S":
            w, scale = self._i2_s(t)
            return w.reshape(t.shape), scale, "I2_S codes"
        if t.type in ("TQ1_0", "TQ2_0"):
            return self._blocks(t)
        values = self.floats(name)
        scale = float(np.abs(values).max())
        if scale > 0 and np.isin(values / np.float32(scale), (-1.0, 0.0, 1.0)).all():
            return np.rint(values / np.float32(scale)).astype(np.int8), scale, f"{t.type} values, ternary x one scale"
        w, s = absmean_ternarise(values)
        return w, s, f"{t.type} float master weights, ternarised with absmean"

    def _i2_s(self, t: Tensor) -> tuple[np.ndarray, float]:
        raw = self.raw(t)
        n = math.prod(t.shape)
        if n % 128:
            raise GgufError(f"{self.path}: tensor {t.name} (I2_S): {n} weights are not whole blocks of 128")
        codes = np.asarray(raw[: n // 4]).reshape(-1, 32)
        groups = [(codes >> (6 - 2 * g)) & 3 for g in range(4)]   # element j + 32 g of each block
        w = np.concatenate(groups, axis=1).reshape(-1).astype(np.int8) - 1
        if (w > 1).any():
            raise GgufError(f"{self.path}: tensor {t.name} (I2_S): code 3 at weight {int(np.argmax(w > 1))}, "
                            "which no ternary value has")
        scale = float(np.asarray(raw[n // 4: n // 4 + 4]).view(np.float32)[0])
        if not math.isfinite(scale) or scale <= 0:
            raise GgufError(f"{self.path}: tensor {t.name} (I2_S): scale {scale} must be finite and positive")
        return w, scale

    def _blocks(self, t: Tensor) -> tuple[np.ndarray, float, str]:
        """TQ1_0 / TQ2_0: every block's fp16 scale (its last two bytes) must be one and the same."""
        _, block, block_bytes = next(v for v in TYPES.values() if v[0] == t.type)
        raw = np.asarray(self.raw(t)).reshape(-1, block_bytes)
        d = raw[:, -2:].copy().view(np.float16).reshape(-1).astype(np.float32)
        scales = np.unique(d[d != 0])
        if len(scales) > 1:
            raise GgufError(f"{self.path}: tensor {t.name} ({t.type}): its blocks have {len(scales)} different "
                            f"scales ({scales[0]:g} to {scales[-1]:g}); ternbench's formats hold one scale per "
                            "matrix, so this matrix cannot be repacked without loss")
        scale = float(scales[0]) if len(scales) else 1.0
        values = self.floats(t.name)
        w = np.rint(values / np.float32(scale)).astype(np.int8)
        return w, scale, f"{t.type} blocks, one scale"

    def head_type(self) -> str:
        return self.tensors["output.weight" if not self.shape.tied_embeddings else "token_embd.weight"].type

    def linear_type(self) -> str:
        return self.tensors[f"blk.0.{LINEARS['q']}.weight"].type


def default_formats(g: GgufModel) -> tuple[str, str]:
    """The ternbench formats that hold the file's linears and head without loss."""
    linear = TERNARY_TYPES.get(g.linear_type()) or FLOAT_TYPES[g.linear_type()]
    head = "f16" if g.tensors["token_embd.weight"].type == "F16" and g.head_type() == "F16" else "f32"
    return linear, head


def _unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's converter permutes q and k rows of a `llama` model for its interleaved RoPE;
    the runtime rotates halves as Hugging Face does, so the rows go back."""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)


def load_gguf(path, weight_format: str | None = None, head_format: str | None = None,
              max_ctx: int | None = None, kv_format: str = "f16", notes=None) -> Model:
    """A runtime Model from a GGUF file; NOTES (a list), when given, receives how each kind of
    tensor was converted, for the caller to say."""
    g = GgufModel(path)
    linear, head = default_formats(g)
    weight_format, head_format = weight_format or linear, head_format or head
    check_formats(weight_format, head_format, GgufError)
    model = empty_model(g.shape, weight_format, head_format, max_ctx or min(g.max_context, 4096), kv_format,
                        g.path, g.path, GgufError)
    hows = {}
    for layer in range(g.shape.layers):
        for which, base in LINEARS.items():
            name = f"blk.{layer}.{base}.weight"
            w, scale, how = g.ternary(name)
            if g.arch == "llama" and which in ("q", "k"):
                w = _unpermute(w, g.shape.heads if which == "q" else g.shape.kv_heads)
            hows.setdefault(how, 0)
            hows[how] += 1
            try:
                model.set_linear(layer, which, np.ascontiguousarray(w), scale)
            except ValueError as e:
                raise GgufError(f"{g.path}: tensor {name} ({g.tensors[name].type}): {e}") from None
        for which, base in NORMS.items():
            if which.endswith("_sub") and not g.shape.sub_norms:
                continue
            model.set_norm(layer, which, g.floats(f"blk.{layer}.{base}.weight"))
    model.set_norm(-1, "final", g.floats("output_norm.weight"))
    model.set_embedding(g.floats("token_embd.weight"))
    if not g.shape.tied_embeddings:
        model.set_output(g.floats("output.weight"))
    if notes is not None:
        notes.append(f"{g.path.name}: {g.arch}, {g.shape.activation} FFN"
                     + (f" ({ACTIVATION_KEY})" if ACTIVATION_KEY in g.meta else "") + f", linears as {weight_format} from "
                     + "; ".join(f"{n} {how}" for how, n in hows.items())
                     + f"; the {'tied ' if g.shape.tied_embeddings else ''}head ({g.head_type()}) as {head_format}")
    return model
