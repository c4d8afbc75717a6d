"""A finished point's record (one line of points.jsonl), built from its pyperf JSON and its
workers' sidecar lines. Every figure here is derived from those two files, which stay beside it."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pyperf

import runtime

from . import conditions, probe, stats
from .energy_window import point_energy
from .point import Point


def _point_fields(point: Point) -> dict:
    return {"key": point.key, **point.to_dict(), "test": point.test}


def read_sidecar(path: Path) -> tuple[list[dict], list[dict], list[float], int, dict[str, list[float]]]:
    """(process lines, timed run lines in order, every yardstick probe pass in GB/s, warm-up
    runs, every pass of every read pattern where the sidecar has them)."""
    procs, runs, probes, patterns = [], [], [], {}
    warmups = 0

    def add_patterns(d):
        for name, passes in (d or {}).items():
            patterns.setdefault(name, []).extend(passes)

    by_pid = {}
    for line in Path(path).read_text().splitlines():
        d = json.loads(line)
        if d["type"] == "process":
            procs.append(d)
            by_pid[d.get("pid")] = d
            probes += d["probe_before_gbps"]
            add_patterns(d.get("probe_before_patterns"))
        elif d["type"] == "run":
            if d["warmup"]:
                warmups += 1
            else:
                runs.append(d)
        elif d["type"] == "engine_test" and d.get("pid") in by_pid:   # an engine's own report of the process
            by_pid[d["pid"]].update(setup_s=d.pop("setup_s"), engine_test=d)
        elif d["type"] == "probe_after":
            probes += d["gbps"]
            add_patterns(d.get("patterns"))
            if d.get("pid") in by_pid:   # what the process saw after its timed runs
                by_pid[d["pid"]].update(probe_after_gbps=d["gbps"], conditions_after=d.get("conditions_after"))
    return procs, runs, probes, warmups, patterns


def by_process(runs: list[dict], values: list[float]) -> list[list[float]]:
    """values (one per timed run) grouped by the worker process that ran them, in the order the
    processes ran: in a sweep, process i ran in round i of its comparison group."""
    by: dict = {}
    for r, v in zip(runs, values):
        by.setdefault(r.get("pid"), []).append(v)
    return list(by.values())


def process_means(runs: list[dict], tps: list[float]) -> list[float]:
    """The mean tokens/s of each worker process's timed runs, in the order the processes ran."""
    return [statistics.fmean(v) for v in by_process(runs, tps)]


def process_energy(runs: list[dict]) -> list[float] | None:
    """The median J/token of each worker process's timed runs, in the order the processes ran;
    None unless every run has a reading."""
    if not runs or not all(r.get("energy") for r in runs):
        return None
    per_token = [r["energy"]["joules"] / r["tokens"] for r in runs]
    return [statistics.median(v) for v in by_process(runs, per_token)]


def _sidecar_lines(sidecar: Path, kind: str) -> list[dict]:
    try:
        lines = Path(sidecar).read_text().splitlines()
    except OSError:
        return []
    return [json.loads(x) for x in lines if f'"{kind}"' in x]


def worker_failure(sidecar: Path) -> int | None:
    """The exit code of the worker process that failed, as its manager recorded it."""
    codes = [x["exit_code"] for x in _sidecar_lines(sidecar, "worker_failed")]
    return codes[-1] if codes else None


def failure_cause(sidecar: Path) -> str | None:
    """Why a worker gave up, in its own words (engines/bench_worker.py writes it), if it said."""
    causes = [x["reason"] for x in _sidecar_lines(sidecar, "failure") if x.get("type") == "failure"]
    return causes[-1] if causes else None


def ok(point: Point, pyperf_file: Path, sidecar: Path, root: Path, started: float, finished: float,
       idle_watts: float | None = None, group_run: str | None = None, rounds_planned: int | None = None) -> dict:
    bench = pyperf.Benchmark.load(str(pyperf_file))
    per_token = bench.get_values()            # seconds per token, one per timed run
    procs, runs, probes, warmups, patterns = read_sidecar(sidecar)
    if len(runs) != len(per_token):
        raise ValueError(f"{sidecar}: {len(runs)} timed runs recorded, pyperf has {len(per_token)} values")
    tps = [1.0 / v for v in per_token]
    runtime_tps = [r["tokens"] / r["runtime_seconds"] for r in runs]
    first = procs[0]
    rec = {
        **_point_fields(point), "status": "ok",
        "tokens_per_s": stats.summary(tps),
        "seconds_per_token": {"mean": statistics.fmean(per_token), "median": statistics.median(per_token)},
        "samples_tokens_per_s": tps,
        # the same runs timed by the runtime in C: the harness's timing must agree with it
        "runtime_tokens_per_s": statistics.median(runtime_tps),
        "timing_vs_runtime": statistics.median(tps) / statistics.median(runtime_tps),
        "weight_bytes": first["weight_bytes"], "bytes_per_token": first["bytes_per_token"],
        "probe_gbps": statistics.median(probes),
        "bandwidth_reference": probe.REFERENCE,
        "read_patterns_gbps": {k: statistics.median(v) for k, v in patterns.items()},
        "tuning": first["tuning"], "kv_cache": first["kv_cache"],
        "runtime_build": first.get("runtime_build"),   # which build measured (an A/B check runs two)
        # an external engine's version, build, command and its own report (engines/bench_worker.py)
        "engine_build": {**first["engine"], **{k: v for k, v in (first.get("engine_test") or {}).items()
                                               if k not in ("type", "pid")}} if first.get("engine") else None,
        # caches lie: a model smaller than the last-level cache is not read from DRAM
        "fits_in_llc": first["weight_bytes"] <= runtime.cpu.last_level_cache_bytes()[0],
        "achieved_gbps": None, "bandwidth_fraction": None,
        "setup_s": statistics.median(p["setup_s"] for p in procs),
        "variant": first["variant"], "affinity": first["affinity"], "pinned": first["pinned"],
        "processes": len(procs), "values": len(tps), "warmups": warmups // len(procs),
        "pyperf": str(pyperf_file.relative_to(root)), "raw": str(sidecar.relative_to(root)),
        "energy": point_energy(runs, idle_watts),
        # values within one worker process are not independent: the interval over process means
        # is the one that says how sure a figure is across processes
        "tokens_per_s_processes": stats.summary(process_means(runs, tps)),
        # process i ran in round i of the comparison group `group_run`: two points of one group_run
        # are paired round by round (their speed-up is judged on the per-round ratios)
        "process_tokens_per_s": process_means(runs, tps), "process_j_per_token": process_energy(runs),
        "group_run": group_run, "rounds_planned": rounds_planned,
        "conditions": conditions.summary(procs, tps),
        "started": started, "finished": finished, "duration_s": finished - started,
    }
    if point.workload == "tg":
        # generation reads every weight byte once per token: a bandwidth-bound figure
        gbps = first["bytes_per_token"] * rec["tokens_per_s"]["median"] / 1e9
        rec.update(achieved_gbps=gbps, bandwidth_fraction=gbps / rec["probe_gbps"])
    return rec


def failed(point: Point, reason: str, log_tail: str, log: str, started: float, finished: float) -> dict:
    return {**_point_fields(point), "status": "failed", "reason": reason, "log_tail": log_tail, "log": log,
            "started": started, "finished": finished, "duration_s": finished - started}
