"""A sweep configuration expanded into points: the cartesian product, minus exclusions, with
each point this machine cannot run set aside with the reason; plus a rough duration estimate."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import psutil

import runtime
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

    def estimate(self, point: Point, config: SweepConfig) -> float:
        return estimate_seconds(point, self.model_refs[point.model].spec, config)


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
        head = sizes.default_head_format(fmt) if head == "auto" else head
        resolved, why = resolve_variant(variant)
        point = Point(ref.label, fmt, head, resolved or variant, threads, kind, tokens)
        if point in seen:
            continue   # head_formats [auto, int8] name the same head for a ternary format
        seen.add(point)
        rule = _excluded_by(point, config)
        if rule is not None:
            used.add(rule)
            continue
        reason = why or cannot_run(point, ref.source, cpus, available)
        (skipped.append(Skipped(point, reason)) if reason else points.append(point))
    unused = [e.line for e in config.exclude if e.line not in used]
    return Plan(points, skipped, unused, refs)


def _excluded_by(point: Point, config: SweepConfig) -> int | None:
    fields = {"model": point.model, "format": point.format, "head_format": point.head_format,
              "variant": point.variant, "threads": str(point.threads), "workload": point.workload,
              "test": point.test}

    def matches(key, values):
        if key == "variant" and "auto" in values:
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
