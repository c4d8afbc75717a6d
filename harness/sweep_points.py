"""A sweep configuration expanded into points: the cartesian product, minus exclusions, with
each point this machine cannot run set aside with the reason; plus a rough duration estimate."""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import psutil

import runtime

from . import model_bench, models
from .sweep_config import ModelRef, SweepConfig

WORKLOADS = {"pp": "prompt processing: the prompt as one batch",
             "tg": "generation: one token at a time from an empty cache"}


@dataclass(frozen=True)
class Point:
    model: str           # the model's label (preset name or checkpoint directory name)
    format: str
    head_format: str
    variant: str         # as resolved on this machine: never "auto"
    threads: int
    workload: str        # "pp" or "tg"
    tokens: int

    @property
    def test(self) -> str:
        """llama-bench's name for the workload: pp512, tg128."""
        return f"{self.workload}{self.tokens}"

    @property
    def key(self) -> str:
        return f"{self.model}/{self.format}+{self.head_format}/{self.variant}/t{self.threads}/{self.test}"

    @property
    def file_id(self) -> str:
        return self.key.replace("/", "__")

    def to_dict(self) -> dict:
        return asdict(self)


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

    def estimate(self, point: Point, config: SweepConfig) -> float:
        return estimate_seconds(point, self.model_refs[point.model].spec, config)


def resolve_variant(variant: str) -> tuple[str | None, str]:
    """(the variant this machine would run, or None and why it cannot)."""
    if variant == "auto":
        return runtime.best_variant(), ""
    info = {v.name: v for v in runtime.variants()}[variant]
    if not info.compiled:
        return None, f"variant {variant} is not compiled into this runtime build ({runtime.build_info()})"
    if not info.supported:
        return None, f"variant {variant}: {info.why}"
    return variant, ""


def expand(config: SweepConfig) -> Plan:
    refs = {m.label: m for m in config.models}
    cpus = runtime.api.usable_cpus()
    available = psutil.virtual_memory().available
    workloads = [("pp", n) for n in config.prompt] + [("tg", n) for n in config.generation]
    points, skipped, used, seen = [], [], set(), set()
    # formats innermost: a ternary point and its baseline run back to back, so the drift of a
    # shared machine's bandwidth between them is seconds' worth, not a whole model's sweep
    for ref, variant, threads, (kind, tokens), fmt, head in itertools.product(
            config.models, config.variants, config.threads, workloads, config.formats, config.head_formats):
        head = models.default_head_format(fmt) if head == "auto" else head
        resolved, why = resolve_variant(variant)
        point = Point(ref.label, fmt, head, resolved or variant, threads, kind, tokens)
        if point in seen:
            continue   # head_formats [auto, int8] name the same head for a ternary format
        seen.add(point)
        rule = _excluded_by(point, config)
        if rule is not None:
            used.add(rule)
            continue
        reason = why or _cannot_run(point, ref, cpus, available)
        (skipped.append(Skipped(point, reason)) if reason else points.append(point))
    unused = [e.line for e in config.exclude if e.line not in used]
    return Plan(points, skipped, unused, refs)


def _excluded_by(point: Point, config: SweepConfig) -> int | None:
    fields = {"model": point.model, "format": point.format, "head_format": point.head_format,
              "variant": point.variant, "threads": str(point.threads), "workload": point.test}
    for rule in config.exclude:
        if all(fields[k] in vs or (k == "variant" and "auto" in vs) for k, vs in rule.match.items()):
            return rule.line
    return None


def _cannot_run(point: Point, ref: ModelRef, cpus: int, available: int) -> str:
    spec = ref.spec
    if point.threads > cpus:
        return f"{point.threads} threads but only {cpus} usable CPUs"
    try:
        for _, rows, cols in spec.linears():
            runtime.matrix_bytes(point.format, rows, cols)
        runtime.matrix_bytes(point.head_format, spec.vocab, spec.hidden)
    except ValueError as e:
        return f"format {point.format} cannot hold this shape: {e}"
    ctx = point.tokens + 1
    if ctx > spec.max_context:
        return f"{point.tokens} tokens exceed the model's context of {spec.max_context}"
    need = model_bench.memory_needed(spec, point.format, point.head_format, ctx,
                                     point.tokens if point.workload == "pp" else 1, point.threads)
    if ref.kind == "checkpoint":
        need += 2 * 4 * spec.vocab * spec.hidden  # the loader's float copy of the embedding
    if need > available:
        return f"needs about {need / 1e9:.1f} GB of memory, {available / 1e9:.1f} GB is available"
    return ""


# --- duration estimate --------------------------------------------------------------------------
# Rough rates of a current x86 core, used only to plan (dry runs, time budgets, the ETA before the
# first point finishes); the progress display rescales them by what the finished points took.
READ_GBPS_PER_THREAD = 20.0      # DRAM read bandwidth one thread draws ...
READ_GBPS_MAX = 60.0             # ... up to what the memory system gives
GEMM_GOPS_PER_THREAD = {"i2s": 600.0, "tq1": 500.0, "f16": 180.0}
SETUP_GBPS = 0.4                 # synthetic weights generated per second per thread
PROCESS_OVERHEAD_S = 1.5         # interpreter start, imports, the bandwidth probe


def estimate_seconds(point: Point, spec: models.ModelSpec, config: SweepConfig) -> float:
    weights = models.weight_bytes(spec, point.format, point.head_format)
    if point.workload == "tg":
        bandwidth = min(READ_GBPS_MAX, READ_GBPS_PER_THREAD * point.threads) * 1e9
        run = point.tokens * weights / bandwidth
    else:
        ops = 2.0 * models.param_count(spec) * point.tokens
        run = ops / (GEMM_GOPS_PER_THREAD[point.format] * 1e9 * point.threads)
    setup = weights / (SETUP_GBPS * 1e9 * point.threads)
    per_process = PROCESS_OVERHEAD_S + setup + (config.warmups + config.repetitions) * run
    return config.processes * per_process
