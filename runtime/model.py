"""A whole BitNet b1.58 model in the C runtime: weights, KV cache, forward pass."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._rt import ffi, lib
from .api import TERNARY_FORMATS, Context, _array, _fail

LINEARS = ("q", "k", "v", "o", "gate", "up", "down")
NORMS = ("attn", "ffn", "attn_sub", "ffn_sub")
HEAD_FORMATS = ("int8", "f16", "f32")
KV_FORMATS = ("f16", "f32")
LINEAR_FORMATS = TERNARY_FORMATS + ("f16", "f32")


@dataclass(frozen=True)
class ModelShape:
    """What the C runtime needs to know of an architecture."""
    vocab: int
    hidden: int
    ffn: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    rope_theta: float = 500000.0
    norm_eps: float = 1e-5
    activation: str = "relu2"   # relu2 (BitNet b1.58) or silu (LLaMA-style)
    sub_norms: bool = True
    tied_embeddings: bool = True


class Model:
    """A model with weights in one format (a ternary one, or the `f16` baseline), a head
    (embedding / output) format, and `max_ctx` tokens of KV cache in `kv_format`."""

    def __init__(self, shape: ModelShape, weight_format: str, head_format: str = "f16", max_ctx: int = 4096,
                 float_act_quant: bool = False, kv_format: str = "f16"):
        """float_act_quant (float weight formats): quantise each linear's input per token to
        int8 and back, so f32 weights compute the float reference of the ternary model."""
        if weight_format not in LINEAR_FORMATS:
            raise ValueError(f"weight format must be one of {', '.join(LINEAR_FORMATS)}; got {weight_format!r}")
        if head_format not in HEAD_FORMATS:
            raise ValueError(f"head format must be one of {', '.join(HEAD_FORMATS)}; got {head_format!r}")
        if kv_format not in KV_FORMATS:
            raise ValueError(f"KV cache format must be one of {', '.join(KV_FORMATS)}; got {kv_format!r}")
        if shape.activation not in ("relu2", "silu"):
            raise ValueError(f"activation must be relu2 or silu, got {shape.activation!r}")
        cfg = ffi.new("tb_model_config *")
        for f in ("vocab", "hidden", "ffn", "layers", "heads", "kv_heads", "head_dim"):
            setattr(cfg, f, int(getattr(shape, f)))
        cfg.max_ctx = int(max_ctx)
        cfg.rope_theta = float(shape.rope_theta)
        cfg.norm_eps = float(shape.norm_eps)
        cfg.act_silu = shape.activation == "silu"
        cfg.sub_norms = bool(shape.sub_norms)
        cfg.tied_head = bool(shape.tied_embeddings)
        cfg.weight_fmt = lib.tb_format_id(weight_format.encode())
        cfg.head_fmt = lib.tb_format_id(head_format.encode())
        cfg.float_act_quant = bool(float_act_quant)
        cfg.kv_fmt = lib.tb_format_id(kv_format.encode())
        ptr = lib.tb_model_new(cfg)
        if ptr == ffi.NULL:
            _fail(ValueError)
        self._ptr = ffi.gc(ptr, lib.tb_model_free)
        self.shape, self.weight_format, self.head_format, self.max_ctx = shape, weight_format, head_format, max_ctx
        self.kv_format = kv_format
        self._logits = np.empty(shape.vocab, dtype=np.float32)

    # ---- weights ----
    def init_random(self, ctx: Context, seed: int = 0) -> None:
        """Synthetic weights generated in C, multithreaded; same seed, same values in every format."""
        with ctx._lock:  # the context's pool serves one call at a time
            rc = lib.tb_model_init_random(self._ptr, ctx._live(), seed & (2**64 - 1))
        if rc != 0:
            _fail()

    def linear_shape(self, which: str) -> tuple[int, int]:
        s = self.shape
        q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
        return {"q": (q, s.hidden), "k": (kv, s.hidden), "v": (kv, s.hidden), "o": (s.hidden, q),
                "gate": (s.ffn, s.hidden), "up": (s.ffn, s.hidden), "down": (s.hidden, s.ffn)}[which]

    def set_linear(self, layer: int, which: str, w: np.ndarray, scale: float) -> None:
        """Ternary values (int8 in {-1, 0, 1}) of one linear layer, times one scale."""
        if which not in LINEARS:
            raise ValueError(f"unknown linear {which!r}; one of {', '.join(LINEARS)}")
        _array(f"layer {layer} {which}", w, np.int8, (2,))
        if w.shape != self.linear_shape(which):
            raise ValueError(f"layer {layer} {which}: expected shape {self.linear_shape(which)}, got {w.shape}")
        if lib.tb_model_set_linear(self._ptr, layer, LINEARS.index(which), ffi.from_buffer("signed char[]", w),
                                   float(scale)) != 0:
            _fail(ValueError)

    def set_norm(self, layer: int, which: str, w: np.ndarray) -> None:
        """RMSNorm weights of a layer (`attn`, `ffn`, `attn_sub`, `ffn_sub`), or layer -1 `final`."""
        s = self.shape
        sizes = {"attn": s.hidden, "ffn": s.hidden, "attn_sub": s.heads * s.head_dim, "ffn_sub": s.ffn,
                 "final": s.hidden}
        if which not in sizes:
            raise ValueError(f"unknown norm {which!r}; one of {', '.join(sizes)}")
        _array(f"norm {which}", w, np.float32, (1,))
        if w.shape != (sizes[which],):
            raise ValueError(f"norm {which}: expected {sizes[which]} values, got {w.shape[0]}")
        kind = 4 if which == "final" else NORMS.index(which)
        if lib.tb_model_set_norm(self._ptr, -1 if which == "final" else layer, kind,
                                 ffi.from_buffer("float[]", w)) != 0:
            _fail(ValueError)

    def _set_head(self, fn, name, w):
        _array(name, w, np.float32, (2,))
        if w.shape != (self.shape.vocab, self.shape.hidden):
            raise ValueError(f"{name}: expected shape {(self.shape.vocab, self.shape.hidden)}, got {w.shape}")
        if fn(self._ptr, ffi.from_buffer("float[]", w)) != 0:
            _fail(ValueError)

    def set_embedding(self, w: np.ndarray) -> None:
        self._set_head(lib.tb_model_set_embedding, "embedding", w)

    def set_output(self, w: np.ndarray) -> None:
        self._set_head(lib.tb_model_set_output, "output head", w)

    # ---- running ----
    @property
    def pos(self) -> int:
        return lib.tb_model_pos(self._ptr)

    @property
    def weight_bytes(self) -> int:
        return lib.tb_model_weight_bytes(self._ptr)

    @property
    def bytes_per_token(self) -> int:
        """Weight bytes one generated token reads: every linear layer and the output head."""
        return lib.tb_model_bytes_per_token(self._ptr)

    @property
    def busy_seconds(self) -> float:
        """Seconds spent inside forward since creation, timed by the runtime in C."""
        return lib.tb_model_busy_seconds(self._ptr)

    def reset(self) -> None:
        lib.tb_model_reset(self._ptr)

    def forward(self, ctx: Context, tokens, logits: bool = False):
        """Runs the tokens as one batch at the current position; returns the next token
        (argmax), and the last token's logits when asked."""
        ids = np.ascontiguousarray(tokens, dtype=np.int32).reshape(-1)
        if ids.size == 0:
            raise ValueError("forward needs at least one token")
        with ctx._lock:
            nxt = lib.tb_model_forward(self._ptr, ctx._live(), ffi.from_buffer("int[]", ids), ids.size,
                                       ffi.from_buffer("float[]", self._logits) if logits else ffi.NULL)
        if nxt < 0:
            _fail(ValueError)
        return (nxt, self._logits.copy()) if logits else nxt

    def generate(self, ctx: Context, prompt, n: int) -> list[int]:
        """Greedy: prefill the prompt in one batch, then n - 1 more steps one token at a time."""
        out = [self.forward(ctx, prompt)]
        for _ in range(n - 1):
            out.append(self.forward(ctx, [out[-1]]))
        return out
