"""A sweep configuration expanded into points: the cartesian product, minus exclusions, with
each point this machine cannot run set aside with the reason; plus a rough duration estimate."""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil

import runtime
from harness import engines
from harness.measure.point import Point, cannot_run, resolve_variant
from harness.models import sizes

from .config import ModelRef, SweepConfig


@dataclass(frozen=True)
class Skipped:
    point: Point
    reason: str


@dataclass
class Plan:
    points: list[Point]
    skipped: list[Skipped]
    unused_exclusions: list[int]     # config lines of exclusions that matched nothing
    model_refs: dict[str, ModelRef]  # label -> where the worker finds the model
    engines: dict = field(default_factory=dict)   # external engine name -> its Installation, when found

    def estimate(self, point: Point, config: SweepConfig) -> float:
        return estimate_seconds(point, self.model_refs[point.model].spec, config)


ENGINE_VARIANT = "native"   # an external engine's kernels: whatever its own build chose for this CPU


def as_ternbench(point: Point) -> Point:
    """An external engine's point as the ternbench point of about the same bits per weight: what
    memory, context and duration estimates go by."""
    if point.engine == "ternbench":
        return point
    return replace(point, engine="ternbench", format=engines.LIKE[point.format],
                   head_format="f16" if point.head_format == "f16" else "int8")


def _points(config: SweepConfig, ref: ModelRef, threads: int, kind: str, tokens: int, found: dict):
    """The points compared with each other at one model, threads and test: every ternbench
    variant, format and head, then every external engine's formats (FOUND: each engine's
    installation and why it has none). Each with why it cannot run here, or ""."""
    for variant, fmt, head in itertools.product(config.variants, config.formats, config.head_formats):
        head = sizes.default_head_format(fmt) if head == "auto" else head
        resolved, why = resolve_variant(variant)
        yield Point(ref.label, fmt, head, resolved or variant, threads, kind, tokens), why
    held = _file_format(ref) if config.engines else None
    for engine in config.engines:
        installation, why = found[engine.name]
        for fmt in engine.formats:
            point = Point(ref.label, fmt, engines.HEAD_FORMAT[fmt], ENGINE_VARIANT, threads, kind, tokens,
                          engine=engine.name)
            mismatch = held is not None and fmt != held and \
                f"the GGUF file holds {held} linears; {engine.name} runs it as {held} only"
            unfit = held is None and engines.cannot_write(engine.name, fmt, ref.spec, installation)
            yield point, (why and f"{engine.name}: {why}") or mismatch or (unfit and f"{engine.name}: {unfit}") or ""


def _file_format(ref: ModelRef) -> str | None:
    """An engine's name for the linears of a GGUF model (None for presets: any format is written)."""
    return _linear_type(ref.path) if ref.kind == "gguf" else None


@functools.lru_cache(maxsize=None)
def _linear_type(path: str) -> str:
    """Read once per file, not once per thread count and workload."""
    from harness.models.gguf_file import GgufModel

    return GgufModel(path).linear_type().lower()


def _disk(point: Point, ref: ModelRef, seed: int) -> str:
    """Why the cache's disk cannot hold the GGUF files an engine point needs ("" when it can)."""
    import shutil

    from harness.engines import gguf_model
    from runtime.tuning import cache_dir

    def bytes_of(fmt):
        like = as_ternbench(replace(point, format=fmt, head_format=engines.HEAD_FORMAT[fmt]))
        return sizes.weight_bytes(ref.spec, like.format, like.head_format)

    cache = cache_dir()
    need = gguf_model.disk_needed(ref.spec, seed, point.format, cache, bytes_of,
                                  ref.identity if ref.kind == "checkpoint" else None)
    probe = next((p for p in (cache, *cache.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free
    if need > free:
        return (f"its GGUF files need about {need / 1e9:.1f} GB in {cache}, {free / 1e9:.1f} GB is free "
                "(TERNBENCH_CACHE_DIR moves the cache)")
    return ""


def expand(config: SweepConfig) -> Plan:
    refs = {m.label: m for m in config.models}
    cpus = runtime.api.usable_cpus()
    available = psutil.virtual_memory().available
    workloads = [("pp", n) for n in config.prompt] + [("tg", n) for n in config.generation]
    points, skipped, used, seen = [], [], set(), set()
    found = {e.name: engines.find(e.name, e.bin) for e in config.engines}
    # engines, variants and formats innermost: the points compared with each other run
    # interleaved (sweep/runner.py), so the drift of a shared machine lands on all of them
    for ref, threads, (kind, tokens) in itertools.product(config.models, config.threads, workloads):
        for point, why in _points(config, ref, threads, kind, tokens, found):
            if point in seen:
                continue   # head_formats [auto, int8] name the same head for a ternary format
            seen.add(point)
            rule = _excluded_by(point, config)
            if rule is not None:
                used.add(rule)
                continue
            reason = why or cannot_run(as_ternbench(point), ref.source, cpus, available) or \
                (point.engine != "ternbench" and ref.kind != "gguf" and _disk(point, ref, config.seed))
            (skipped.append(Skipped(point, reason)) if reason else points.append(point))
    unused = [e.line for e in config.exclude if e.line not in used]
    return Plan(points, skipped, unused, refs, {k: v for k, (v, _) in found.items() if v is not None})


def _excluded_by(point: Point, config: SweepConfig) -> int | None:
    fields = {"engine": point.engine, "model": point.model, "format": point.format, "head_format": point.head_format,
              "variant": point.variant, "threads": str(point.threads), "workload": point.workload,
              "test": point.test}

    def matches(key, values):
        if key == "variant" and "auto" in values and point.engine == "ternbench":
            return True
        # configs before `test` existed wrote the test under `workload` (workload: tg128)
        return fields[key] in values or (key == "workload" and point.test in values)

    for rule in config.exclude:
        if all(matches(k, vs) for k, vs in rule.match.items()):
            return rule.line
    return None


# --- duration estimate --------------------------------------------------------------------------
# Rough rates of a current x86 core, used only to plan (dry runs, time budgets, the ETA before the
# first point finishes); the progress display rescales them by what the finished points took.
READ_GBPS_PER_THREAD = 20.0      # DRAM read bandwidth one thread draws ...
READ_GBPS_MAX = 60.0             # ... up to what the memory system gives
# tl1/tl2 run the i2s GEMM on weights decoded from their look-up indices: the decoding costs
GEMM_GOPS_PER_THREAD = {"i2s": 600.0, "tq1": 500.0, "tl1": 400.0, "tl2": 400.0, "f16": 180.0, "f32": 90.0}
SETUP_GBPS = 0.4                 # synthetic weights generated per second per thread
PROCESS_OVERHEAD_S = 1.5         # interpreter start, imports, the bandwidth probe


def estimate_seconds(point: Point, spec, config: SweepConfig) -> float:
    point = as_ternbench(point)
    weights = sizes.weight_bytes(spec, point.format, point.head_format)
    if point.workload == "tg":
        bandwidth = min(READ_GBPS_MAX, READ_GBPS_PER_THREAD * point.threads) * 1e9
        run = point.tokens * weights / bandwidth
    else:
        ops = 2.0 * sizes.param_count(spec) * point.tokens
        run = ops / (GEMM_GOPS_PER_THREAD.get(point.format, 90.0) * 1e9 * point.threads)
    setup = weights / (SETUP_GBPS * 1e9 * point.threads)
    per_process = PROCESS_OVERHEAD_S + setup + (config.warmups + config.repetitions) * run
    return config.processes * per_process
