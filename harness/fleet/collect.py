"""The driver's side of a fleet run: one task per node, and each node's stream written into its
results directory as it arrives, with the results directory's own crash-safe writers: the point's
files and the header files written whole and renamed into place, then its record appended and
fsynced. A record is the commit point: Ctrl-C or a lost node at any moment leaves every point
whose record was written, and --resume runs the rest."""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from harness.measure.fingerprint import cpu_identity
from harness.sweep.results import POINTS, ResultsDir, write_atomic

from . import task
from .nodes import Node

PRIOR = ("config.yaml", "manifest.json", POINTS)   # what a node needs of its results to --resume them


@dataclass
class NodeRun:
    """One node's share of the sweep, as the driver has seen it so far."""
    node: Node
    results: ResultsDir
    status: str = "waiting"            # waiting, running, done, interrupted, refused, failed, lost
    reason: str = ""
    planned: list[str] = field(default_factory=list)
    ok: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    over_budget: list[str] = field(default_factory=list)
    nice: int | None = None            # the priority the node measured at (0 as locally)

    def cpu(self) -> str | None:
        return cpu_identity(self.results.read_json("sysinfo.json") or {}) if self.results.path.is_dir() else None

    def summary(self) -> dict:
        n = self.node
        return {"machine_id": n.machine_id, "results": str(self.results.path), "hostname": n.hostname, "ip": n.ip,
                "node_id": n.node_id, "cpu_id": self.cpu(), "nice": self.nice, "status": self.status,
                "reason": self.reason or None,
                "planned": len(self.planned), "ok": self.ok, "failed": self.failed, "already_finished": self.already,
                "skipped": self.skipped, "not_run_over_budget": self.over_budget,
                "missing": [k for k in self.planned if k not in self.ok and k not in {f["key"] for f in self.failed}]}


def _safe(rel: str) -> PurePosixPath:
    """A node names the files it sends; none may land outside its results directory."""
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ValueError(f"a node sent a file named {rel!r}, outside its results directory")
    return p


def write_files(results: ResultsDir, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = results.path / _safe(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)


def prior(results: ResultsDir) -> dict[str, bytes]:
    """What a node needs to continue its results: --resume then runs only what they lack."""
    if not results.has_points():
        return {}
    results.repair()   # a record a kill of the driver cut short counts as not written
    return {name: results.file(name).read_bytes() for name in PRIOR if results.file(name).is_file()}


class Collector:
    """Receives every node's items (one thread per node), writes them, and reports progress."""

    def __init__(self, runs: list[NodeRun], baseline: str | None, log):
        self.runs, self.baseline, self.log = runs, baseline, log
        self.lock = threading.Lock()

    def _say(self, run: NodeRun, text: str) -> None:
        with self.lock:
            self.log(f"[{run.node.machine_id}] {text}")

    def handle(self, run: NodeRun, item: dict) -> None:
        kind = item.get("kind")
        if kind == "plan":
            run.status, run.planned = "running", item["points"]
            run.already, run.skipped, run.nice = item["already"], item["skipped"], item["nice"]
            self._say(run, f"on {run.node.where()}: {len(run.planned)} point(s) to run, {len(run.skipped)} "
                           f"skipped" + (f", {len(run.already)} already finished" if run.already else ""))
            if run.nice:
                self._say(run, f"warning: measuring at nice {run.nice}, below the machine's other processes "
                               "(Ray's worker_niceness): start its Ray with RAY_worker_niceness=0 ray start ...")
        elif kind == "point":
            record = item["record"]
            write_files(run.results, item["files"])
            run.results.append(record)   # the record, safe on disk; its tables wait for the node's end
            if record["status"] == "ok":
                run.ok.append(record["key"])
                outcome = f"{record['tokens_per_s']['median']:.2f} tokens/s"
            else:
                run.failed.append({"key": record["key"], "reason": record.get("reason")})
                outcome = f"FAILED, {record.get('reason')}"
            done = len(run.ok) + len(run.failed)
            self._say(run, f"{done}/{len(run.planned)} {record['key']}: {outcome}")
        elif kind == "end":
            write_files(run.results, item["files"])
            run.over_budget = item["over_budget"]
            run.status = "interrupted" if item["interrupted"] else "done"
            self._say(run, f"finished: {len(run.ok)} ok, {len(run.failed)} failed"
                           + (f", {len(run.over_budget)} left by the time budget" if run.over_budget else ""))
        elif kind == "refused":
            run.status, run.reason = "refused", item["reason"]
            self._say(run, f"refused: {run.reason}")

    def follow(self, ray, run: NodeRun, stream) -> None:
        """One node's stream, to its end or the node's loss; then the results' tables (points.csv,
        points.parquet), once: rebuilt after every point, as `ternbench run` does between its
        points, they would cost this process CPU while the node measures its next point, the
        same CPU when the driver runs on a node of the cluster."""
        try:
            for ref in stream:
                self.handle(run, ray.get(ref))
            if run.status in ("waiting", "running"):
                run.status, run.reason = "lost", "its task ended without finishing the sweep"
        except ray.exceptions.TaskCancelledError:
            run.status = "interrupted"
        except ray.exceptions.RayTaskError as e:   # the task raised: the node runs, its ternbench does not
            run.status, run.reason = "failed", _reason(e)
            self._say(run, f"failed: {run.reason}")
        except ray.exceptions.RayError as e:
            run.status, run.reason = "lost", _reason(e)
            self._say(run, f"lost: {run.reason}")
        except (OSError, ValueError) as e:
            run.status, run.reason = "lost", f"the driver could not write its results: {e}"
            self._say(run, run.reason)
        finally:
            if run.results.has_points():
                try:
                    run.results.rebuild_tables(self.baseline)
                except (OSError, ValueError) as e:
                    self._say(run, f"could not write the results' tables: {e}")


def _reason(e: Exception) -> str:
    cause = getattr(e, "cause", None)
    text = f"{type(cause).__name__}: {cause}" if cause is not None else f"{type(e).__name__}: {e}"
    return " ".join(text.split())[:500]


def dispatch(ray, runs: list[NodeRun], request: dict, resource: str | None) -> list:
    """One streaming task per node, pinned to it, holding all its CPUs and all of the fleet's
    custom resource there: Ray then places nothing else that asks for CPUs, and no second
    ternbench sweep, on that node while it measures."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = ray.remote(task.node_sweep)
    streams = []
    for run in runs:
        n = run.node
        options = {"num_cpus": n.cpus, "num_returns": "streaming", "max_retries": 0,
                   "scheduling_strategy": NodeAffinitySchedulingStrategy(n.node_id, soft=False)}
        if resource:
            options["resources"] = {resource: n.resource}
        streams.append(remote.options(**options).remote(
            {**request, "prior": prior(run.results), "results_dir": str(run.results.path)}))
    return streams


def run_all(ray, runs: list[NodeRun], request: dict, resource: str | None, baseline: str | None,
            log=lambda m: print(m, file=sys.stderr, flush=True)) -> bool:
    """Every node's sweep, its results written as they arrive; False when interrupted (Ctrl-C)."""
    collector = Collector(runs, baseline, log)
    for run in runs:
        run.results.create()
    streams = dispatch(ray, runs, request, resource)
    threads = [threading.Thread(target=collector.follow, args=(ray, run, s), name=f"fleet-{run.node.machine_id}",
                                daemon=True) for run, s in zip(runs, streams)]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(0.2)
        return True
    except KeyboardInterrupt:
        # force: the node's worker process dies, and its sweep's workers with it (parent-death
        # signal); a record is written whole or not at all, so waiting for the threads loses nothing
        for s in streams:
            try:
                ray.cancel(s, force=True)
            except Exception:   # noqa: BLE001 -- a task already finished or lost cannot be cancelled
                pass
        for t in threads:
            t.join(timeout=30)
        for run in runs:
            if run.status in ("waiting", "running"):
                run.status = "interrupted"
        return False


def stale_dirs(out: Path, runs: list[NodeRun]) -> list[Path]:
    """Machines of an earlier run that no chosen node maps to now."""
    from .layout import machine_dirs

    mine = {run.results.path.resolve() for run in runs}
    return [d for d in machine_dirs(out) if d.resolve() not in mine]
