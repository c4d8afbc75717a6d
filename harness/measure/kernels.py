"""`ternbench kernels`: times GEMV and GEMM per format x variant x threads, like a model runs.

Each measurement cycles through enough copies of the weight matrix to exceed the
last-level cache several times over, so every call reads its weights from DRAM,
and reports the achieved weight bandwidth against a read-bandwidth probe taken
with the same thread count in the same run: the plain sequential read is the
denominator, the fastest read pattern is reported beside it.
"""
from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass

import numpy as np

import runtime

from runtime import Context, Matrix

from .probe import bracketed, working_set_bytes

# BitNet b1.58 2B4T linear shapes (rows = out features, cols = in features):
# q/o projections, k/v projections (5 kv heads x 128), gate/up, down.
DEFAULT_SHAPES = ((2560, 2560), (640, 2560), (6912, 2560), (2560, 6912))
DEFAULT_FORMATS = ("i2s", "tq1", "f16")
CEILING_FORMATS = ("i2s", "tq1", "tl1", "tl2", "f16")
MAX_CALLS = 20000
MAX_COPIES = 2048  # tiny matrices stay cache-resident; rows say so (from_cache)


@dataclass
class Row:
    op: str
    format: str
    variant: str
    threads: int
    rows: int
    cols: int
    n: int
    median_s: float
    min_s: float
    calls: int
    copies: int
    weight_bytes: int
    weight_gbps: float
    bandwidth_gbps: float          # the plain sequential read probed around this row
    bandwidth_fraction: float      # weight_gbps / bandwidth_gbps
    best_read_pattern: str         # the fastest read pattern of the same probe, and its GB/s
    best_read_gbps: float
    gops: float  # 2 * rows * cols * n / median_s / 1e9 (multiply-adds count as two)
    from_cache: bool  # the cycled copies did not exceed the working-set target: not a DRAM figure
    prefetch: int  # the GEMV tuning the context ran with (bytes; see runtime.tuning)
    claim: int


def versus(rows: list[Row], baseline: str) -> list[dict]:
    """Every other format against `baseline` on the same op, variant, thread count and shape:
    speed-up (baseline median / its median), bytes advantage (baseline bytes / its bytes) and
    their ratio, the fraction of the bytes advantage it turns into speed."""
    base = {(r.op, r.variant, r.threads, r.rows, r.cols): r for r in rows if r.format == baseline}
    out = []
    for r in rows:
        b = base.get((r.op, r.variant, r.threads, r.rows, r.cols))
        if b is None or r.format == baseline:
            continue
        speedup, advantage = b.median_s / r.median_s, b.weight_bytes / r.weight_bytes
        out.append(dict(op=r.op, format=r.format, baseline=baseline, variant=r.variant, threads=r.threads,
                        rows=r.rows, cols=r.cols, speedup=speedup, bytes_advantage=advantage,
                        of_bytes_advantage=speedup / advantage))
    return out


def random_matrix(fmt: str, rows: int, cols: int, seed: int = 0) -> Matrix:
    rng = np.random.default_rng(seed)
    w = rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)  # about one third zeros
    return Matrix.pack(fmt, w, scale=0.05)


def make_copies(fmt: str, rows: int, cols: int, target_bytes: int, seed: int = 0) -> list[Matrix]:
    """Distinct copies of one random ternary matrix totalling at least target_bytes."""
    first = random_matrix(fmt, rows, cols, seed)
    count = min(MAX_COPIES, max(2, math.ceil(target_bytes / first.nbytes)))
    return [first] + [first.clone() for _ in range(count - 1)]


def time_op(ctx: Context, mats: list[Matrix], n: int, budget_s: float) -> list[float]:
    """Per-call seconds for as many calls as fit the time budget: at least 5, or 3
    when one call alone exceeds the budget (the scalar reference's GEMM).

    A GEMV first reads every copy once, untimed, as a model reads its weights token after
    token: on a KVM guest (Xeon family 6 model 167) the first pass over the copies after
    other memory traffic, such as the bandwidth probe just before, ran at 0.6x the speed of
    the passes after it, so a budget spent inside that pass measured the transient, not
    the GEMV (i2s avx2: 5.6 GB/s, where the next passes and a whole model ran 8.6-9.4).
    A kernel whose pass would outlast twice the budget (the scalar ones, at a few % of the
    read) does not wait for memory, and skips it."""
    warm = ctx.bench_matmul(mats[:1], n, 1)[0]  # also sizes the context's scratch
    if n == 1 and warm * len(mats) <= 2 * budget_s:
        ctx.bench_matmul(mats, n, len(mats))
    min_calls = 3 if warm > budget_s else 5
    calls = max(min_calls, min(MAX_CALLS, int(budget_s / max(warm, 1e-6))))
    # start after the warm-up's matrix, which may still be cached
    return ctx.bench_matmul(mats[1:] + mats[:1], n, calls)


def run(formats, variants, threads_list, shapes, ops, n_gemm, budget_s, progress=None):
    """Yields a Row per (thread count, variant, format, shape, op), as measured.

    On a shared machine the available bandwidth drifts from minute to minute, so
    each row's bandwidth is probed just before and just after it, with the same
    thread pool, and the row's fraction uses the median of those passes."""
    ws = working_set_bytes()
    for threads in threads_list:
        for variant in variants:
            with Context(threads, variant) as ctx:
                for fmt in formats:
                    for rows, cols in shapes:
                        mats = make_copies(fmt, rows, cols, ws)
                        for op in ops:
                            n = 1 if op == "gemv" else n_gemm
                            if progress:
                                progress(f"{op} {fmt} {variant} t={threads} {rows}x{cols}")
                            secs, probe = bracketed(ctx, functools.partial(time_op, ctx, mats, n, budget_s))
                            med = statistics.median(secs)
                            gbps = mats[0].nbytes / med / 1e9
                            best, best_gbps = probe.best
                            yield Row(op, fmt, ctx.variant, threads, rows, cols, n, med, min(secs), len(secs),
                                      len(mats), mats[0].nbytes, gbps, probe.plain, gbps / probe.plain, best,
                                      best_gbps, 2.0 * rows * cols * n / med / 1e9, len(mats) * mats[0].nbytes < ws,
                                      *ctx.gemv_tuning(fmt))
                        del mats


# --- the compute ceiling: GEMV with its weights resident in L2 ---

# The share of each thread's L2 its rows fill: the rest holds the activations (and tl's
# tables), so the weights stay resident from call to call.
CEILING_L2_SHARE = 0.5
CEILING_MIN_CALLS = 50
CEILING_ROW_BLOCK = 64  # rows: a multiple of every format's row block (4, and tl's 64)


@dataclass
class CeilingRow:
    format: str
    variant: str
    threads: int
    rows: int
    cols: int
    weight_bytes: int
    l2_bytes: int            # per core, what the rows were sized to
    median_s: float
    min_s: float
    calls: int
    ceiling_gbps: float      # weight bytes / median call time, the matrix resident in L2
    peak_gbps: float         # the same over the fastest call
    read_gbps: float         # the plain sequential read from memory, same threads, same run
    ratio: float             # ceiling_gbps / read_gbps: above 1, the GEMV can keep up with memory


def ceiling_rows(fmt: str, cols: int, threads: int, l2_bytes: int) -> int:
    """Rows of a cols-column matrix of fmt that fill CEILING_L2_SHARE of each thread's L2, in whole
    blocks of CEILING_ROW_BLOCK rows, at least one block per thread."""
    block = CEILING_ROW_BLOCK
    per_block = runtime.matrix_bytes(fmt, block, cols)
    blocks = int(CEILING_L2_SHARE * l2_bytes * threads) // per_block
    return max(threads, blocks) * block


def ceiling(formats, variants, threads_list, cols_list, budget_s, l2_bytes, progress=None):
    """Yields a CeilingRow per (thread count, variant, format, column count): the GEMV of one
    matrix called over and over, so after the first call every thread's rows come from its L2,
    beside the plain read from memory probed with the same thread pool just before and just
    after that pool's rows (one probe per pool: a probe reads gigabytes, a ceiling row does not)."""
    for threads in threads_list:
        for variant in variants:
            # the built-in GEMV settings: prefetch tuning is for streams from memory, and
            # measuring it first would take minutes a ceiling does not need
            with Context(threads, variant, tuning="off") as ctx:

                def measure_all():
                    out = []
                    for fmt in formats:
                        for cols in cols_list:
                            rows = ceiling_rows(fmt, cols, threads, l2_bytes)
                            m = random_matrix(fmt, rows, cols)
                            if progress:
                                progress(f"ceiling {fmt} {variant} t={threads} {rows}x{cols}")
                            warm = min(ctx.bench_matmul([m], 1, 3))
                            calls = max(CEILING_MIN_CALLS, min(MAX_CALLS, int(budget_s / max(warm, 1e-6))))
                            out.append((fmt, rows, cols, m.nbytes, ctx.bench_matmul([m], 1, calls)))
                            del m
                    return out

                timed, probe = bracketed(ctx, measure_all)
                for fmt, rows, cols, nbytes, secs in timed:
                    med, best = statistics.median(secs), min(secs)
                    gbps = nbytes / med / 1e9
                    yield CeilingRow(fmt, ctx.variant, threads, rows, cols, nbytes, l2_bytes, med, best, len(secs),
                                     gbps, nbytes / best / 1e9, probe.plain, gbps / probe.plain)
