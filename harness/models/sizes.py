"""What a model costs: parameters, bytes of weights in each format, and the memory a run
needs. The one memory estimate every command and the sweep planner use.

Every function takes a shape: a preset's ModelSpec or the runtime's ModelShape (a checkpoint's)."""
from __future__ import annotations

import runtime

GEMM_PANEL_ROWS = 12  # rows of weights a GEMM thread decodes into its scratch panel
KV_BYTES = {"f16": 2, "f32": 4}


class DoesNotFit(Exception):
    """The model would not fit in the memory available."""


def default_head_format(fmt: str) -> str:
    """int8 embedding/head for the ternary formats (their bytes per token matter, see the
    README); f16 for the float formats, so the FP16 baseline stays an FP16 model throughout."""
    return "int8" if fmt in runtime.TERNARY_FORMATS else "f16"


def linear_shapes(s) -> list[tuple[str, int, int]]:
    """(name, rows, cols) of one layer's linear maps; rows are output features."""
    h, f, q, kv = s.hidden, s.ffn, s.heads * s.head_dim, s.kv_heads * s.head_dim
    return [("q", q, h), ("k", kv, h), ("v", kv, h), ("o", h, q), ("gate", f, h), ("up", f, h), ("down", h, f)]


def _norm_params(s) -> int:
    """RMSNorm weights: two per layer, the optional sub-norms, and the final norm."""
    per_layer = 2 * s.hidden + (s.heads * s.head_dim + s.ffn if s.sub_norms else 0)
    return s.layers * per_layer + s.hidden


def param_count(s) -> int:
    """Every parameter: embedding, the output head when untied, linears and norm weights."""
    embedding = s.vocab * s.hidden * (1 if s.tied_embeddings else 2)
    linears = s.layers * sum(rows * cols for _, rows, cols in linear_shapes(s))
    return embedding + linears + _norm_params(s)


def linear_bytes(fmt: str, rows: int, cols: int) -> int:
    """Bytes of one packed matrix, each row padded to the format's column block (the runtime's own count)."""
    if fmt not in runtime.LINEAR_FORMATS:
        raise ValueError(f"unknown weight format {fmt!r}; known: {', '.join(runtime.LINEAR_FORMATS)}")
    return runtime.matrix_bytes(fmt, rows, cols)


def head_bytes(s, head_fmt: str) -> int:
    """One vocab x hidden matrix: int8 values plus one float scale per row, or plain f16/f32."""
    if head_fmt not in runtime.HEAD_FORMATS:
        raise ValueError(f"unknown head format {head_fmt!r}; known: {', '.join(runtime.HEAD_FORMATS)}")
    return runtime.matrix_bytes(head_fmt, s.vocab, s.hidden)


def weight_bytes(s, fmt: str, head_fmt: str | None = None) -> int:
    """Bytes of all weights in the runtime's formats: linears in `fmt`, the embedding (and the
    separate output head of an untied model) in `head_fmt`, norm weights in float32."""
    head_fmt = head_fmt or default_head_format(fmt)
    linears = s.layers * sum(linear_bytes(fmt, rows, cols) for _, rows, cols in linear_shapes(s))
    heads = head_bytes(s, head_fmt) * (1 if s.tied_embeddings else 2)
    return linears + heads + 4 * _norm_params(s)


def kv_cache_bytes(s, tokens: int, kv: str = "f16") -> int:
    """Keys and values of every layer for `tokens` positions of one sequence."""
    if kv not in KV_BYTES:
        raise ValueError(f"unknown KV cache type {kv!r}; known: {', '.join(KV_BYTES)}")
    return 2 * s.layers * tokens * s.kv_heads * s.head_dim * KV_BYTES[kv]


def memory_estimate(s, fmt: str, head_fmt: str | None = None, tokens: int = 4096, batch: int = 1,
                    threads: int = 1, kv: str = "f16", loading: bool = False) -> dict[str, int]:
    """An upper bound on resident bytes when `tokens` positions are cached and `batch` tokens are
    computed in one forward step (1 when generating, the prompt when prefilling).

    Scratch is deliberately generous, all float32: per token in the step, the residual, normed and
    attention-output vectors plus spare (4 x hidden), gate, up and their product (3 x ffn), q and the
    attention context (2 x q_dim) and one row of attention scores per head (heads x tokens); the
    logits of one token (vocab); each thread's GEMM panel (12 rows of the widest matrix); and the
    context's activation buffers (a token-major and an interleaved copy of the batch and the int32
    outputs at the widest matrix, for at least 32 tokens). `loading`: a checkpoint being converted,
    whose loader holds its largest tensor (the embedding) as float32 beside its file copy."""
    q = s.heads * s.head_dim
    width = max(s.hidden, s.ffn, q)
    per_token = 4 * s.hidden + 3 * s.ffn + 2 * q + s.heads * tokens
    panels = threads * GEMM_PANEL_ROWS * max(s.hidden, s.ffn)
    out = {
        "weights": weight_bytes(s, fmt, head_fmt),
        "kv_cache": kv_cache_bytes(s, tokens, kv),
        "scratch": 4 * (batch * per_token + s.vocab + panels) + 3 * 4 * max(batch, 32) * width,
        "loading": 2 * 4 * s.vocab * s.hidden if loading else 0,
    }
    out["total"] = sum(out.values())
    return out


def check_fits(s, fmt: str, head_fmt: str, tokens: int, batch: int = 1, threads: int = 1, kv: str = "f16",
               loading: bool = False, name: str = "the model") -> dict[str, int]:
    """The estimate, or DoesNotFit naming what needs how much when it exceeds the available memory."""
    import psutil

    need = memory_estimate(s, fmt, head_fmt, tokens, batch, threads, kv, loading)
    have = psutil.virtual_memory().available
    if need["total"] > have:
        converting = f", {gb(need['loading'])} while converting" if loading else ""
        raise DoesNotFit(f"{name} in {fmt} needs about {gb(need['total'])} (weights {gb(need['weights'])} with a "
                         f"{head_fmt or default_head_format(fmt)} head, KV cache {gb(need['kv_cache'])} for {tokens} "
                         f"tokens, scratch {gb(need['scratch'])}{converting}) but only {gb(have)} is available")
    return need


def gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e7 else f"{n / 1e6:.2f} MB"
