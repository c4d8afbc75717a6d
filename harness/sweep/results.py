"""A results directory, written so that a crash, Ctrl-C or kill -9 at any moment loses no
finished point:

    config.yaml         the sweep configuration as given (earlier versions: config-<sha>.yaml)
    sysinfo.json        the system fingerprint
    manifest.json       what a --resume must find unchanged
    plan.json           the points of the latest invocation, and those skipped with reasons
    points.jsonl        one JSON line per finished point (ok or failed), appended and fsynced;
                        a later line for the same key supersedes an earlier one
    pyperf/ID.json      each point's pyperf result (`python -m pyperf stats` reads it)
    raw/ID.jsonl        each point's worker sidecar: per-run wall and runtime seconds, energy, probes
    logs/ID.log         each point's worker output
    points.csv, points.parquet   the tidy table, rebuilt from points.jsonl

Whole files are written to a temporary name and renamed, so they are either old or new."""
from __future__ import annotations

import json
import os
from pathlib import Path

POINTS = "points.jsonl"


class ResultsError(Exception):
    """A results directory that cannot be read as one."""


def write_atomic(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ResultsDir:
    def __init__(self, path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def create(self) -> None:
        for sub in ("", "pyperf", "raw", "logs"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    def has_points(self) -> bool:
        return self.file(POINTS).is_file() and self.file(POINTS).stat().st_size > 0

    def read_json(self, name: str):
        try:
            return json.loads(self.file(name).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise ResultsError(f"{self.file(name)}: not readable: {e}") from None

    def write_json(self, name: str, obj) -> None:
        write_atomic(self.file(name), json.dumps(obj, indent=2) + "\n")

    # --- points.jsonl ----------------------------------------------------------------------------

    def records(self) -> list[dict]:
        """Every record in order. A last line without its newline is a write that a kill cut
        short: it is ignored (its point counts as not finished). Any other bad line is an error."""
        path = self.file(POINTS)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return []
        lines = text.split("\n")
        torn = lines.pop()   # "" when the file ends with a newline
        out = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                raise ResultsError(f"{path}: line {number} is not a JSON record") from None
        if torn.strip():
            try:
                out.append(json.loads(torn))   # complete but for the newline
            except ValueError:
                pass
        return out

    def latest(self) -> dict[str, dict]:
        """The newest record per point key, in first-seen order."""
        out: dict[str, dict] = {}
        for r in self.records():
            out.pop(r["key"], None)
            out[r["key"]] = r
        return out

    def repair(self) -> None:
        """Cuts a torn last line (a write a kill interrupted), so the next append starts clean."""
        path = self.file(POINTS)
        if not path.is_file():
            return
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data[: data.rfind(b"\n") + 1]
            with open(path, "r+b") as f:
                f.truncate(len(keep))
                os.fsync(f.fileno())

    def append(self, record: dict) -> None:
        line = (json.dumps(record) + "\n").encode()
        fd = os.open(self.file(POINTS), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    # --- the tidy table -----------------------------------------------------------------------

    def rebuild_tables(self, baseline: str | None = None) -> None:
        from . import tables

        frame = tables.points_frame(list(self.latest().values()), baseline)
        write_atomic(self.file("points.csv"), frame.to_csv(index=False))
        tmp = self.file("points.parquet.tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, self.file("points.parquet"))


class Results:
    """A finished (or partly finished) sweep, read back: the one reader of a results directory,
    for reports, cross-machine comparisons, claims and the regression gate."""

    def __init__(self, path):
        self.dir = ResultsDir(path)
        if not self.dir.path.is_dir():
            raise ResultsError(f"{path}: no such results directory")
        if not self.dir.file(POINTS).is_file():
            raise ResultsError(f"{path}: not a results directory (no {POINTS}; `ternbench run --out` writes one)")
        self.records = list(self.dir.latest().values())
        self.fingerprint = self.dir.read_json("sysinfo.json") or {}
        manifest = self.dir.read_json("manifest.json")
        self.has_manifest = manifest is not None
        self.manifest = manifest if manifest is not None else {}
        self.energy = self.dir.read_json("energy.json")           # backend, provenance, idle, not_used
        self.plan = self.dir.read_json("plan.json") or {"points": [], "skipped": []}
        try:
            self.config_text = self.dir.file("config.yaml").read_text()
        except OSError:
            self.config_text = ""
        self.baseline = self.plan.get("baseline")
        self.name = self.plan.get("config") or self.dir.path.name

    @property
    def path(self) -> Path:
        return self.dir.path

    @property
    def skipped(self) -> list[dict]:
        """Points not run, each with its reason (machine limits, exclusions, the time budget)."""
        return self.plan.get("skipped", [])

    def frame(self):
        """The tidy table (one row per point, speed-ups and energy reductions vs the baseline)."""
        from . import tables

        return tables.points_frame(self.records, self.baseline)


def read_results(path) -> Results:
    """A results directory as every command reads one, any way it can be unreadable turned into one
    ResultsError naming the file: a missing directory, a record without a point key, bad bytes."""
    try:
        return Results(path)
    except ResultsError:
        raise
    except (KeyError, TypeError, AttributeError):
        raise ResultsError(f"{Path(path) / POINTS}: a record without a point key") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"{Path(path) / POINTS}: not readable: {e}") from None
