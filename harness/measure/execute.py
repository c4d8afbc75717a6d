"""Running one point: its worker subprocess (measure/worker.py, under pyperf) started, watched and
turned into a record (measure/record.py). A crash, SIGILL or out-of-memory in the worker is a
failed record with the reason, never a crash of the caller."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import harness

from . import record
from .point import Files, Point, Settings, Source

LOG_TAIL_LINES = 20




def worker_command(point: Point, source: Source, settings: Settings, pyperf_tmp: Path, sidecar: Path) -> list[str]:
    pin = ""
    if settings.pin_threads:
        pin = ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:point.threads])
    return [sys.executable, "-m", "harness.measure.worker",
            "--point", json.dumps(point.to_dict()), "--model-source", source.location,
            "--model-kind", source.kind, "--seed", str(settings.seed), "--sidecar", str(sidecar), "--pin", pin,
            "--energy", json.dumps(settings.energy) if settings.energy else "",
            "--values", str(settings.repetitions), "--warmups", str(settings.warmups),
            "--processes", str(settings.processes), "--loops", "1", "-o", str(pyperf_tmp), "--quiet"]


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


def run(point: Point, source: Source, settings: Settings, files: Files, tick=lambda: None) -> dict:
    """Measures the point in a worker subprocess; returns its record, ok or failed. `tick` is
    called about four times a second while it runs (progress displays)."""
    for sub in (files.pyperf, files.sidecar, files.log):
        sub.parent.mkdir(parents=True, exist_ok=True)
    pyperf_tmp = files.pyperf.with_name(files.pyperf.name + ".tmp")
    for stale in (pyperf_tmp, files.sidecar):
        stale.unlink(missing_ok=True)
    started = time.time()
    with open(files.log, "w") as out:
        proc = subprocess.Popen(worker_command(point, source, settings, pyperf_tmp, files.sidecar),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=harness.ROOT, start_new_session=True)
        try:
            while proc.poll() is None:
                tick()
                time.sleep(0.25)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    finished = time.time()
    rel_log = str(files.log.relative_to(files.root))
    if proc.returncode != 0:
        code, who = proc.returncode, "the point's pyperf manager"
        inner = record.worker_failure(files.sidecar)
        if inner is not None:
            code, who = inner, "a worker process"
        why = f"{who} was killed by {_signal_name(code)}" if code < 0 else f"{who} exited with status {code}"
        return record.failed(point, why, _tail(files.log), rel_log, started, finished)
    try:
        os.replace(pyperf_tmp, files.pyperf)
        return record.ok(point, files.pyperf, files.sidecar, files.root, started, finished, settings.idle_watts)
    except (OSError, ValueError, KeyError) as e:
        return record.failed(point, f"the worker's output is unusable: {e}", _tail(files.log), rel_log,
                             started, finished)
