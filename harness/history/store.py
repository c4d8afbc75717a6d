"""The history store: one SQLite file holding every added sweep's points under the machine,
commit, branch and date that measured them.

SQLite because it is in the standard library and needs nothing started, and because what CI
needs of a shared store is what it guarantees: several jobs adding at once (WAL mode and a busy
timeout make a second writer wait for the first instead of failing), and a job killed mid-add
leaving either the whole run or nothing (one transaction per add; the journal rolls a torn one
back on the next open). A directory of Parquet files would need its own locking and renames.

Results directories are read through harness.sweep.results, so whatever an earlier ternbench
wrote and that reader accepts can be added."""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.measure.fingerprint import cpu_identity
from harness.sweep.results import POINTS, ResultsError, read_results

FILE = "history.sqlite"
ENV = "TERNBENCH_HISTORY"
SCHEMA = 1
# a CI job waits this long for another job's add to finish before giving up
BUSY_TIMEOUT_S = 120

DDL = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,      -- of the points added: adding the same results twice is a no-op
    machine TEXT NOT NULL,            -- the label series are kept apart by
    cpu_id TEXT,
    config TEXT NOT NULL,             -- the sweep's name: points of two configurations are not one series
    commit_sha TEXT NOT NULL,
    commit_date TEXT,                 -- ISO 8601 when git knew the commit at add time, orders the series
    branch TEXT,
    run_date TEXT NOT NULL,           -- when the sweep ran (its first point's start), ISO 8601 UTC
    added TEXT NOT NULL,
    source TEXT NOT NULL              -- the results directory it came from
);
CREATE TABLE IF NOT EXISTS points (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    median REAL, ci_low REAL, ci_high REAL, n INTEGER,
    record TEXT NOT NULL,             -- the whole record, as the results directory had it
    PRIMARY KEY (run_id, key)
);
"""


class StoreError(Exception):
    """A store or a results directory that cannot be used: the message says which and why."""


@dataclass
class Added:
    run_id: int
    new: bool          # False: these results were in the store already
    machine: str
    config: str
    commit: str
    branch: str | None
    points: int


def default_path() -> Path:
    """$TERNBENCH_HISTORY, else ~/.cache/ternbench/history (beside the A/B build cache)."""
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    from runtime.tuning import cache_dir

    return cache_dir() / "history"


def _utc(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="seconds")


class Store:
    """DIR/history.sqlite, created on first use."""

    def __init__(self, path=None, create: bool = True):
        self.dir = Path(path) if path is not None else default_path()
        self.file = self.dir / FILE
        if not create and not self.file.is_file():
            raise StoreError(f"{self.dir}: no history store here (no {FILE}; `ternbench history add` creates one)")
        if self.dir.exists() and not self.dir.is_dir():
            raise StoreError(f"{self.dir}: not a directory")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.file, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")   # an add that returned survives a power cut
            with self._transaction():
                for stmt in DDL.split(";"):   # (no semicolon inside DDL's comments)
                    if stmt.strip():
                        self.db.execute(stmt)
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA),))
            (schema,) = self.db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.file}: not a usable history store: {e}") from None
        except OSError as e:
            raise StoreError(f"{self.dir}: cannot open the history store: {e}") from None
        if schema != str(SCHEMA):
            raise StoreError(f"{self.file}: store schema {schema}, this ternbench reads schema {SCHEMA}")

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def _transaction(self):
        # IMMEDIATE: take the write lock now, so two adders queue instead of deadlocking
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- adding ------------------------------------------------------------------------------

    def add(self, results_dir, commit: str | None = None, branch: str | None = None,
            machine: str | None = None) -> Added:
        """One finished sweep's points, in one transaction: all of them or none."""
        try:
            results = read_results(results_dir)
        except ResultsError as e:
            raise StoreError(str(e)) from None
        records = [r for r in results.records if isinstance(r, dict)]
        if not records:
            raise StoreError(f"{results.path}: no finished point to add")
        fp = results.fingerprint if isinstance(results.fingerprint, dict) else {}
        mf = results.manifest.get("machine") if isinstance(results.manifest.get("machine"), dict) else {}
        commit = commit or mf.get("ternbench_commit") or (fp.get("ternbench") or {}).get("git_commit")
        if not commit:
            raise StoreError(f"{results.path}: no git commit recorded (manifest.json, sysinfo.json); give --commit")
        ident = mf.get("cpu_id") or cpu_identity(fp)
        cpu = mf.get("cpu") or (fp.get("cpu") or {}).get("model_name") or "unknown CPU"
        machine = machine or (f"{cpu} ({ident})" if ident else str(cpu))
        started = [r["started"] for r in records if isinstance(r.get("started"), (int, float))]
        run_date = _utc(min(started) if started else results.dir.file(POINTS).stat().st_mtime)
        digest = hashlib.sha256(json.dumps([machine, records], sort_keys=True).encode()).hexdigest()
        rows = [_point_row(r) for r in records]
        with self._transaction():
            old = self.db.execute("SELECT id FROM runs WHERE digest = ?", (digest,)).fetchone()
            if old:
                return Added(old[0], False, machine, results.name, commit, branch, len(rows))
            cur = self.db.execute(
                "INSERT INTO runs (digest, machine, cpu_id, config, commit_sha, commit_date, branch, run_date, added,"
                " source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (digest, machine, ident, str(results.name), commit, commit_date(commit), branch, run_date,
                 _utc(datetime.datetime.now().timestamp()), str(results.path.resolve())))
            run_id = cur.lastrowid
            self.db.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                [(run_id, *row) for row in rows])
        return Added(run_id, True, machine, str(results.name), commit, branch, len(rows))

    # --- reading -----------------------------------------------------------------------------

    def runs(self) -> list[dict]:
        cols = ("id", "machine", "cpu_id", "config", "commit_sha", "commit_date", "branch", "run_date", "added",
                "source")
        rows = self.db.execute(f"SELECT {', '.join(cols)} FROM runs ORDER BY id").fetchall()
        return [dict(zip(cols, r)) for r in rows]

    def points(self, branch: str | None = None) -> list[dict]:
        """Every point with its run's machine, config, commit and dates."""
        sql = ("SELECT r.id, r.machine, r.config, r.commit_sha, r.commit_date, r.branch, r.run_date, p.key,"
               " p.status, p.median, p.ci_low, p.ci_high, p.n FROM points p JOIN runs r ON r.id = p.run_id")
        args: tuple = ()
        if branch is not None:
            sql += " WHERE r.branch = ?"
            args = (branch,)
        cols = ("run_id", "machine", "config", "commit", "commit_date", "branch", "run_date", "key", "status",
                "median", "ci_low", "ci_high", "n")
        return [dict(zip(cols, r)) for r in self.db.execute(sql, args).fetchall()]

    def record(self, run_id: int, key: str) -> dict:
        (text,) = self.db.execute("SELECT record FROM points WHERE run_id = ? AND key = ?", (run_id, key)).fetchone()
        return json.loads(text)


def _point_row(r: dict) -> tuple:
    tps = r.get("tokens_per_s") if isinstance(r.get("tokens_per_s"), dict) else {}

    def number(v):
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    status = str(r.get("status") or "unknown")
    n = tps.get("n") if isinstance(tps.get("n"), int) else None
    return (str(r["key"]), status, number(tps.get("median")), number(tps.get("ci95_low")),
            number(tps.get("ci95_high")), n, json.dumps(r))


def commit_date(commit: str) -> str | None:
    """The committer date of COMMIT if the git repository here knows it (a CI job adds from its
    checkout); series are ordered by it, else by when the sweep ran."""
    try:
        proc = subprocess.run(["git", "show", "-s", "--format=%cI", commit, "--"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None
