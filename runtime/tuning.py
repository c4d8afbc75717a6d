"""Kernel tuning measured on the running CPU, cached per CPU identity.

What reads memory fastest differs between CPUs: on a Zen 5 software prefetch 4 KiB ahead
speeds the i2s GEMV by a sixth and does nothing for int8, and the best distance for one
CPU may be the worst for another. So the runtime measures, on the CPU it runs on, each
candidate GEMV setting (prefetch distance, none included; the size of the row claims
threads share work in) on a working set far larger than the last-level cache, keeps the
fastest, and caches the choice in the user's cache directory under the CPU's identity
(runtime.cpu.identity), the runtime version and build (the last few builds are kept, so an
A/B comparison of two builds does not measure again at each switch), the variant and the
thread count.

When it runs, for a Context:
  TERNBENCH_TUNING=auto (default)  the cached choice; measured first (a few seconds) if none
  TERNBENCH_TUNING=cache           the cached choice, else the built-in defaults; never measures
  TERNBENCH_TUNING=off             the built-in defaults
A cache file that is corrupt, of an unknown schema, or for another CPU is ignored with a
warning, never trusted; one of an older schema, or without this build, is measured again. Results never depend on the tuning; only speed does.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import api, cpu
from .api import Matrix, RuntimeFailure, build_info, version

SCHEMA = 2
KEEP_BUILDS = 8   # builds whose tunings a cache file keeps (A/B runs switch between two)
MODES = ("auto", "cache", "off")
ENV = "TERNBENCH_TUNING"
CACHE_ENV = "TERNBENCH_CACHE_DIR"
# The formats a GEMV runs in a model (f32 is a test format: it keeps the defaults).
TUNED_FORMATS = ("i2s", "tq1", "tl1", "tl2", "f16", "int8")
PREFETCH_CANDIDATES = (0, 1024, 2048, 4096, 8192, 16384)
# Claim sizes. An equal split without stealing (claim 0) is not a candidate: it measures as
# fast on an isolated GEMV, where all threads start together, but in a model the calling
# thread starts late (it prepared the input) and stealing made 700M generation 16% faster
# at 2 threads on a Zen 5.
CLAIM_CANDIDATES = (64 << 10, 256 << 10, 1 << 20)
SHAPE = (6912, 2560)          # BitNet b1.58 2B4T's gate/up projection
ROUNDS = 5                    # candidates alternate within each round; medians over rounds
LLC_MULTIPLE = cpu.LLC_MULTIPLE   # cycled weights: cpu.memory_cycle_bytes()


class TuningError(RuntimeError):
    """Tuning could not run (for example, out of memory)."""


@dataclass
class Tuning:
    """What a context runs with: per format (prefetch bytes, claim bytes), and where it came from:
    "measured" (now), "cache" (measured earlier on this CPU), "defaults" (not tuned)."""
    variant: str
    threads: int
    settings: dict[str, tuple[int, int]]
    source: str
    detail: str = ""
    measured: dict = field(default_factory=dict)   # per format: every candidate's GB/s

    def to_json(self) -> dict:
        return {"variant": self.variant, "threads": self.threads, "source": self.source, "detail": self.detail,
                "formats": {f: {"prefetch": p, "claim": c} for f, (p, c) in self.settings.items()}}


def describe(t: dict) -> str:
    """A tuning as results record it (Tuning.to_json), in one line:
    'i2s 8192/256K, int8 2048/256K (cache)', prefetch bytes / claim KiB per format."""
    settings = ", ".join(f"{f} {s['prefetch']}/{s['claim'] >> 10}K" for f, s in t["formats"].items())
    return f"{settings} ({t['source']})"


def mode() -> str:
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"{ENV}={value!r}: expected one of {', '.join(MODES)}")
    return value


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ternbench"


def cache_file(ident: dict | None = None) -> Path:
    return cache_dir() / "tuning" / f"{cpu.identity_key(ident or cpu.identity())}.json"


def _runtime_id() -> dict:
    return {"version": version(), "build": build_info()}


def _runtime_key(rid: dict) -> str:
    return f"{rid['version']} {rid['build']}"


def _warn(path: Path, why: str) -> None:
    warnings.warn(f"ignoring the kernel tuning cache {path}: {why}", RuntimeWarning, stacklevel=3)


def _valid_entry(entry) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("formats"), dict):
        return False
    for f, s in entry["formats"].items():
        if f not in TUNED_FORMATS or not isinstance(s, dict):
            return False
        p, c = s.get("prefetch"), s.get("claim")
        if not (isinstance(p, int) and isinstance(c, int) and 0 <= p <= 65536 and p % 64 == 0 and c >= 0):
            return False
    return True


def _read(path: Path, ident: dict) -> dict:
    """The file's tunings per runtime build, {} when there is none; anything wrong with it is
    a warning and {}. Files of an older schema are stale, not wrong: measured again."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as e:
        _warn(path, f"unreadable ({e})")
        return {}
    schema = data.get("schema") if isinstance(data, dict) else None
    if isinstance(schema, int) and schema < SCHEMA:
        return {}
    if schema != SCHEMA:
        _warn(path, f"schema {schema} is not {SCHEMA}")
        return {}
    if data.get("cpu") != ident:
        _warn(path, f"written for another CPU ({data.get('cpu')}), not this one ({ident})")
        return {}
    builds = data.get("builds")
    if not isinstance(builds, dict) or not all(
            isinstance(b, dict) and isinstance(b.get("entries"), dict) and all(_valid_entry(e) for e in b["entries"].values())
            for b in builds.values()):
        _warn(path, "malformed entries")
        return {}
    return builds


def load_cache(path: Path | None = None, ident: dict | None = None) -> dict:
    """The cached entries {"variant/threads": entry} of this CPU and runtime build; {} when
    there are none. Anything wrong with the file is a warning and an empty result."""
    ident = ident or cpu.identity()
    build = _read(path or cache_file(ident), ident).get(_runtime_key(_runtime_id()))
    return build["entries"] if build else {}


def _save(entry_key: str, entry: dict, ident: dict) -> Path:
    path = cache_file(ident)
    builds = _read(path, ident)
    rid = _runtime_id()
    build = builds.pop(_runtime_key(rid), None) or {"runtime": rid, "entries": {}}
    build["entries"][entry_key] = entry
    builds[_runtime_key(rid)] = build  # most recent last; the oldest builds go first
    builds = dict(list(builds.items())[-KEEP_BUILDS:])
    data = {"schema": SCHEMA, "cpu": ident, "builds": builds}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)  # atomic: a concurrent reader sees the old file or the new one
    return path


def defaults(ctx) -> dict[str, tuple[int, int]]:
    return {f: ctx.gemv_tuning(f) for f in TUNED_FORMATS}


def _copies(fmt: str, target_bytes: int):
    w = np.random.default_rng(0).integers(-1, 2, size=SHAPE, dtype=np.int8)
    first = Matrix.pack(fmt, w, 0.05)
    return [first] + [first.clone() for _ in range(max(1, math.ceil(target_bytes / first.nbytes)) - 1)]


def _measure(ctx, fmt: str, mats, candidates, progress=None) -> dict[tuple[int, int], float]:
    """GB/s of each (prefetch, claim) candidate: ROUNDS rounds, each running every candidate
    through one cycle of the copies, in an order that rotates between rounds."""
    gbps = {c: [] for c in candidates}
    calls = max(len(mats), 8)
    if progress:
        progress(f"{fmt}: {len(candidates)} candidates x {ROUNDS} rounds")
    ctx.bench_matmul(mats, 1, len(mats))  # warm-up: page faults, frequency
    for r in range(ROUNDS):
        order = candidates[r % len(candidates):] + candidates[:r % len(candidates)]
        for c in order:
            ctx.set_gemv_tuning(fmt, *c)
            secs = ctx.bench_matmul(mats, 1, calls)
            gbps[c].append(mats[0].nbytes / statistics.median(secs) / 1e9)
    return {c: statistics.median(v) for c, v in gbps.items()}


def measure(ctx, formats=TUNED_FORMATS, progress=None) -> Tuning:
    """Measures the candidates on ctx (its variant and threads) and leaves ctx tuned: every
    prefetch distance, crossed with every claim size when there are several threads, all
    alternating in the same rounds. (Measured in two phases, a shared machine's bandwidth
    can change between them: 80 GB/s in one, 50 in the next, here.)"""
    target = cpu.memory_cycle_bytes()
    settings, measured = {}, {}
    for fmt in formats:
        try:
            mats = _copies(fmt, target)
        except (MemoryError, RuntimeFailure, ValueError) as e:
            raise TuningError(f"tuning {fmt}: could not allocate {target >> 20} MiB of weights: {e}") from None
        claims = CLAIM_CANDIDATES if ctx.threads > 1 else (ctx.gemv_tuning(fmt)[1],)
        results = _measure(ctx, fmt, mats, [(p, c) for p in PREFETCH_CANDIDATES for c in claims], progress)
        best = max(results, key=results.get)
        ctx.set_gemv_tuning(fmt, *best)
        settings[fmt] = best
        measured[fmt] = [{"prefetch": p, "claim": c, "gbps": round(g, 2)} for (p, c), g in results.items()]
        del mats
    return Tuning(ctx.variant, ctx.threads, settings, "measured",
                  f"{ROUNDS} alternating rounds on {SHAPE[0]}x{SHAPE[1]} GEMVs cycling {target >> 20} MiB",
                  measured)


def _entry_key(variant: str, threads: int) -> str:
    return f"{variant}/{threads}"


def apply(ctx, how: str | None = None, force: bool = False, progress=None, strict: bool = False) -> Tuning:
    """Tunes ctx as `how` (default: TERNBENCH_TUNING) says; force re-measures even when cached.
    A measurement that cannot run (no memory for its working set) leaves the defaults, with a
    warning, unless strict (then TuningError)."""
    how = how or mode()
    if how not in MODES:
        raise ValueError(f"tuning mode {how!r}: expected one of {', '.join(MODES)}")
    if ctx.variant == "scalar":  # the reference: plain loops, nothing to tune
        return Tuning(ctx.variant, ctx.threads, defaults(ctx), "defaults", "the scalar reference is not tuned")
    if how == "off" and not force:
        return Tuning(ctx.variant, ctx.threads, defaults(ctx), "defaults", f"{ENV}=off")
    ident = cpu.identity()
    key = _entry_key(ctx.variant, ctx.threads)
    entry = None if force else load_cache(ident=ident).get(key)
    if entry is not None:
        for f, s in entry["formats"].items():
            ctx.set_gemv_tuning(f, s["prefetch"], s["claim"])
        return Tuning(ctx.variant, ctx.threads, defaults(ctx), "cache", entry.get("detail", ""),
                      entry.get("measured", {}))
    if how == "cache" and not force:
        return Tuning(ctx.variant, ctx.threads, defaults(ctx), "defaults", "no cached tuning for this CPU")
    if progress is None:
        print(f"ternbench: tuning the {ctx.variant} kernels for {ctx.threads} thread(s) on this CPU "
              f"(once; cached in {cache_file(ident).parent})", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        tuning = measure(ctx, progress=progress)
    except TuningError as e:
        if strict:
            raise
        warnings.warn(f"{e}; the {ctx.variant} kernels keep their defaults", RuntimeWarning, stacklevel=2)
        return Tuning(ctx.variant, ctx.threads, defaults(ctx), "defaults", f"tuning failed: {e}")
    entry = {"formats": {f: {"prefetch": p, "claim": c} for f, (p, c) in tuning.settings.items()},
             "detail": tuning.detail, "measured": tuning.measured, "seconds": round(time.perf_counter() - t0, 2),
             "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        _save(key, entry, ident)
    except OSError as e:
        warnings.warn(f"could not save the kernel tuning to {cache_file(ident)}: {e}", RuntimeWarning, stacklevel=2)
    return tuning


api.register_context_tuner(apply)
