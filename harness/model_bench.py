"""One benchmark point of a whole model, as llama-bench measures one: prompt
processing (pp: the prompt as one batch) and text generation (tg: one token at a
time from an empty cache), each repeated after a warm-up.

Set-up (weight generation) is outside the timed region. The read bandwidth is
probed with the same thread pool just before and after the timed runs."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import psutil

from runtime import Context, Model, ModelShape

from . import kernel_bench
from .models import ModelSpec


class DoesNotFit(Exception):
    """The model would not fit in the memory available."""


def shape_of(spec: ModelSpec) -> ModelShape:
    return ModelShape(vocab=spec.vocab, hidden=spec.hidden, ffn=spec.ffn, layers=spec.layers, heads=spec.heads,
                      kv_heads=spec.kv_heads, head_dim=spec.head_dim, rope_theta=spec.rope_theta,
                      norm_eps=spec.norm_eps, activation=spec.activation, sub_norms=spec.sub_norms,
                      tied_embeddings=spec.tied_embeddings)


def memory_needed(spec: ModelSpec, fmt: str, head_fmt: str, tokens: int, batch: int, threads: int = 1,
                  kv: str = "f16") -> int:
    """Weights + the runtime's KV cache + scratch (models.memory_estimate), plus the
    context's activation buffers: a token-major and an interleaved copy of the batch and the
    int32 outputs, at the widest matrix."""
    from . import models

    est = models.memory_estimate(spec, fmt, head_fmt, tokens, batch, threads, kv_dtype=kv)
    width = max(spec.hidden, spec.ffn, spec.q_dim)
    return est["total"] + 3 * 4 * max(batch, 32) * width


def check_fits(spec: ModelSpec, fmt: str, head_fmt: str, tokens: int, batch: int, threads: int = 1,
               kv: str = "f16") -> int:
    need = memory_needed(spec, fmt, head_fmt, tokens, batch, threads, kv)
    have = psutil.virtual_memory().available
    if need > have:
        raise DoesNotFit(f"{spec.name} in {fmt} needs about {need / 1e9:.2f} GB (weights, KV cache for {tokens} "
                         f"tokens, scratch) but only {have / 1e9:.2f} GB is available")
    return need


@dataclass
class PointResult:
    model: str
    format: str
    head_format: str
    kv_cache: str
    variant: str
    threads: int
    n_prompt: int
    n_gen: int
    reps: int
    pp_tps: float            # median over repetitions
    pp_tps_stddev: float
    tg_tps: float
    tg_tps_stddev: float
    pp_samples_s: list = field(default_factory=list)
    tg_samples_s: list = field(default_factory=list)
    bytes_per_token: int = 0  # weight bytes one generated token reads
    tg_bandwidth_gbps: float = 0.0
    bandwidth_gbps: float = 0.0  # the plain sequential read, probed around the timed runs
    bandwidth_fraction: float = 0.0   # tg_bandwidth_gbps / bandwidth_gbps
    bandwidth_reference: str = kernel_bench.REFERENCE
    read_patterns_gbps: dict = field(default_factory=dict)  # every pattern of the same probe
    setup_s: float = 0.0
    tuning: dict = field(default_factory=dict)  # the GEMV tuning the context ran with


def _stdev(xs):
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def run_point(spec: ModelSpec, fmt: str, head_fmt: str, variant: str, threads: int, n_prompt: int, n_gen: int,
              reps: int = 5, seed: int = 0, progress=None, kv: str = "f16") -> PointResult:
    max_ctx = max(n_prompt, n_gen) + 1
    check_fits(spec, fmt, head_fmt, max_ctx, max(n_prompt, 1), threads, kv)
    rng = np.random.default_rng(seed)
    with Context(threads, variant) as ctx:
        t0 = time.perf_counter()
        model = Model(shape_of(spec), fmt, head_fmt, max_ctx=max_ctx, kv_format=kv)
        model.init_random(ctx, seed)
        setup = time.perf_counter() - t0
        prompt = rng.integers(0, spec.vocab, size=max(n_prompt, 1)).astype(np.int32)

        def pp():
            model.reset()
            t = time.perf_counter()
            model.forward(ctx, prompt)
            return time.perf_counter() - t

        def tg():
            model.reset()
            tok = int(prompt[0])
            t = time.perf_counter()
            for _ in range(n_gen):
                tok = model.forward(ctx, [tok])
            return time.perf_counter() - t

        def repetitions():
            pp_s, tg_s = [], []
            for r in range(reps + 1):  # the first repetition is the warm-up
                if progress:
                    progress(f"{spec.name} {fmt} t={threads} {'warm-up' if r == 0 else f'rep {r}/{reps}'}")
                a = pp() if n_prompt else None
                b = tg() if n_gen else None
                if r:
                    if a is not None:
                        pp_s.append(a)
                    if b is not None:
                        tg_s.append(b)
            return pp_s, tg_s

        (pp_s, tg_s), probe = kernel_bench.bracketed(ctx, repetitions)
        bw = probe.plain
        pp_tps = [n_prompt / s for s in pp_s]
        tg_tps = [n_gen / s for s in tg_s]
        tg_med = statistics.median(tg_tps) if tg_tps else 0.0
        per_token = model.bytes_per_token
        return PointResult(
            model=spec.name, format=fmt, head_format=head_fmt, kv_cache=kv, variant=ctx.variant,
            threads=threads, n_prompt=n_prompt, n_gen=n_gen, reps=reps,
            pp_tps=statistics.median(pp_tps) if pp_tps else 0.0, pp_tps_stddev=_stdev(pp_tps),
            tg_tps=tg_med, tg_tps_stddev=_stdev(tg_tps), pp_samples_s=pp_s, tg_samples_s=tg_s,
            bytes_per_token=per_token, tg_bandwidth_gbps=per_token * tg_med / 1e9, bandwidth_gbps=bw,
            bandwidth_fraction=per_token * tg_med / 1e9 / bw, read_patterns_gbps=probe.medians(), setup_s=setup,
            tuning=ctx.tuning.to_json())
