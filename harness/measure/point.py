"""One benchmark point, measured one way for `ternbench bench` and for every sweep point.

A point is a model x format x head format x kernel variant x threads x workload x tokens, the
way llama-bench names its tests: `pp512` is the prompt of 512 tokens as one batch, `tg128` is
128 tokens generated one at a time from an empty cache. It runs in a worker subprocess under
pyperf (measure/worker.py): the model is built outside the timed region, each process runs its
warm-ups then its timed values, the read bandwidth is probed with the same thread pool before
and after them, and energy is read around each timed pass. Its record (measure/record.py) is
derived from pyperf's JSON and the workers' sidecar lines, which stay beside it. This module
says what a point is and whether this machine can run it; measure/execute.py runs it."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import runtime
from harness.models import sizes

# The meaning of `workload` everywhere (points, configs' exclude, claims, tables, reports):
# its name, and how it is timed.
WORKLOADS = {"pp": "prompt processing", "tg": "generation"}
TIMED_AS = {"pp": "the prompt as one batch", "tg": "tokens generated one at a time from an empty cache"}


@dataclass(frozen=True)
class Point:
    model: str           # the model's label (preset name, checkpoint directory or GGUF file name)
    format: str
    head_format: str
    variant: str         # as resolved on this machine: never "auto"
    threads: int
    workload: str        # a key of WORKLOADS
    tokens: int
    kv_cache: str = "f16"  # the KV cache format (named in the key only when not the default)
    engine: str = "ternbench"  # the program measured (engines/): named in the key when not ternbench

    @property
    def test(self) -> str:
        """llama-bench's name for the workload and its length: pp512, tg128."""
        return f"{self.workload}{self.tokens}"

    @property
    def key(self) -> str:
        kv = "" if self.kv_cache == "f16" else f"/kv-{self.kv_cache}"
        engine = "" if self.engine == "ternbench" else f"{self.engine}:"
        return f"{engine}{self.model}/{self.format}+{self.head_format}/{self.variant}/t{self.threads}/{self.test}{kv}"

    @property
    def file_id(self) -> str:
        return self.key.replace("/", "__")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Source:
    """Where the worker finds the model: a preset name, a preset YAML file, a checkpoint directory or
    a GGUF file; for an external engine's point, the GGUF file it runs and the engine's installation."""
    kind: str            # "preset", "checkpoint" or "gguf"
    location: str        # the preset's name, or the absolute path of its file or directory
    spec: object         # the shape (a ModelSpec), for planning
    engine: object = None  # an external engine's Installation (engines/llamacpp.py); None: ternbench's runtime


@dataclass(frozen=True)
class Settings:
    """How each point is measured; the same for every point of a sweep."""
    repetitions: int = 5       # timed values per worker process
    warmups: int = 1           # untimed runs per worker process before them
    processes: int = 2         # worker processes per point
    seed: int = 0              # of the synthetic weights and the prompt
    pin_threads: bool = False  # pin the worker to the first N usable CPUs (N = the point's threads)
    energy: dict | None = None  # the chosen backend's worker settings (energy_window.worker_settings)
    idle_watts: float | None = None
    workspace: str | None = None   # where workers start: its `runtime` is the build measured (None: this checkout)


@dataclass(frozen=True)
class Files:
    """Where one point's outputs go, under `root` (a results directory)."""
    root: Path
    pyperf: Path
    sidecar: Path
    log: Path

    @classmethod
    def under(cls, root: Path, point: Point) -> "Files":
        fid = point.file_id
        return cls(root, root / f"pyperf/{fid}.json", root / f"raw/{fid}.jsonl", root / f"logs/{fid}.log")


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


def cannot_run(point: Point, source: Source, cpus: int, available: int) -> str:
    """Why this machine cannot run the point ("" when it can): threads, a shape the format
    cannot hold, the model's context, memory."""
    spec = source.spec
    if point.threads > cpus:
        return f"{point.threads} threads but only {cpus} usable CPUs"
    try:
        for _, rows, cols in sizes.linear_shapes(spec):
            runtime.matrix_bytes(point.format, rows, cols)
        runtime.matrix_bytes(point.head_format, spec.vocab, spec.hidden)
    except ValueError as e:
        return f"format {point.format} cannot hold this shape: {e}"
    ctx = point.tokens + 1
    if ctx > spec.max_context:
        return f"{point.tokens} tokens exceed the model's context of {spec.max_context}"
    need = sizes.memory_estimate(spec, point.format, point.head_format, ctx,
                                 point.tokens if point.workload == "pp" else 1, point.threads,
                                 loading=source.kind in ("checkpoint", "gguf"))["total"]
    if need > available:
        return f"needs about {need / 1e9:.1f} GB of memory, {available / 1e9:.1f} GB is available"
    return ""


def tune(points, log) -> None:
    """Every (variant, threads) of the points gets its kernel tuning before the first point, so
    that no worker measures one inside a point's set-up (they find it cached)."""
    import warnings

    for variant, threads in sorted({(p.variant, p.threads) for p in points if p.engine == "ternbench"}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # more threads than CPUs: said per point
            with runtime.Context(threads, variant, tuning="off") as ctx:
                t = runtime.tuning.apply(ctx, progress=lambda m, v=ctx.variant, t=threads: log(
                    f"  tuning the {v} kernels, {t} thread(s): {m}"))
        if t.source == "measured":
            log(f"  tuned {t.variant}, {threads} thread(s), prefetch bytes / claim: {runtime.tuning.describe(t.to_json())}")


