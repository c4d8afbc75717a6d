"""`ternbench history`: the store (add, idempotence, parallel writers, a writer killed mid-add,
bad input), the report (the step at the commit that made it, no other; the page self-contained
and shown at 1366 x 768 in headless Chromium) on histories written with the results writer,
and `history bisect` finding a deliberate 15% slowdown in a real 12-commit repository."""
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clirun import ternbench
from harness.history import steps
from harness.history.store import FILE, Store
from test_report import assert_self_contained, browser_errors, check_in_browser, make_results, ok_record

KEY_STEP = "125M/i2s+int8/avx512vnni/t1/tg32"
KEY_FLAT = "125M/f16+f16/avx512vnni/t1/tg32"
T0 = 1_780_000_000.0


def sha(i: int) -> str:
    return f"{i:02d}" + "c0ffee" * 6 + "00"


def one_run(path: Path, i: int, rng: random.Random, step_at: int | None = 7, change: float = -0.15,
            noise: float = 0.02, cpu: str = "Test CPU 9000") -> Path:
    """Commit i's sweep as `ternbench run` writes one (via the results writer): two points,
    KEY_STEP 15% slower from commit STEP_AT on, KEY_FLAT unchanged, both with noise."""
    from test_report import fingerprint

    records = []
    for key_fmt, base, stepped in (("i2s", 500.0, True), ("f16", 120.0, False)):
        tps = base * (1 + change if stepped and step_at is not None and i >= step_at else 1) * (1 + rng.gauss(0, noise))
        r = ok_record("125M", key_fmt, 1, "tg32", tps)
        r["samples_tokens_per_s"] = [tps * (1 + rng.gauss(0, noise / 2)) for _ in range(6)]
        r["started"], r["finished"] = T0 + 3600 * i, T0 + 3600 * i + 60
        records.append(r)
    make_results(path, records, fp=fingerprint(cpu=cpu))
    return path


def history(tmp_path, n=12, **kw) -> tuple[Path, list[str]]:
    store = tmp_path / "store"
    rng = random.Random(26)
    s = Store(store)
    for i in range(n):
        s.add(one_run(tmp_path / f"r{i}", i, rng, **kw), commit=sha(i), branch="main")
    s.close()
    return store, [sha(i) for i in range(n)]


def one_line_error(proc, words):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert words in lines[0], lines[0]


# --- the store ----------------------------------------------------------------------------------

def test_add_records_points_under_machine_commit_and_branch(tmp_path):
    results = one_run(tmp_path / "r", 0, random.Random(1))
    proc = ternbench("history", "add", str(results), "--store", str(tmp_path / "s"), "--commit", sha(0),
                     "--branch", "main", "--json")
    data = json.loads(proc.stdout)
    assert data["new"] and data["points"] == 2 and data["commit"] == sha(0) and data["branch"] == "main"
    assert data["machine"] == "Test CPU 9000 (TestVendor family 6 model 1 stepping None)"
    # the last connection folded the write-ahead log into the file: the file alone is the store
    assert not (tmp_path / "s" / (FILE + "-wal")).exists()
    s = Store(tmp_path / "s", create=False)
    (run,) = s.runs()
    assert run["commit_sha"] == sha(0) and run["run_date"].startswith("2026-05-28")
    assert {p["key"] for p in s.points()} == {KEY_STEP, KEY_FLAT}
    assert s.record(run["id"], KEY_STEP)["samples_tokens_per_s"] == json.loads(
        (results / "points.jsonl").read_text().splitlines()[0])["samples_tokens_per_s"]
    # the same results again: nothing new (a retried CI job)
    again = json.loads(ternbench("history", "add", str(results), "--store", str(tmp_path / "s"), "--commit", sha(0),
                                 "--json").stdout)
    assert again["new"] is False and again["run"] == data["run"] and len(s.runs()) == 1


def test_the_environment_variable_chooses_the_store_and_the_results_name_the_commit(tmp_path):
    results = one_run(tmp_path / "r", 0, random.Random(1))
    manifest = json.loads((results / "manifest.json").read_text())
    manifest["machine"]["ternbench_commit"] = "feedbeef" * 5
    (results / "manifest.json").write_text(json.dumps(manifest))
    proc = ternbench("history", "add", str(results), env={"TERNBENCH_HISTORY": str(tmp_path / "env-store")})
    assert "feedbeeffeed" in proc.stdout and "added" in proc.stdout
    assert Store(tmp_path / "env-store", create=False).runs()[0]["commit_sha"] == "feedbeef" * 5


def test_results_of_an_earlier_version_without_a_manifest_are_added(tmp_path):
    results = one_run(tmp_path / "old", 0, random.Random(1))
    (results / "manifest.json").unlink()
    (results / "plan.json").unlink()
    added = Store(tmp_path / "s").add(results, commit="abc1234")
    assert added.new and added.points == 2 and added.config == "old"


WRITER = """
import sys
from harness.history.store import Store
s = Store(sys.argv[1])
for d in sys.argv[2:]:
    s.add(d, commit=d.rsplit("-", 1)[1] * 8, branch="main")
"""


def test_two_writers_adding_at_once_lose_nothing(tmp_path):
    rng = random.Random(3)
    dirs = {w: [str(one_run(tmp_path / f"w{w}-{i:02d}{w}", i, rng)) for i in range(15)] for w in "ab"}
    Store(tmp_path / "s").close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "s"), *dirs[w]], env=env,
                              stderr=subprocess.PIPE, text=True) for w in "ab"]
    for p in procs:
        assert p.wait(timeout=240) == 0, p.stderr.read()
    s = Store(tmp_path / "s", create=False)
    runs = s.runs()
    assert len(runs) == 30 and len({r["source"] for r in runs}) == 30
    counts = {}
    for p in s.points():
        counts[p["run_id"]] = counts.get(p["run_id"], 0) + 1
    assert sorted(counts.values()) == [2] * 30
    assert s.db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


KILLED = """
import sys, time
from harness.history import store
s = store.Store(sys.argv[1])
real = s.db.executemany
def slow(sql, rows):
    real(sql, rows)                       # the points are written, the transaction not committed
    open(sys.argv[3], "w").close()
    time.sleep(60)
s.db = type("DB", (), {"execute": s.db.execute, "executemany": staticmethod(slow)})()
s.add(sys.argv[2], commit="deadbeef")
"""


def test_a_writer_killed_mid_add_leaves_nothing_torn(tmp_path):
    store_dir = tmp_path / "s"
    first = Store(store_dir)
    first.add(one_run(tmp_path / "kept", 0, random.Random(1)), commit="a" * 40)
    first.close()
    victim = one_run(tmp_path / "victim", 1, random.Random(2))
    flag = tmp_path / "inside"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(store_dir), str(victim), str(flag)], env=env)
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the writer never reached its transaction"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    s = Store(store_dir, create=False)
    assert s.db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert [r["commit_sha"] for r in s.runs()] == ["a" * 40]          # the killed add left no run
    assert {p["run_id"] for p in s.points()} == {s.runs()[0]["id"]}    # and no point
    assert s.add(victim, commit="deadbeef").new                       # and can be done again
    assert len(s.points()) == 4


def in_process(capsys, *args):
    """The CLI run in this process (each subprocess costs seconds of imports on a busy machine)."""
    from harness.cli.main import main

    capsys.readouterr()
    status = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, status, out.out, out.err)


def test_bad_input_is_one_line_with_exit_2(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / FILE).write_bytes(b"this is not sqlite" * 100)
    good = one_run(tmp_path / "r", 0, random.Random(1))
    nocommit = one_run(tmp_path / "nocommit", 0, random.Random(1))
    (nocommit / "sysinfo.json").write_text("{}")
    store = ["--store", str(tmp_path / "s")]
    for args, words in [
        (["add", str(tmp_path / "missing"), *store], "no such results directory"),
        (["add", str(tmp_path), *store], "not a results directory"),
        (["add", str(nocommit), *store], "no git commit recorded"),
        (["add", str(good), "--store", str(tmp_path / "file")], "not a directory"),
        (["add", str(good), "--store", str(tmp_path / "corrupt")], "not a usable history store"),
        (["report", "--store", str(tmp_path / "none")], "no history store here"),
        (["bisect", "no-such-rev-xyz", "HEAD", "configs/ci-smoke.yaml"], "GOOD no-such-rev-xyz: not a commit"),
        (["bisect", "HEAD", "HEAD", "configs/ci-smoke.yaml"], "the same commit"),
        (["bisect", "HEAD", "HEAD~1", "configs/ci-smoke.yaml"], "is not an ancestor of BAD"),
        (["bisect", "HEAD~1", "HEAD", str(tmp_path / "nope.yaml")], "nope.yaml"),
        (["bisect", "HEAD~1", "HEAD", "configs/ci-smoke.yaml", "--max-regression", "lots"], "not a percentage"),
        (["bisect", "HEAD~1", "HEAD", "configs/ci-smoke.yaml", "--repo", str(tmp_path)], "not a git checkout"),
    ]:
        one_line_error(in_process(capsys, "history", *args), words)


def test_too_few_values_for_the_gate_are_refused_before_any_build(tmp_path):
    from test_sweep_config import write

    cfg = write(tmp_path, "models: [tiny.yaml]\nformats: [i2s]\nthreads: [1]\nworkloads: {generation: [4]}\n"
                          "repetitions: 2\nprocesses: 2\nbaseline: null\n")
    one_line_error(ternbench("history", "bisect", "HEAD~1", "HEAD", str(cfg), check=False),
                   "4 value(s) per point and side")


def test_bisect_uses_the_gates_defaults():
    from harness.cli import history as history_cmd
    from harness.cli.main import build_parser

    args = build_parser().parse_args(["check", "a", "b"])
    assert (history_cmd.MAX_REGRESSION, history_cmd.ALPHA) == (args.max_regression, args.alpha)


# --- steps --------------------------------------------------------------------------------------

def test_steps_on_noise_alone_are_rare_and_a_15_percent_step_is_found_where_it_is():
    """100 series of 30 commits with 2% noise: (nearly) no step in the noise alone, and with a
    15% drop at commit 17, exactly that step. Seeded, so the counts are the same every run."""
    rng = random.Random(5)
    false, missed = 0, 0   # at most 5% of each: the criterion is tuned for about 1.5% false steps at 30 commits
    for _ in range(100):
        flat = [100 * (1 + rng.gauss(0, 0.02)) for _ in range(30)]
        false += bool(steps.detect(flat, [0.005] * 30))
        found = steps.detect([v * (0.85 if i >= 17 else 1) for i, v in enumerate(flat)], [0.005] * 30)
        missed += [s.index for s in found] != [17] or not -0.19 < found[0].change < -0.11
    assert false <= 5 and missed <= 5, (false, missed)
    # a single slow commit is an outlier, not a step; identical values have none
    assert steps.detect([100.0] * 6 + [80.0] + [100.0] * 6) == []
    assert steps.detect([100.0] * 12) == []


# --- the report ---------------------------------------------------------------------------------

def test_report_marks_the_step_at_its_commit_and_no_other(tmp_path):
    store, commits = history(tmp_path)
    proc = ternbench("history", "report", "--store", str(store), "--out", str(tmp_path / "page"), "--json")
    data = json.loads(proc.stdout)
    assert data["commits"] == 12 and data["series"] == 2
    (step,) = data["steps"]
    assert step["key"] == KEY_STEP and step["commit"] == commits[7] and step["previous"] == commits[6]
    assert -0.19 < step["change"] < -0.11
    page = Path(data["path"]).read_text()
    assert_self_contained(page)
    assert page.count("<img") == 2 and commits[7][:12] in page and "-1" in page
    human = ternbench("history", "report", "--store", str(store), "--out", str(tmp_path / "page2")).stdout
    assert f"at {commits[7][:12]}: {KEY_STEP}" in human and "1 step(s)" in human


def test_report_keeps_machines_apart_and_orders_steps_by_size(tmp_path):
    """Quiet series (0.3% noise): this is about grouping and order, the tests above about detection."""
    rng = random.Random(9)
    s = Store(tmp_path / "s")
    for i in range(10):
        s.add(one_run(tmp_path / f"a{i}", i, rng, step_at=4, change=-0.30, noise=0.003), commit=sha(i))
        s.add(one_run(tmp_path / f"b{i}", i, rng, step_at=6, change=-0.15, noise=0.003, cpu="Other CPU"),
              commit=sha(i))
    from harness.history import report

    path, summary = report.write(s, tmp_path / "out")
    assert [(st["machine"].split(" (")[0], st["commit"]) for st in summary["steps"]] == \
        [("Test CPU 9000", sha(4)), ("Other CPU", sha(6))]
    assert summary["series"] == 4
    # --branch: only the runs added with that branch (these had none)
    _, on_main = report.write(s, tmp_path / "main", branch="main")
    assert (on_main["runs"], on_main["series"], on_main["steps"]) == (0, 0, [])


def test_report_in_a_browser_at_1366_and_on_a_phone(tmp_path):
    store, _ = history(tmp_path)
    from harness.history import report

    path, _ = report.write(Store(store, create=False), tmp_path / "page")
    errors, probe = browser_errors(tmp_path, Path(path), 1366, 768)
    assert errors == [], errors
    assert probe["images"] == 2 and probe["scrollWidth"] <= 1366, probe
    check_in_browser(tmp_path, Path(path))


def test_hostile_labels_are_escaped(tmp_path):
    results = one_run(tmp_path / "r", 0, random.Random(1), cpu="<script>alert(1)</script>")
    s = Store(tmp_path / "s")
    s.add(results, commit="<b>x</b>", branch="main")
    from harness.history import report

    path, _ = report.write(s, tmp_path / "out")
    page = Path(path).read_text()
    assert "<script>alert" not in page and "&lt;script&gt;" in page and "<b>x" not in page


# --- bisect: the search and what it prints -----------------------------------------------------

@pytest.mark.parametrize("first", [None, *range(11)])
def test_the_search_asks_about_few_commits_and_finds_the_first_slower(first):
    from harness.history.bisect import search

    commits = [f"c{i}" for i in range(11)]    # the 11 commits after GOOD of a 12-commit history
    asked = []

    def slower(c):
        asked.append(c)
        return first is not None and commits.index(c) >= first

    assert search(commits, slower) == (None if first is None else commits[first])
    distinct = set(asked)
    # GOOD's build is the fifth: ceil(log2(12)) + 1 builds in all; BAD only when the search ends on it
    assert len(distinct) <= math.ceil(math.log2(11)) + (1 if first in (None, 10) else 0), asked


def test_bisect_prints_the_commit_its_figures_and_what_it_cost(tmp_path):
    from harness.cli.history import text
    from harness.gate import regression
    from harness.history.bisect import Outcome, Probe

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "commit", "-q", "--allow-empty", "-m", "make the forward pass slower")
    head = git(repo, "rev-parse", "HEAD")
    rng = random.Random(2)
    base, cand = [100 + rng.random() for _ in range(10)], [85 + rng.random() for _ in range(10)]
    side = regression.Side(tmp_path, {}, {})
    judged = regression.judge("tiny/i2s", base, cand, 0.10, 0.002)
    report = regression.Report(side, side, 0.10, 0.002, compared=[judged])
    outcome = Outcome("a" * 40, head, ["b" * 40, head], head, [Probe(head, True, report, tmp_path / "x")], 3, 8)
    out = text(outcome, repo)
    assert f"first slower commit: {head} make the forward pass slower" in out
    assert re.search(r"tiny/i2s: 100\.\d+ -> 85\.\d+ tokens/s \(-1[45]\.\d%, p [\d.e-]+\): regression", out), out
    assert "took 3 build(s), 1 A/B session(s), 8 worker process(es)" in out
    outcome.first_slower = None
    assert "is slower than GOOD" in text(outcome, repo) and "no commit after aaaaaaaaaaaa" in text(outcome, repo)


# --- bisect: a real repository, real builds, real measurements ----------------------------------

SLOW_COMMIT = 7
# The deliberate slowdown: the forward pass waits, after its work, until it has taken 1/0.85 of
# the time the work took: 15% fewer tokens/s (waiting 15% longer would be 13% fewer).
SLOWDOWN = ("    int r = forward(m, ctx, tokens, n, logits);\n",
            "    int r = forward(m, ctx, tokens, n, logits);\n"
            "    { double spent = tb_now() - t0; while (tb_now() - t0 < spent / 0.85) { } }  /* 15% slower */\n")
# Larger than the tiny model of the other tests, whose 32 tokens take 15 ms: this host's
# neighbours move a 70 ms sample by up to a third, in bursts of seconds on one vCPU and not the
# other (measured: tokens/s samples of the two vCPUs at once correlate at -0.06), so a process's
# runs must span long enough to average over them, and the rounds are the sample.
def _bisect_model() -> str:
    from test_sweep_config import TINY_MODEL

    text = "\n" + TINY_MODEL
    for old, new in (("name: tiny", "name: bisect"), ("hidden: 256", "hidden: 1024"), ("ffn: 512", "ffn: 2816"),
                     ("layers: 2", "layers: 6"), ("heads: 4", "heads: 16"), ("kv_heads: 2", "kv_heads: 4"),
                     ("vocab: 1000", "vocab: 4000")):
        assert f"\n{old}\n" in text, f"the tiny model changed: {old}"
        text = text.replace(f"\n{old}\n", f"\n{new}\n")
    return text[1:]


BISECT_SWEEP = """\
models: [bisect.yaml]
formats: [i2s]
threads: [1]
workloads:
  generation: [64]
repetitions: 5
warmups: 1
processes: 12
max_processes: 30
baseline: null
energy: {idle_seconds: 0.3}
"""


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def small_repository(path: Path) -> list[str]:
    """A git repository of 12 commits holding this runtime's sources; every commit changes its C (so
    each is a build of its own), and commit 7 makes the forward pass 15% slower. (Built as the
    runtime is, at -O3: 12 s a build here; at -O0 the bandwidth probes around every process took
    most of its 20 s.)"""
    root = Path(__file__).resolve().parent.parent / "runtime"
    (path / "runtime" / "src").mkdir(parents=True)
    for f in [*root.glob("*.py"), *(root / "src").glob("*.[ch]")]:
        shutil.copy2(f, path / "runtime" / f.relative_to(root))
    git(path, "init", "-q", "-b", "main")
    commits = []
    for i in range(12):
        common = path / "runtime" / "src" / "common.c"
        common.write_text(common.read_text() + f"/* history test: commit {i} */\n")
        if i == SLOW_COMMIT:
            model = path / "runtime" / "src" / "model.c"
            text = model.read_text()
            assert SLOWDOWN[0] in text, "the forward pass changed: update SLOWDOWN"
            model.write_text(text.replace(SLOWDOWN[0], SLOWDOWN[1]))
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"commit {i}" + (": the forward pass 15% slower" if i == SLOW_COMMIT else ""))
        commits.append(git(path, "rev-parse", "HEAD"))
    return commits


def quiet_enough() -> str | None:
    """Why this machine cannot resolve a 15% step now, or None. On a 2-core machine shared with
    other jobs (load 8), two builds of the same code measured 34% apart in one interleaved
    session: the neighbours' load moves between one worker process and the next."""
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > cpus:
        return (f"the machine is busier than its CPUs (load average {load:.1f} on {cpus}): a 15% step is below "
                "the noise of other jobs; run it on a quiet machine (TERNBENCH_REQUIRE_BISECT=1 makes this a failure)")
    return None


@pytest.mark.slow
def test_bisect_finds_the_slow_commit_in_few_builds(tmp_path):
    from test_sweep_config import write

    # A timing test: the 15% step must stand out from the host's noise. It does on a shared
    # 2-vCPU machine with 12 rounds paired, but not beside other jobs busier than its CPUs.
    busy = quiet_enough()
    if busy:
        if os.environ.get("TERNBENCH_REQUIRE_BISECT") == "1":
            pytest.fail(busy, pytrace=False)
        pytest.skip(busy)

    commits = small_repository(tmp_path / "repo")
    cfg = write(tmp_path, BISECT_SWEEP)
    (tmp_path / "bisect.yaml").write_text(_bisect_model())
    env = {"TERNBENCH_CACHE_DIR": str(tmp_path / "cache"), "TERNBENCH_TUNING": "off"}
    # the threshold below the step hunted, as a user sets it: at the gate's 10%, a 15% step
    # measured with this host's noise (per-round ratios spread 8%) would fall inside it 1 time in 50
    proc = ternbench("history", "bisect", commits[0], commits[-1], str(cfg), "--repo", str(tmp_path / "repo"),
                     "--results", str(tmp_path / "bisect"), "--max-regression", "5%", "--json", env=env,
                     timeout=2400)
    data = json.loads(proc.stdout)
    if data["first_slower"] != commits[SLOW_COMMIT]:
        # every probe's figures, in full (an assertion's message would be cut short)
        pytest.fail(f"found {data['first_slower']}, not commit {SLOW_COMMIT} {commits[SLOW_COMMIT]}; commits "
                    f"{commits}\n{proc.stderr}", pytrace=False)
    assert data["builds"] <= math.ceil(math.log2(12)) + 1, data
    culprit = next(p for p in data["probes"] if p["commit"] == commits[SLOW_COMMIT])
    (point,) = culprit["points"]
    assert point["verdict"] == "regression" and -0.22 < point["change"] < -0.08, point
    # progress on stderr: every build and every probe's verdict
    assert proc.stderr.count("building the runtime of") == data["builds"]
    assert len(re.findall(r"not slower than GOOD|SLOWER than GOOD", proc.stderr)) == len(data["probes"])
    # every probe after the slow commit is slower, every one before it not
    for p in data["probes"]:
        assert p["slower"] == (commits.index(p["commit"]) >= SLOW_COMMIT), p
