"""Running points: their worker subprocesses (measure/worker.py, under pyperf) started, watched
and turned into records (measure/record.py). A crash, SIGILL or out-of-memory in a worker is a
failed record with the reason, never a crash of the caller.

Points that are compared with each other (the formats of one model, threads and test) run
interleaved: `processes` rounds, each running one worker process of every point of the group in
a shuffled order (asv's way), so that the drift of a shared machine lands on all of them alike
and favours none for running first. Each round appends to the point's pyperf JSON and sidecar;
a point's record is written when its last round is done."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import harness

from . import conditions, record
from .point import Files, Point, Settings, Source

LOG_TAIL_LINES = 20


def worker_command(point: Point, source: Source, settings: Settings, pyperf_tmp: Path, sidecar: Path) -> list[str]:
    """One pyperf manager of `settings.processes` worker processes, appending to pyperf_tmp."""
    pin = ""
    if settings.pin_threads:
        pin = ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:point.threads])
    energy = json.dumps(settings.energy) if settings.energy else ""
    if source.engine is not None:   # an external engine: one process per invocation, as run_group asks
        return [sys.executable, "-m", "harness.engines.bench_worker", "--point", json.dumps(point.to_dict()),
                "--gguf", source.location, "--bin", str(source.engine.bin),
                "--engine-record", json.dumps(source.engine.record), "--sidecar", str(sidecar), "--pin", pin,
                "--energy", energy, "--values", str(settings.repetitions), "--warmups", str(settings.warmups),
                "--append", str(pyperf_tmp)]
    return [sys.executable, "-m", "harness.measure.worker",
            "--point", json.dumps(point.to_dict()), "--model-source", source.location,
            "--model-kind", source.kind, "--seed", str(settings.seed), "--sidecar", str(sidecar), "--pin", pin,
            "--energy", energy,
            "--values", str(settings.repetitions), "--warmups", str(settings.warmups),
            "--processes", str(settings.processes), "--loops", "1", "--append", str(pyperf_tmp), "--quiet"]


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


class _Run:
    """One point's files and state across its rounds."""

    def __init__(self, point: Point, files: Files):
        self.point, self.files = point, files
        self.pyperf_tmp = files.pyperf.with_name(files.pyperf.name + ".tmp")
        self.started = time.time()
        self.failure: dict | None = None
        for sub in (files.pyperf, files.sidecar, files.log):
            sub.parent.mkdir(parents=True, exist_ok=True)
        for stale in (self.pyperf_tmp, files.sidecar, files.log):   # a previous, unfinished attempt
            stale.unlink(missing_ok=True)

    def process(self, source: Source, settings: Settings, tick) -> None:
        """One pyperf manager invocation; a failure ends the point."""
        with open(self.files.log, "a") as out:
            proc = subprocess.Popen(worker_command(self.point, source, settings, self.pyperf_tmp, self.files.sidecar),
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=settings.workspace or harness.ROOT, start_new_session=True)
            try:
                while proc.poll() is None:
                    tick()
                    time.sleep(0.25)
            except BaseException:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
        if proc.returncode != 0:
            code, who = proc.returncode, "the point's pyperf manager"
            inner = record.worker_failure(self.files.sidecar)
            if inner is not None:
                code, who = inner, "a worker process"
            why = f"{who} was killed by {_signal_name(code)}" if code < 0 else f"{who} exited with status {code}"
            self.failure = self._failed(record.failure_cause(self.files.sidecar) or why)

    def _failed(self, why: str) -> dict:
        return record.failed(self.point, why, _tail(self.files.log), str(self.files.log.relative_to(self.files.root)),
                             self.started, time.time())

    def so_far(self) -> "Interim | None":
        """What the rounds run so far show (None once the point has failed)."""
        if self.failure:
            return None
        procs, runs, *_ = record.read_sidecar(self.files.sidecar)
        tps = [r["tokens"] / r["seconds"] for r in runs]
        return Interim(self.point, record.process_means(runs, tps), conditions.summary(procs, tps))

    def record(self, settings: Settings, group_run: str, rounds_planned: int) -> dict:
        if self.failure:
            return self.failure
        try:
            os.replace(self.pyperf_tmp, self.files.pyperf)
            return record.ok(self.point, self.files.pyperf, self.files.sidecar, self.files.root, self.started,
                             time.time(), settings.idle_watts, group_run, rounds_planned)
        except (OSError, ValueError, KeyError) as e:
            return self._failed(f"the worker's output is unusable: {e}")


@dataclass(frozen=True)
class Job:
    """One point measured by one build (its settings' workspace), into its files."""
    point: Point
    source: Source
    settings: Settings
    files: Files


@dataclass(frozen=True)
class Interim:
    """One point of a group between rounds: its process means so far (round order) and conditions."""
    point: Point
    process_tps: list[float]
    conditions: dict


def run_group(jobs: list[Job], tick=lambda: None, seed: int = 0, more=None, max_rounds: int = 0) -> list[dict]:
    """Measures jobs that will be compared with each other (the formats of one model, threads and
    test; or one point under two builds), interleaved in `processes` rounds of one worker process
    each, in an order shuffled per round (seeded, so a sweep can be repeated); returns their
    records, ok or failed, in the order given. After those rounds, while more([Interim, ...]) says
    so and fewer than max_rounds have run, one more round each (pyperf's answer to a noisy system:
    more runs, not silence). Every record names the group run, so its rounds pair with the others'."""
    runs = [(_Run(j.point, j.files), j) for j in jobs]
    planned = jobs[0].settings.processes
    group_run = uuid.uuid4().hex[:16]
    rnd = 0
    while rnd < planned or (more is not None and rnd < max_rounds and
                            more([i for i in (r.so_far() for r, _ in runs) if i is not None])):
        order = list(runs)
        random.Random(f"{seed}:{rnd}:{jobs[0].point.key}").shuffle(order)
        for r, j in order:
            if not r.failure:
                r.process(j.source, replace(j.settings, processes=1), tick)
        rnd += 1
    return [r.record(j.settings, group_run, planned) for r, j in runs]


def run(point: Point, source: Source, settings: Settings, files: Files, tick=lambda: None) -> dict:
    """Measures one point (its processes one after another); returns its record."""
    return run_group([Job(point, source, settings, files)], tick)[0]
