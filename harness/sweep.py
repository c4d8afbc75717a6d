"""Runs a sweep: each point in its own worker subprocess (harness.point_worker under pyperf), so
that a crash, SIGILL or out-of-memory in one point is recorded as a failed point and the sweep
goes on; every finished point is on disk before the next starts."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import point_record, sweep_energy, sysinfo
from .progress import Progress
from .results import ResultsDir, write_atomic
from .sweep_config import SweepConfig
from .sweep_points import Plan, Point, Skipped

LOG_TAIL_LINES = 20


class ResumeRefused(Exception):
    """The results directory holds points that the new configuration would not be comparable with."""


@dataclass
class Outcome:
    ok: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)    # finished by an earlier invocation (--resume)
    over_budget: list[Point] = field(default_factory=list)
    interrupted: bool = False


def manifest(config: SweepConfig, fingerprint: dict, energy: dict) -> dict:
    """What must match for a --resume: the measurement settings and models, the machine and
    build that measured, and the energy backend that `auto` chose."""
    return {"config": config.comparability(),
            "machine": {"cpu": fingerprint["cpu"]["model_name"], "runtime_build": fingerprint["runtime"]["build"],
                        "ternbench_commit": fingerprint["ternbench"]["git_commit"],
                        "energy_backend": energy["backend"]}}


def _differences(old, new, prefix=""):
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            if k in old and k in new:
                yield from _differences(old[k], new[k], f"{prefix}{k}.")
            elif prefix == "config.models.":
                continue   # a model added or left out only adds or leaves out points
            else:
                yield prefix + k, old.get(k), new.get(k)
    elif old != new:
        yield prefix.rstrip("."), old, new


def check_resumable(results: ResultsDir, config: SweepConfig, fingerprint: dict, energy: dict) -> None:
    old = results.read_json("manifest.json")
    if old is None:
        raise ResumeRefused(f"{results.path} has points but no manifest.json: it was not written by "
                            "`ternbench run`; use another --out")
    for key, was, now in _differences(old, manifest(config, fingerprint, energy)):
        raise ResumeRefused(f"cannot resume {results.path}: {key!r} changed from {was!r} to {now!r}, so the "
                            "points measured before would not be comparable with new ones; run into a new --out")


def prepare(results: ResultsDir, config: SweepConfig, plan: Plan, fingerprint: dict, energy: dict,
            resume: bool) -> None:
    results.create()
    if resume:
        results.repair()
        old = results.file("config.yaml")
        if old.is_file() and old.read_text() != config.text:
            import hashlib

            sha = hashlib.sha256(old.read_bytes()).hexdigest()[:12]
            os.replace(old, results.file(f"config-{sha}.yaml"))
    write_atomic(results.file("config.yaml"), config.text)
    results.write_json("sysinfo.json", fingerprint)
    results.write_json("manifest.json", manifest(config, fingerprint, energy))
    results.write_json("energy.json", energy)
    write_plan(results, config, plan, [])


def write_plan(results: ResultsDir, config: SweepConfig, plan: Plan, over_budget: list[Point]) -> None:
    def skip(s: Skipped):
        return {"key": s.point.key, **s.point.to_dict(), "test": s.point.test, "reason": s.reason}

    budget = [Skipped(p, f"not run: the time budget ({config.time_budget_s:.0f} s) would be exceeded; "
                         "--resume runs it") for p in over_budget]
    results.write_json("plan.json", {
        "config": config.name, "baseline": config.baseline,
        "points": [{"key": p.key, **p.to_dict(), "test": p.test} for p in plan.points],
        "skipped": [skip(s) for s in plan.skipped + budget]})


def worker_command(point: Point, config: SweepConfig, plan: Plan, pyperf_tmp: Path, sidecar: Path,
                   energy: dict) -> list[str]:
    ref = plan.model_refs[point.model]
    pin = ""
    if config.pin_threads:
        pin = ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:point.threads])
    return [sys.executable, "-m", "harness.point_worker",
            "--point", json.dumps(point.to_dict()), "--model-source", ref.path or ref.spec.name,
            "--model-kind", ref.kind, "--seed", str(config.seed), "--sidecar", str(sidecar), "--pin", pin,
            "--energy", json.dumps(sweep_energy.worker_settings(energy)),
            "--values", str(config.repetitions), "--warmups", str(config.warmups),
            "--processes", str(config.processes), "--loops", "1", "-o", str(pyperf_tmp), "--quiet"]


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _tail(path: Path) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
    except OSError:
        return ""


def run_point(point: Point, config: SweepConfig, plan: Plan, results: ResultsDir, progress: Progress,
              energy: dict) -> dict:
    fid = point.file_id
    pyperf_file, pyperf_tmp = results.file(f"pyperf/{fid}.json"), results.file(f"pyperf/{fid}.json.tmp")
    sidecar, log = results.file(f"raw/{fid}.jsonl"), results.file(f"logs/{fid}.log")
    for stale in (pyperf_tmp, sidecar):
        stale.unlink(missing_ok=True)
    started = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(worker_command(point, config, plan, pyperf_tmp, sidecar, energy),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=sysinfo.PACKAGE_ROOT, start_new_session=True)
        try:
            while proc.poll() is None:
                progress.tick()
                time.sleep(0.25)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    finished = time.time()
    rel_log = str(log.relative_to(results.path))
    if proc.returncode != 0:
        code, who = proc.returncode, "the point's pyperf manager"
        inner = point_record.worker_failure(sidecar)
        if inner is not None:
            code, who = inner, "a worker process"
        why = f"{who} was killed by {_signal_name(code)}" if code < 0 else f"{who} exited with status {code}"
        return point_record.failed(point, why, _tail(log), rel_log, started, finished)
    try:
        os.replace(pyperf_tmp, pyperf_file)
        return point_record.ok(point, pyperf_file, sidecar, results.path, started, finished,
                               energy["idle"]["watts"])
    except (OSError, ValueError, KeyError) as e:
        return point_record.failed(point, f"the worker's output is unusable: {e}", _tail(log), rel_log,
                                   started, finished)


def run(config: SweepConfig, plan: Plan, results: ResultsDir, fingerprint: dict, resume: bool,
        quiet: bool = False) -> Outcome:
    log = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    energy = sweep_energy.prepare(config.energy, log)
    if resume and results.has_points():
        check_resumable(results, config, fingerprint, energy)
    prepare(results, config, plan, fingerprint, energy, resume)
    outcome = Outcome()
    finished = {k for k, r in results.latest().items() if r["status"] == "ok"}
    todo = [p for p in plan.points if p.key not in finished]
    outcome.already = [p.key for p in plan.points if p.key in finished]
    progress = Progress([plan.estimate(p, config) for p in todo], quiet)
    if outcome.already:
        progress.note(f"{len(outcome.already)} point(s) already finished in {results.path}; running the "
                      f"other {len(todo)}")
    t0 = time.monotonic()
    try:
        for i, point in enumerate(todo):
            est = plan.estimate(point, config)
            if config.time_budget_s and time.monotonic() - t0 + est * progress.scale() > config.time_budget_s:
                outcome.over_budget = todo[i:]
                progress.note(f"time budget of {config.time_budget_s:.0f} s reached: {len(todo) - i} point(s) "
                              "not run (--resume runs them)")
                break
            progress.start(point.key, est)
            record = run_point(point, config, plan, results, progress, energy)
            results.append(record)
            results.rebuild_tables(config.baseline)
            if record["status"] == "ok":
                outcome.ok.append(point.key)
                t = record["tokens_per_s"]
                progress.finish(f"{t['median']:.2f} tokens/s")
            else:
                outcome.failed.append(point.key)
                progress.finish(f"FAILED, {record['reason']}")
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        progress.close()
        write_plan(results, config, plan, outcome.over_budget)
        results.rebuild_tables(config.baseline)
    return outcome
