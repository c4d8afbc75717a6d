"""The claims file: its schema (documented at the top of configs/claims/bitnet-cpp.yaml), read and
validated into Claims; a bad file raises ClaimsError, one line naming the file, the line and the key."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

import runtime
from harness import yaml_source
from harness.measure.point import WORKLOADS
from harness.sweep.config import ENGINE_FORMATS, ENGINE_NAMES
from harness.models.presets import ModelSpecError, display_path, find_model

METRICS = ("speedup", "energy_reduction", "tokens_per_s", "lossless", "build_comparison")


POINT_METRICS = ("speedup", "energy_reduction", "tokens_per_s")


ARCHES = ("x86_64", "aarch64", "any")
ENGINES = ENGINE_NAMES

KEYS = ("id", "title", "source", "statement", "metric", "range", "min", "arch", "cpu", "cpu_threads", "threads",
        "models", "workload", "tokens", "prompts", "baseline", "formats", "head_format", "runtimes", "energy",
        "energy_method", "per_size", "note", "engine", "engine_formats", "baseline_engine")


# keys a metric requires (besides id, title, source, statement, metric and range or min)
REQUIRED = {"speedup": ("arch", "threads", "models", "workload", "formats", "baseline"),
            "energy_reduction": ("arch", "threads", "models", "workload", "formats", "baseline", "energy"),
            "tokens_per_s": ("arch", "threads", "models", "workload", "formats"),
            "lossless": ("models", "formats"),
            "build_comparison": ()}


# keys that mean something for some metrics only
ONLY_FOR = {"energy": ("energy_reduction",), "energy_method": ("energy_reduction",), "prompts": ("lossless",),
            "baseline": ("speedup", "energy_reduction"), "baseline_engine": ("speedup", "energy_reduction"),
            "per_size": ("speedup", "energy_reduction", "tokens_per_s")}


class ClaimsError(Exception):
    """A claims file that cannot be used; the message names the file, the line and the key."""


@dataclass(frozen=True)
class Claim:
    id: str
    title: str
    source: str
    statement: str
    metric: str
    lo: float
    hi: float | None                 # None: only a lower bound (`min`)
    arch: str = "any"
    cpu: tuple[str, ...] = ()
    cpu_threads: int | None = None
    threads: str | int | None = None  # "all" or a count
    models: tuple[str, ...] = ()      # canonical preset names (2.5B -> 2B4T), in the file's order
    workload: str | None = None
    tokens: int | None = None
    prompts: int | None = None
    baseline: str | None = None
    formats: tuple[str, ...] = ()
    head_format: str | None = None
    runtimes: str | None = None
    energy: str | None = None
    energy_method: str | None = None
    note: str | None = None
    per_size: tuple[tuple[str, float], ...] = ()   # (canonical model name, published figure), by size
    engine: str | None = None              # the claim's own program, when a sweep can run it (bitnetcpp)
    engine_formats: tuple[str, ...] = ()   # its formats that stand for the claimed kernels
    baseline_engine: str | None = None     # the program of the claim's baseline (llamacpp)
    line: int = 0


def load_claims(path) -> list[Claim]:
    path = Path(path)
    where = display_path(path)

    def error(message, line=None, key=None):
        return ClaimsError(f"{where}:{f' line {line}:' if line else ''}{f' key {key!r}:' if key else ''} {message}")

    try:
        _, doc = yaml_source.load_file(path, "claims file")
    except yaml_source.YamlProblem as e:
        raise error(e.message, e.line) from None
    if not isinstance(doc, yaml_source.LDict):
        raise error("expected a mapping with claims: [...] (and optionally description)", 1)
    for key in doc:
        if key not in ("description", "claims"):
            raise error("unknown key; allowed keys: description, claims", doc.lines[key], key)
    items = doc.get("claims")
    if not isinstance(items, yaml_source.LList) or not items:
        raise error("must be a non-empty list of claims", doc.lines.get("claims", doc.line), "claims")
    claims, seen = [], {}
    for i, (item, line) in enumerate(zip(items, items.lines)):
        if not isinstance(item, yaml_source.LDict):
            raise error(f"each claim must be a mapping of keys, got {item!r}", line, f"claims[{i}]")
        claim = _Entry(item, f"claims[{i}]", error).claim()
        if claim.id in seen:
            raise error(f"id {claim.id!r} is used twice (first on line {seen[claim.id]})", item.lines["id"],
                        f"{claim.id}.id")
        seen[claim.id] = item.lines["id"]
        claims.append(claim)
    return claims


class _Entry:
    """One claim of the file, validated key by key."""

    def __init__(self, item, label, error):
        self.item, self.label, self.error = item, label, error

    def fail(self, key, message, line=None):
        return self.error(message, line or self.item.lines.get(key, self.item.line), f"{self.label}.{key}")

    def claim(self) -> Claim:
        item = self.item
        cid = self.text("id", required=True)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", cid):
            raise self.fail("id", f"{cid!r} must be letters, digits, - and _")
        self.label = cid   # later messages name the claim by its id
        for key in item:
            if key not in KEYS:
                close = difflib.get_close_matches(key, KEYS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.fail(key, f"unknown key{hint}; allowed keys: {', '.join(KEYS)}")
        metric = self.choice("metric", METRICS, required=True)
        for key in ("title", "source", "statement", *REQUIRED[metric]):
            if key not in item:
                raise self.fail(key, f"missing; a {metric} claim needs {', '.join(REQUIRED[metric]) or 'no conditions'}"
                                     " besides id, title, source, statement, metric and range", item.line)
        for key, metrics in ONLY_FOR.items():
            if key in item and metric not in metrics:
                raise self.fail(key, f"only means something for metric {' or '.join(metrics)}")
        lo, hi = self.bounds()
        energy = self.choice("energy", ("measured",))
        engine = self.choice("engine", ENGINES)
        return Claim(
            id=cid, title=self.text("title"), source=self.text("source"), statement=self.text("statement"),
            metric=metric, lo=lo, hi=hi, arch=self.choice("arch", ARCHES) or "any", cpu=self.texts("cpu"),
            cpu_threads=self.count("cpu_threads"), threads=self.threads(), models=self.models(),
            workload=self.choice("workload", tuple(WORKLOADS)), tokens=self.count("tokens"), prompts=self.count("prompts"),
            baseline=self.choice("baseline", runtime.LINEAR_FORMATS), formats=self.formats(),
            head_format=self.choice("head_format", runtime.HEAD_FORMATS), runtimes=self.text("runtimes"), energy=energy,
            energy_method=self.text("energy_method"), note=self.text("note"), per_size=self.per_size(),
            engine=engine, engine_formats=self.engine_formats(engine), baseline_engine=self.choice(
                "baseline_engine", ENGINES), line=item.line)

    def text(self, key, required=False):
        value = self.item.get(key)
        if value is None and not required:
            return None
        if key not in self.item:
            raise self.fail(key, "missing; every claim needs id, title, source, statement, metric and range")
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"must be non-empty text, got {value!r}")
        return value.strip()

    def texts(self, key):
        value = self.item.get(key)
        values = value if isinstance(value, list) else [] if value is None else [value]
        if any(not isinstance(v, str) or not v.strip() for v in values):
            raise self.fail(key, f"must be text or a list of text, got {value!r}")
        return tuple(v.strip() for v in values)

    def choice(self, key, allowed, required=False):
        if key not in self.item and not required:
            return None
        value = self.item.get(key)
        if value not in allowed:
            close = difflib.get_close_matches(str(value), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.fail(key, f"unknown value {value!r}{hint}; choose from {', '.join(allowed)}")
        return value

    def count(self, key):
        if key not in self.item:
            return None
        value = self.item[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(key, f"must be an integer >= 1, got {value!r}")
        return value

    def number(self, key, value, line=None):
        number = yaml_source.number(value)
        if number is None or number < 0:
            raise self.fail(key, f"must be a number >= 0, got {value!r}", line)
        return number

    def bounds(self):
        item = self.item
        if ("range" in item) == ("min" in item):
            raise self.fail("range", "give either range: [lo, hi] or min: lo" if "range" not in item else
                            "give range or min, not both", item.line if "range" not in item else None)
        if "min" in item:
            return self.number("min", item["min"]), None
        value = item["range"]
        if not isinstance(value, list) or len(value) != 2:
            raise self.fail("range", f"must be [lo, hi], got {value!r}")
        lo, hi = (self.number("range", v, line) for v, line in zip(value, value.lines))
        if lo > hi:
            raise self.fail("range", f"lo {lo:g} is above hi {hi:g}")
        return lo, hi

    def threads(self):
        if "threads" not in self.item:
            return None
        value = self.item["threads"]
        if value == "all":
            return "all"
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail("threads", f"must be all or an integer >= 1, got {value!r}")
        return value

    def names(self, key):
        value = self.item.get(key)
        if not isinstance(value, yaml_source.LList) or not value:
            raise self.fail(key, f"must be a non-empty list, got {value!r}")
        return list(zip(value, value.lines))

    def models(self):
        if "models" not in self.item:
            return ()
        out = []
        for name, line in self.names("models"):
            try:
                label = find_model(str(name)).name   # 2.5B and 2B4T name one preset: results say 2B4T
            except ModelSpecError as e:
                raise self.fail("models", str(e), line) from None
            if label in out:
                raise self.fail("models", f"{name!r} is listed twice (as {label})", line)
            out.append(label)
        return tuple(out)

    def per_size(self):
        """{size: published figure}: the per-model figures behind the range, in the metric's unit."""
        if "per_size" not in self.item:
            return ()
        value = self.item["per_size"]
        if not isinstance(value, yaml_source.LDict) or not value:
            raise self.fail("per_size", f"must be a mapping of model sizes to figures, e.g. {{125M: 2.37}}, got {value!r}")
        out = {}
        for name, figure in value.items():
            line = value.lines[name]
            try:
                label = find_model(str(name)).name
            except ModelSpecError as e:
                raise self.fail("per_size", str(e), line) from None
            out[label] = self.number("per_size", figure, line)
        return tuple(out.items())

    def engine_formats(self, engine):
        if "engine_formats" not in self.item:
            return ()
        if engine is None:
            raise self.fail("engine_formats", "needs `engine`: the program whose formats these are")
        allowed = runtime.LINEAR_FORMATS if engine == "ternbench" else ENGINE_FORMATS[engine]
        out = []
        for name, line in self.names("engine_formats"):
            if name not in allowed:
                raise self.fail("engine_formats", f"unknown {engine} format {name!r}; choose from {', '.join(allowed)}",
                                line)
            out.append(name)
        return tuple(out)

    def formats(self):
        if "formats" not in self.item:
            return ()
        out = []
        for name, line in self.names("formats"):
            if name not in runtime.LINEAR_FORMATS:
                raise self.fail("formats", f"unknown format {name!r}; choose from {', '.join(runtime.LINEAR_FORMATS)}", line)
            out.append(name)
        return tuple(out)


@dataclass
class CountedPoint:
    """One results row that counts for a claim, with its figure."""
    model: str
    format: str
    head_format: str
    threads: int
    test: str
    tokens: int
    value: float
    measured: bool | None     # energy measured (True) or estimated (False); None: no energy
    provenance: str | None
    machine: str = ""                 # the results directory the point comes from
    ceiling: float | None = None      # the bytes-per-token ceiling of a generation speed-up
    above_ceiling: bool = False       # the speed-up exceeds it, the model not cache-resident
    fraction: float | None = None     # this point's generation bandwidth / the probed read
    baseline_fraction: float | None = None   # the same for its baseline point
    engine: str = "ternbench"         # the program that produced the figure
    baseline_engine: str = "ternbench"   # the program of its baseline point
    baseline_vs_llamacpp: float | None = None   # its baseline's tokens/s / llama.cpp F16's, same shape
    bytes_per_token: float | None = None
    unstable: str = ""                # why the point's conditions make it unreliable ("" when stable)
    low: float | None = None          # the figure's 95% interval (None: none could be computed)
    high: float | None = None
    method: str = ""                  # how the figure and interval were obtained (paired, unpaired, ...)
    interval_note: str = ""           # why there is no interval
    steal: float | None = None        # the share of CPU time the hypervisor stole (the point or its baseline)
    spread: float | None = None       # tokens/s spread over the point's processes (the larger of it and its baseline's)

    @property
    def key(self) -> str:
        engine = "" if self.engine == "ternbench" else f"{self.engine}:"
        return f"{self.machine}:{engine}{self.model}/{self.format}+{self.head_format}/t{self.threads}/{self.test}"
