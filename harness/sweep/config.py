"""A sweep configuration (YAML) validated into a typed SweepConfig before anything runs.

Every problem is reported as 'FILE: line N: key K: what is wrong', once, and nothing runs."""
from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import runtime
from harness import inputs, yaml_source
from harness.inputs import user_path
from harness.measure.point import Source
from harness.models.presets import ModelSpec, ModelSpecError, display_path, find_model, path_kind

WEIGHT_FORMATS = runtime.LINEAR_FORMATS
HEAD_FORMATS = ("auto", *runtime.HEAD_FORMATS)
ENERGY_BACKENDS = ("auto", "powercap", "perf", "pyrapl", "model")
EXCLUDE_KEYS = ("engine", "model", "format", "head_format", "variant", "threads", "workload", "test")
# the formats each external engine runs when `engines` names it without a list
ENGINE_FORMATS = {"llamacpp": ("tq1_0", "tq2_0", "f16"), "bitnetcpp": ("i2_s", "tl1", "tl2")}
ENGINE_NAMES = ("ternbench", *ENGINE_FORMATS)

# key -> one-line description; also the order `--help` and messages list them in
KEYS = {
    "name": "a name for the sweep (default: the file name)",
    "description": "free text",
    "models": "preset names, model YAML files, checkpoint directories or GGUF files",
    "formats": f"ternbench's weight formats: {', '.join(WEIGHT_FORMATS)}",
    "engines": "the programs measured: a list (ternbench, llamacpp, bitnetcpp) or a mapping of each to its "
               "formats, or to {formats: [...], bin: DIR} (its own build's bin directory); default: ternbench",
    "head_formats": f"embedding / output head formats: auto (int8 for ternary, f16 for float), "
                    f"{', '.join(runtime.HEAD_FORMATS)}",
    "variants": "kernel variants (auto: the best this CPU runs)",
    "threads": "thread counts: a list, or a range such as 1..max",
    "workloads": "a mapping with prompt: [lengths] and/or generation: [lengths]",
    "repetitions": "timed values per worker process",
    "warmups": "untimed runs per worker process before the values",
    "processes": "worker processes per point: the rounds in which the points of a comparison run interleaved",
    "max_processes": "up to this many rounds when a point of a comparison comes out unstable or a speed-up's "
                     "paired interval is wider than the target (default: processes, no extra rounds)",
    "baseline": "the format speed-ups and energy reductions are relative to: a format (each engine against its "
                "own), {engine: llamacpp, format: f16} (every point against that engine's), or a list of these in "
                "order of preference (the first that ran at a point's model, threads and test); null: none",
    "energy": "energy backend (auto, powercap, perf, pyrapl, model) or a mapping with backend, idle_seconds, "
              "watts_per_core, idle_watts, powercap_root",
    "time_budget": "stop starting points after this long, e.g. 10m, 90s, 1h (default: none)",
    "seed": "seed of synthetic weights and prompts",
    "pin_threads": "pin the worker to the first N usable CPUs (N = the point's threads)",
    "exclude": "a list of mappings of point fields (engine, model, format, head_format, variant, threads, workload: pp "
               "or tg, test: such as tg128) whose matching points are left out",
    "fleet": "for `ternbench fleet run` only: a mapping with address, resource, labels, nodes",
}
REQUIRED = ("models", "threads", "workloads")
ENERGY_KEYS = ("backend", "idle_seconds", "watts_per_core", "idle_watts", "powercap_root")
FLEET_KEYS = ("address", "resource", "labels", "nodes")
FLEET_RESOURCE = "ternbench"   # the custom resource a node offers ternbench by default


class ConfigError(Exception):
    """A sweep configuration that cannot run; the message names file, line and key."""


@dataclass(frozen=True)
class ModelRef:
    text: str           # as written in the config
    kind: str           # "preset" (name or YAML file) or "checkpoint" (a directory)
    spec: ModelSpec     # the shape; for a checkpoint, built from its config.json
    path: str | None    # absolute path of a YAML file or checkpoint directory
    identity: str       # a digest of what defines the model, so a changed file is noticed on --resume

    @property
    def label(self) -> str:
        return self.spec.name

    @property
    def source(self) -> Source:
        """Where a worker finds the model."""
        return Source(self.kind, self.path or self.spec.name, self.spec)


@dataclass(frozen=True)
class EngineRef:
    name: str                   # a key of ENGINE_FORMATS, or "ternbench"
    formats: tuple[str, ...]
    bin: str | None = None      # the user's build (its bin directory); None: found as `ternbench engines` says


@dataclass(frozen=True)
class EnergyConfig:
    backend: str = "auto"
    idle_seconds: float | None = None     # None: harness.energy's documented defaults
    watts_per_core: float | None = None
    idle_watts: float | None = None
    powercap_root: str | None = None      # None: $TERNBENCH_POWERCAP_ROOT, else /sys/class/powercap


@dataclass(frozen=True)
class FleetConfig:
    """Where `ternbench fleet run` runs the sweep; `ternbench run` ignores it, so one file serves
    both. None in a field: not set here (the command line or its default decides)."""
    address: str | None = None
    resource: str | None = FLEET_RESOURCE   # None: every alive node qualifies
    labels: tuple[tuple[str, str], ...] = ()
    nodes: int | None = None                # at most this many nodes; None: all that qualify


@dataclass(frozen=True)
class Exclusion:
    match: dict          # key -> tuple of allowed values (as text)
    line: int


@dataclass(frozen=True)
class SweepConfig:
    path: Path
    text: str
    name: str
    description: str
    models: tuple[ModelRef, ...]
    formats: tuple[str, ...]
    head_formats: tuple[str, ...]
    variants: tuple[str, ...]
    threads: tuple[int, ...]
    prompt: tuple[int, ...]
    generation: tuple[int, ...]
    repetitions: int = 5
    warmups: int = 1
    processes: int = 2
    max_processes: int = 0      # 0: processes (no extra rounds)
    baseline: str | None = "f16"
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    time_budget_s: float | None = None
    seed: int = 0
    pin_threads: bool = False
    exclude: tuple[Exclusion, ...] = ()
    engines: tuple[EngineRef, ...] = ()   # external engines (ternbench's own formats are `formats`)
    fleet: FleetConfig = field(default_factory=FleetConfig)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def _energy_identity(self) -> dict:
        # results from before powercap_root existed stay resumable: the key only when it is set
        return {k: v for k, v in self.energy.__dict__.items() if not (k == "powercap_root" and v is None)}

    def comparability(self) -> dict:
        """What must not change between a run and its --resume: anything that changes what a
        finished point measured. Adding or removing models, formats, threads or workloads only
        adds or leaves out points."""
        out = {"repetitions": self.repetitions, "warmups": self.warmups, "processes": self.processes,
               "seed": self.seed, "pin_threads": self.pin_threads, "energy": self._energy_identity(),
               "models": {m.label: m.identity for m in self.models}}
        if self.engines:   # which build of each engine measured (results from before engines: none)
            out["engine_bins"] = {e.name: e.bin for e in self.engines}
        return out


class _Where:
    def __init__(self, path: Path):
        self.file = display_path(path)

    def error(self, message: str, line: int | None = None, key: str | None = None) -> ConfigError:
        at = f" line {line}:" if line else ""
        what = f" key {key!r}:" if key else ""
        return ConfigError(f"{self.file}:{at}{what} {message}")


def load_config(path, max_threads: int | None = None) -> SweepConfig:
    path = Path(path)
    where = _Where(path)
    try:
        text, doc = yaml_source.load_file(path, "sweep configuration")
    except yaml_source.YamlProblem as e:
        raise where.error(e.message, e.line) from None
    if doc is None:
        raise where.error("the file is empty; expected a mapping such as models: [...], formats: [...]", 1)
    if not isinstance(doc, yaml_source.LDict):
        raise where.error("expected a mapping of keys to values", 1)
    return _Validator(path, text, doc, where, max_threads or runtime.api.usable_cpus()).config()


class _Validator:
    def __init__(self, path, text, doc, where, max_threads):
        self.path, self.text, self.doc, self.where, self.max_threads = path, text, doc, where, max_threads

    def fail(self, key, message, line=None):
        return self.where.error(message, line or self.doc.lines.get(key), key)

    def config(self) -> SweepConfig:
        doc = self.doc
        for key in doc:
            if key not in KEYS:
                close = difflib.get_close_matches(key, KEYS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.where.error(f"unknown key{hint}; allowed keys: {', '.join(KEYS)}", doc.lines[key], key)
        missing = [k for k in REQUIRED if k not in doc]
        if missing:
            raise self.where.error(f"missing key {missing[0]!r}; required keys: {', '.join(REQUIRED)}", doc.line)
        formats, engines = self.engines()
        prompt, generation = self.workloads()
        baseline = self.baseline(formats, engines)
        processes = self.integer("processes", 2, 1, inputs.MAX_PROCESSES)
        return SweepConfig(
            path=self.path.resolve(), text=self.text,
            name=self.name(), description=self.string("description", ""),
            models=self.models(), formats=formats,
            head_formats=self.choices("head_formats", HEAD_FORMATS, default=["auto"]),
            variants=self.choices("variants", ("auto", *runtime.KNOWN_VARIANTS), default=["auto"]),
            threads=self.threads(), prompt=prompt, generation=generation,
            repetitions=self.integer("repetitions", 5, 1, inputs.MAX_REPETITIONS),
            warmups=self.integer("warmups", 1, 0, inputs.MAX_WARMUPS),
            processes=processes, max_processes=self.max_processes(processes), baseline=baseline,
            energy=self.energy(), time_budget_s=self.duration("time_budget"),
            seed=self.integer("seed", 0, 0, inputs.MAX_SEED),
            pin_threads=self.boolean("pin_threads", False), exclude=self.exclusions(), engines=engines,
            fleet=self.fleet(),
        )

    def max_processes(self, processes: int) -> int:
        value = self.integer("max_processes", processes, 1, inputs.MAX_PROCESSES)
        if value < processes:
            raise self.fail("max_processes", f"is {value}, fewer than processes ({processes}); it bounds the extra "
                                             "rounds, so it must be at least processes")
        return value

    def engines(self) -> tuple[tuple[str, ...], tuple[EngineRef, ...]]:
        """(ternbench's formats, the external engines): from `formats` and `engines`."""
        doc = self.doc
        value = doc.get("engines", ["ternbench"])
        line = doc.lines.get("engines")
        if isinstance(value, (list, str)):
            value = [value] if isinstance(value, str) else value
            if not value:
                raise self.fail("engines", "is empty; give at least one engine")
            entries = {}
            for name, at in zip(value, getattr(value, "lines", [line] * len(value))):
                self._engine_name(name, at)
                if name in entries:
                    raise self.fail("engines", f"lists {name!r} twice", at)
                entries[name] = (None, None, at)
        elif isinstance(value, yaml_source.LDict):
            entries = {}
            for name, spec in value.items():
                at = value.lines[name]
                self._engine_name(name, at)
                formats, binary = spec, None
                if isinstance(spec, yaml_source.LDict):
                    for k in spec:
                        if k not in ("formats", "bin"):
                            raise self.where.error("unknown key; allowed: formats, bin", spec.lines[k],
                                                   f"engines.{name}.{k}")
                    formats, binary = spec.get("formats"), spec.get("bin")
                    if binary is not None and (name == "ternbench" or not isinstance(binary, str) or not binary.strip()):
                        raise self.where.error("ternbench's runtime is bundled: it has no bin" if name == "ternbench"
                                               else f"must be a directory path, got {binary!r}",
                                               spec.lines.get("bin", at), f"engines.{name}.bin")
                    if binary is not None:
                        binary = str(user_path(self.path.parent / binary).resolve())
                entries[name] = (formats, binary, at)
        else:
            raise self.fail("engines", f"must be a list of engines or a mapping of engines to formats, got {value!r}")
        ternbench = None
        refs = []
        for name, (formats, binary, at) in entries.items():
            allowed = WEIGHT_FORMATS if name == "ternbench" else ENGINE_FORMATS[name]
            if formats is None:
                formats = None if name == "ternbench" else allowed
            else:
                formats = self._formats(f"engines.{name}", formats, allowed, at)
            if name == "ternbench":
                ternbench = formats
            else:
                refs.append(EngineRef(name, tuple(formats), binary))
        if "ternbench" in entries and ternbench is None:
            if "formats" not in doc:
                raise self.where.error("missing key 'formats' (ternbench's formats); required keys: "
                                       f"{', '.join(REQUIRED)}, formats", doc.line)
            ternbench = self.choices("formats", WEIGHT_FORMATS)
        elif "formats" in doc and "ternbench" not in entries:
            raise self.fail("formats", "gives ternbench's formats, but `engines` does not list ternbench")
        elif "formats" in doc and ternbench is not None and "ternbench" in entries and \
                isinstance(value, yaml_source.LDict) and value["ternbench"] is not None:
            raise self.fail("formats", "ternbench's formats are given twice: here and in `engines`")
        return tuple(ternbench or ()), tuple(refs)

    def _engine_name(self, name, line):
        if name not in ENGINE_NAMES:
            close = difflib.get_close_matches(str(name), ENGINE_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.fail("engines", f"unknown engine {name!r}{hint}; choose from {', '.join(ENGINE_NAMES)}", line)

    def _formats(self, key, value, allowed, line):
        values = value if isinstance(value, list) else [value]
        lines = getattr(value, "lines", [line] * len(values))
        if not values:
            raise self.where.error("is empty; give at least one format", line, key)
        for v, at in zip(values, lines):
            if v not in allowed:
                close = difflib.get_close_matches(str(v), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.where.error(f"unknown format {v!r}{hint}; this engine runs {', '.join(allowed)}", at, key)
        if len(set(values)) != len(values):
            raise self.where.error("lists a format twice", line, key)
        return tuple(values)

    def baseline(self, formats, engines) -> str | None:
        """The baseline as text: a format ("f16": each engine against its own), ENGINE:FORMAT
        ("llamacpp:f16": every point against that engine's), or a list of those in order of
        preference, joined by commas (the first that ran at a point's model, threads and test)."""
        doc = self.doc
        given = "baseline" in doc
        value = doc.get("baseline", "f16")
        line = doc.lines.get("baseline") or doc.lines.get("formats") or doc.lines.get("engines")
        if value is None:
            return None
        offered = {"ternbench": formats, **{e.name: e.formats for e in engines}}
        values = value if isinstance(value, list) else [value]
        if not values:
            raise self.fail("baseline", "is an empty list; give a format, or null for no speed-ups", line)
        out = [self._one_baseline(v, offered, given, line) for v in values]
        if len(set(out)) != len(out):
            raise self.fail("baseline", "lists one baseline twice", line)
        return ",".join(out)

    def _one_baseline(self, value, offered, given, line) -> str:
        if isinstance(value, yaml_source.LDict):
            for k in value:
                if k not in ("engine", "format"):
                    raise self.where.error("unknown key; allowed: engine, format", value.lines[k], f"baseline.{k}")
            engine, fmt = value.get("engine", "ternbench"), value.get("format")
            if not isinstance(engine, str) or engine not in offered:
                raise self.fail("baseline", f"engine {engine!r} is not among the sweep's engines "
                                            f"({', '.join(offered)})", line)
            if fmt not in offered[engine]:
                raise self.fail("baseline", f"format {fmt!r} is not among {engine}'s formats "
                                            f"({', '.join(offered[engine]) or 'none'})", line)
            return fmt if engine == "ternbench" else f"{engine}:{fmt}"
        if not isinstance(value, str) or not any(value in f for f in offered.values()):
            listed = ", ".join(offered["ternbench"]) if len(offered) == 1 else "; ".join(
                f"{e}: {', '.join(f)}" for e, f in offered.items() if f)
            raise self.fail("baseline", f"{value!r}{'' if given else ' (the default)'} is not among the formats "
                                        f"({listed}); add it, or set baseline: null for no speed-ups", line)
        return value

    # --- scalars -----------------------------------------------------------------------------

    def string(self, key, default):
        value = self.doc.get(key, default)
        if not isinstance(value, str):
            raise self.fail(key, f"must be text, got {value!r}")
        return value.strip()

    def name(self):
        name = self.string("name", self.path.stem)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name):
            raise self.fail("name", f"{name!r} must be usable as a directory name (letters, digits, . _ + -)")
        return name

    def integer(self, key, default, minimum, maximum):
        value = self.doc.get(key, default)
        try:
            return inputs.count(value, "it", minimum, maximum)
        except inputs.InputError as e:
            raise self.fail(key, str(e).removeprefix("it ")) from None

    def number(self, key, value, line=None):
        number = yaml_source.number(value)
        if number is None or number <= 0:
            raise self.fail(key, f"must be a positive number, got {value!r}", line)
        return number

    def boolean(self, key, default):
        value = self.doc.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {value!r}")
        return value

    def duration(self, key):
        value = self.doc.get(key)
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            m = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*",
                             str(value))
            if not m or not any(m.groups()):
                raise self.fail(key, f"must be a duration such as 90s, 10m or 1h30m, got {value!r}")
            h, mi, s = (float(g) if g else 0.0 for g in m.groups())
            seconds = 3600 * h + 60 * mi + s
        if seconds <= 0:
            raise self.fail(key, f"must be positive, got {value!r}")
        return seconds

    # --- lists -------------------------------------------------------------------------------

    def items(self, key, default=None):
        """A list (or a single scalar, read as a list of one) and the line of each item."""
        if key not in self.doc:
            return list(default), [None] * len(default)
        value = self.doc[key]
        if isinstance(value, yaml_source.LList):
            if not value:
                raise self.fail(key, "is empty; give at least one value")
            return list(value), list(value.lines)
        if isinstance(value, yaml_source.LDict):
            raise self.fail(key, "must be a list, got a mapping")
        return [value], [self.doc.lines[key]]

    def choices(self, key, allowed, default=None):
        values, lines = self.items(key, default)
        for v, line in zip(values, lines):
            if v not in allowed:
                close = difflib.get_close_matches(str(v), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.fail(key, f"unknown value {v!r}{hint}; choose from {', '.join(allowed)}", line)
        if len(set(values)) != len(values):
            raise self.fail(key, "lists a value twice")
        return tuple(values)

    def threads(self):

        values, lines = self.items("threads")
        out = set()
        for v, line in zip(values, lines):
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise self.fail("threads", f"{v!r} is not a thread count or a range such as 1..max", line)
            try:
                out.update(inputs.parse_threads(str(v), self.max_threads))
            except inputs.InputError as e:
                raise self.fail("threads", str(e).removeprefix("threads: "), line) from None
        return tuple(sorted(out))

    def workloads(self):
        doc = self.doc
        w = doc["workloads"]
        if not isinstance(w, yaml_source.LDict):
            raise self.fail("workloads", "must be a mapping such as {prompt: [512], generation: [128]}")
        for key in w:
            if key not in ("prompt", "generation"):
                raise self.where.error(f"unknown workload {key!r}; use prompt (prompt processing, tokens in one "
                                       "batch) and generation (tokens one at a time)", w.lines[key], f"workloads.{key}")
        out = []
        for kind in ("prompt", "generation"):
            value = w.get(kind, [])
            value = value if isinstance(value, list) else [value]
            lines = getattr(value, "lines", [w.lines.get(kind)] * len(value))
            for n, line in zip(value, lines):
                if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= inputs.MAX_TOKENS:
                    raise self.where.error(f"token counts must be integers from 1 to {inputs.MAX_TOKENS}, "
                                           f"got {n!r}", line, f"workloads.{kind}")
            out.append(tuple(dict.fromkeys(value)))
        if not out[0] and not out[1]:
            raise self.fail("workloads", "has no prompt or generation lengths")
        return out

    def models(self):
        values, lines = self.items("models")
        refs = []
        for v, line in zip(values, lines):
            if not isinstance(v, str) or not v.strip():
                raise self.fail("models", f"{v!r} is not a model name or path", line)
            try:
                refs.append(resolve_model(v, self.path.parent))
            except (ModelSpecError, ValueError) as e:
                raise self.fail("models", str(e), line) from None
        labels = [r.label for r in refs]
        for i, label in enumerate(labels):
            if label in labels[:i]:
                raise self.fail("models", f"model {label!r} is listed twice", lines[i])
        return tuple(refs)

    def energy(self):
        value = self.doc.get("energy", "auto")
        line = self.doc.lines.get("energy")
        if isinstance(value, str):
            value = {"backend": value}
        elif not isinstance(value, yaml_source.LDict):
            raise self.fail("energy", f"must be a backend name or a mapping, got {value!r}")
        for key in value:
            if key not in ENERGY_KEYS:
                raise self.where.error(f"unknown key; allowed: {', '.join(ENERGY_KEYS)}",
                                       value.lines[key], f"energy.{key}")
        backend = value.get("backend", "auto")
        if backend not in ENERGY_BACKENDS:
            raise self.fail("energy", f"unknown backend {backend!r}; choose from {', '.join(ENERGY_BACKENDS)}",
                            getattr(value, "lines", {}).get("backend", line))
        nums = {}
        for key in ("idle_seconds", "watts_per_core", "idle_watts"):
            if key in value:
                nums[key] = self.number(f"energy.{key}", value[key], value.lines[key])
        if "powercap_root" in value:
            root = value["powercap_root"]
            if not isinstance(root, str) or not root.strip():
                raise self.where.error(f"must be a directory path, got {root!r}", value.lines["powercap_root"],
                                       "energy.powercap_root")
            path = user_path(self.path.parent / root)
            if not path.is_dir():
                raise self.where.error(f"{root}: no such directory", value.lines["powercap_root"],
                                       "energy.powercap_root")
            nums["powercap_root"] = str(path.resolve())
        return EnergyConfig(backend=backend, **nums)

    def exclusions(self):
        if "exclude" not in self.doc:
            return ()
        value = self.doc["exclude"]
        if not isinstance(value, yaml_source.LList):
            raise self.fail("exclude", "must be a list of mappings such as - {model: 7B, format: tq1}")
        out = []
        for item, line in zip(value, value.lines):
            if not isinstance(item, yaml_source.LDict) or not item:
                raise self.fail("exclude", f"each entry must be a mapping of point fields, got {item!r}", line)
            match = {}
            for key, v in item.items():
                if key not in EXCLUDE_KEYS:
                    raise self.where.error(f"unknown point field; use {', '.join(EXCLUDE_KEYS)}",
                                           item.lines[key], f"exclude.{key}")
                vs = v if isinstance(v, list) else [v]
                match[key] = tuple(str(x) for x in vs)
            out.append(Exclusion(match, line))
        return tuple(out)

    def fleet(self):
        if "fleet" not in self.doc:
            return FleetConfig()
        value = self.doc["fleet"]
        if not isinstance(value, yaml_source.LDict):
            raise self.fail("fleet", "must be a mapping such as {address: auto, resource: ternbench, nodes: 4}")
        for key in value:
            if key not in FLEET_KEYS:
                raise self.where.error(f"unknown key; allowed: {', '.join(FLEET_KEYS)}", value.lines[key],
                                       f"fleet.{key}")
        out = {}
        for key in ("address", "resource"):
            v = value.get(key, FleetConfig.resource if key == "resource" else None)
            if v is not None and (not isinstance(v, str) or not v.strip()):
                raise self.where.error(f"must be text, got {v!r}", value.lines[key], f"fleet.{key}")
            out[key] = v.strip() if v else None
        labels = value.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float))
                                                   and not isinstance(v, bool) for k, v in labels.items()):
            raise self.where.error(f"must be a mapping of Ray node labels to values, got {labels!r}",
                                   value.lines.get("labels"), "fleet.labels")
        nodes = value.get("nodes")
        if nodes is not None:
            try:
                nodes = inputs.count(nodes, "it", 1, inputs.MAX_NODES)
            except inputs.InputError as e:
                raise self.where.error(str(e).removeprefix("it "), value.lines["nodes"], "fleet.nodes") from None
        return FleetConfig(labels=tuple((k, str(v)) for k, v in labels.items()), nodes=nodes, **out)


def with_engine_bins(config: SweepConfig, **bins: str | None) -> SweepConfig:
    """The configuration with the engines' builds given on the command line (--llamacpp-bin DIR)."""
    from dataclasses import replace

    engines = list(config.engines)
    for name, given in bins.items():
        if given is None:
            continue
        at = next((i for i, e in enumerate(engines) if e.name == name), None)
        if at is None:
            raise ConfigError(f"--{name}-bin: {display_path(config.path)} does not measure {name} (add it to `engines`)")
        engines[at] = replace(engines[at], bin=str(user_path(given).resolve()))
    return replace(config, engines=tuple(engines))


def resolve_model(text: str, base: Path) -> ModelRef:
    """A preset name, a model YAML file or a checkpoint directory; paths are relative to the
    configuration file's directory first, then to the working directory."""
    for candidate in (base / text, Path(text)):
        candidate = user_path(candidate)
        kind = path_kind(candidate)
        if kind == "dir" and path_kind(candidate / "config.json") == "file":
            return _checkpoint_ref(text, candidate.resolve())
        if kind == "file" and candidate.suffix.lower() == ".gguf":
            return _gguf_ref(text, candidate.resolve())
        if kind == "file":
            spec = find_model(candidate)
            return ModelRef(text, "preset", spec, str(candidate.resolve()), preset_identity(spec))
    spec = find_model(text)
    return ModelRef(text, "preset", spec, None, preset_identity(spec))


# Identities are "c:" + a digest of the content: where a file lies (another checkout, a moved
# directory) never changes it. Earlier versions digested a preset with its path: such an
# identity cannot be compared with a content identity (identities_differ says None).
CONTENT = "c:"


def preset_identity(spec: ModelSpec) -> str:
    """What defines a preset's model: its shape and description, not where its file is."""
    content = {k: v for k, v in spec.to_dict().items() if k != "path"}
    return CONTENT + _digest(repr(sorted(content.items())).encode())


def checkpoint_identity(path: Path) -> str:
    """config.json and every safetensors file's name, size and header (tensor names, dtypes, shapes,
    offsets): cheap to read, and what a different or re-converted checkpoint changes."""
    parts = [(path / "config.json").read_bytes()]
    for f in sorted(path.glob("*.safetensors")):
        with open(f, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else 0
            header = fh.read(min(n, 100 << 20))
        parts.append(f"{f.name}:{f.stat().st_size}:".encode() + header)
    return CONTENT + _digest(b"\0".join(parts))


def _gguf_ref(text: str, path: Path) -> ModelRef:
    from harness.models.gguf_file import GgufError, GgufModel

    try:
        g = GgufModel(path)
    except GgufError as e:
        raise ValueError(str(e)) from None
    s = g.shape
    spec = ModelSpec(name=path.stem, aliases=(), description=f"GGUF {path} ({g.arch}, {g.linear_type()} linears)",
                     source=str(path), hidden=s.hidden, ffn=s.ffn, layers=s.layers, heads=s.heads,
                     kv_heads=s.kv_heads, head_dim=s.head_dim, vocab=s.vocab, activation=s.activation,
                     sub_norms=s.sub_norms, tied_embeddings=s.tied_embeddings, rope_theta=s.rope_theta,
                     norm_eps=s.norm_eps, max_context=g.max_context, path=path)
    # the header (metadata and tensor table) and the size: what a different or re-quantised file changes
    header_end = max((t.offset for t in g.tensors.values()), default=0)
    identity = CONTENT + _digest(bytes(g.data[:min(header_end, 64 << 20)]) + str(len(g.data)).encode())
    return ModelRef(text, "gguf", spec, str(path), identity)


def identities_differ(a, b) -> bool | None:
    """True or False for two content identities; None when either was recorded by an earlier
    version (its digest included the file's location), so the two cannot be compared."""
    if not (isinstance(a, str) and isinstance(b, str) and a.startswith(CONTENT) and b.startswith(CONTENT)):
        return None if a != b else False
    return a != b


def _checkpoint_ref(text: str, path: Path) -> ModelRef:
    from harness.models.checkpoint import CheckpointError, read_config

    try:
        shape, info = read_config(path)
    except CheckpointError as e:
        raise ValueError(str(e)) from None
    spec = ModelSpec(name=path.name, aliases=(), description=f"checkpoint {path}", source=str(path),
                     hidden=shape.hidden, ffn=shape.ffn, layers=shape.layers, heads=shape.heads,
                     kv_heads=shape.kv_heads, head_dim=shape.head_dim, vocab=shape.vocab,
                     activation=shape.activation, sub_norms=shape.sub_norms,
                     tied_embeddings=shape.tied_embeddings, rope_theta=shape.rope_theta,
                     norm_eps=shape.norm_eps, max_context=info.max_position_embeddings or 4096, path=path)
    try:
        identity = checkpoint_identity(path)
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e}") from None
    return ModelRef(text, "checkpoint", spec, str(path), identity)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]
