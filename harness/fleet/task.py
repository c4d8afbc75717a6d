"""The sweep on one node: the node's own plan (its CPUs, memory and variants decide what it
skips), run by the local sweep runner into a temporary results directory, each record yielded to
the driver as soon as it is on disk here, with the point's files and the directory's header
files (config, fingerprint, manifest, energy, plan).

Ray calls node_sweep as a streaming generator task. The sweep runs in a thread because the
runner reports records through a callback, and only this function's own frame can yield.

Items yielded, in order:
    {"kind": "plan", ...}       the points this node will run, skip (with reasons) or has already
    {"kind": "point", ...}      one record and its files, as each lands
    {"kind": "end", ...}        the final header files and the outcome
    {"kind": "refused", ...}    instead of the rest: why this node runs nothing (other code than
                                the driver's, a --resume it cannot continue, a configuration it
                                cannot use)"""
from __future__ import annotations

import os
import queue
import tempfile
import threading
from pathlib import Path

from . import software

NOT_SHIPPED = ("points.jsonl", "points.csv", "points.parquet")   # the driver keeps its own
TMP_PREFIX = "ternbench-fleet-"   # + the task's pid: what a killed task leaves is found by it


class Refused(Exception):
    pass


def header_files(root: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(root.iterdir())
            if f.is_file() and f.name not in NOT_SHIPPED and not f.name.endswith(".tmp")}


def point_files(root: Path, point) -> dict[str, bytes]:
    from harness.measure.point import Files

    files = Files.under(root, point)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in (files.pyperf, files.sidecar, files.log)
            if p.is_file()}


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _sweep(request: dict, tmp: Path, nice: int, emit) -> None:
    from harness.energy import EnergyUnavailable
    from harness.measure.fingerprint import fingerprint
    from harness.measure.point import tune
    from harness.sweep import plan as sweep_plan
    from harness.sweep import runner
    from harness.sweep.config import ConfigError, load_config
    from harness.sweep.results import ResultsDir, ResultsError

    # the configuration with the model files it names beside it, so relative paths resolve here
    conf_dir = tmp / "config"
    _write_tree(conf_dir, {request["config_name"]: request["config_text"].encode(), **request["model_files"]})
    here, there = str(conf_dir), request["config_dir"]
    try:
        config = load_config(conf_dir / request["config_name"])
    except ConfigError as e:
        raise Refused(f"the configuration cannot run here: {str(e).replace(here, there)}") from None
    plan = sweep_plan.expand(config)
    results = ResultsDir(tmp / "results")
    resume = bool(request["prior"].get("points.jsonl"))
    if request["prior"]:
        results.create()
        _write_tree(results.path, request["prior"])
    done = {k for k, r in results.latest().items() if r.get("status") == "ok"} if resume else set()
    emit({"kind": "plan", "nice": nice, "points": [p.key for p in plan.points if p.key not in done],
          "already": [p.key for p in plan.points if p.key in done],
          "skipped": [{"key": s.point.key, "reason": s.reason} for s in plan.skipped]})
    if not plan.points:
        raise Refused("no point of the sweep can run on this node (the skipped points say why)")
    tune(plan.points, lambda msg: None)
    by_key = {p.key: p for p in plan.points}

    def send(res, record):
        emit({"kind": "point", "record": record,
              "files": {**header_files(res.path), **point_files(res.path, by_key[record["key"]])}})

    try:
        outcome = runner.run(config, plan, results, fingerprint(), resume, quiet=True, on_record=send)
    except (runner.ResumeRefused, ResultsError) as e:
        raise Refused(str(e).replace(str(results.path), request["results_dir"])) from None
    except EnergyUnavailable as e:
        raise Refused(f"energy backend {config.energy.backend!r} cannot be used here: {e}") from None
    emit({"kind": "end", "files": header_files(results.path), "interrupted": outcome.interrupted,
          "over_budget": [p.key for p in outcome.over_budget]})


def sweep_stale_dirs() -> None:
    """A task killed outright (a cancelled run, a lost driver) leaves its temporary directory: the
    next task on the node removes those whose process is gone."""
    import shutil

    for d in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*-*"):
        pid = d.name[len(TMP_PREFIX):].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def as_locally() -> int:
    """The node's sweep starts its processes as `ternbench run` would: Ray runs its workers at
    nice 15 (its worker_niceness), below every other process of the machine, and sets
    OMP_NUM_THREADS to the task's CPUs, where the harness asks for one BLAS thread. Returns the
    niceness it could get (lowering it needs CAP_SYS_NICE or RLIMIT_NICE, else it stays)."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)   # this thread; the sweep's thread and processes inherit it
    except OSError:
        pass
    return os.getpriority(os.PRIO_PROCESS, 0)


def node_sweep(request: dict):
    """The Ray task (a generator): request holds the driver's software identity, the configuration
    (text, name, directory on the driver, model files), the results this node's directory on the
    driver already has (for --resume), and that directory's path (for messages)."""
    why = software.mismatch(request["software"], software.identity())
    if why:
        yield {"kind": "refused", "reason": why}
        return
    nice = as_locally()
    items: queue.Queue = queue.Queue()
    finished = object()
    sweep_stale_dirs()
    with tempfile.TemporaryDirectory(prefix=f"{TMP_PREFIX}{os.getpid()}-") as tmp:
        def work():
            try:
                _sweep(request, Path(tmp), nice, items.put)
            except Refused as e:
                items.put({"kind": "refused", "reason": str(e)})
            except BaseException as e:   # noqa: BLE001 -- re-raised in the task's own thread below
                items.put(e)
            finally:
                items.put(finished)

        threading.Thread(target=work, name="ternbench-sweep", daemon=True).start()
        while (item := items.get()) is not finished:
            if isinstance(item, BaseException):
                raise item
            yield item
