"""Real sweeps on a tiny model: results round-trip, pyperf reads its own JSON, a crashing point
does not stop the sweep, a killed sweep resumes with nothing lost or repeated, and the harness's
timing agrees with the runtime's."""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import psutil
import pyperf
import pytest

import runtime
from clirun import another_cpu_id, ternbench
from harness.sweep.results import ResultsDir
from test_sweep_config import write

SWEEP = """\
models: [tiny.yaml]
formats: [i2s, f16]
threads: [1]
workloads:
  prompt: [16]
  generation: [8]
repetitions: 3
warmups: 1
processes: 2
energy: {idle_seconds: 0.3}
"""


def config(tmp_path, text=SWEEP, name="sweep.yaml"):
    return write(tmp_path, text, name)


def run_json(*args, check=True, env=None):
    r = ternbench("run", *args, "--json", check=False, env=env)
    if check and r.returncode != 0:
        out = args[args.index("--out") + 1] if "--out" in args else None
        failed = [f for f in ResultsDir(out).records() if f["status"] == "failed"] if out else []
        raise AssertionError(f"exit {r.returncode}\n{r.stdout}\n{r.stderr}\nfailed points:\n"
                             + "\n".join(f"{f['key']}: {f['reason']}\n{f['log_tail']}" for f in failed))
    return r.returncode, json.loads(r.stdout) if r.stdout.strip() else None, r.stderr


@pytest.mark.slow
def test_results_round_trip_and_pyperf_reads_them(tmp_path):
    cfg, out = config(tmp_path), tmp_path / "res"
    code, summary, _ = run_json(str(cfg), "--out", str(out))
    assert code == 0 and len(summary["ok"]) == 4 and not summary["failed"]
    res = ResultsDir(out)
    records = res.records()
    assert [r["key"] for r in records] == summary["ok"]
    assert (out / "config.yaml").read_text() == cfg.read_text()
    fingerprint = json.loads((out / "sysinfo.json").read_text())
    assert fingerprint["cpu"]["model_name"] and fingerprint["runtime"]["build"]
    # the tables hold the same figures as the JSON lines
    for table in (pd.read_csv(out / "points.csv"), pd.read_parquet(out / "points.parquet")):
        assert list(table.key) == [r["key"] for r in records]
        assert list(table.tps_median) == pytest.approx([r["tokens_per_s"]["median"] for r in records])
        assert list(table.n) == [6] * 4
    table = pd.read_csv(out / "points.csv").set_index("key")
    for r in records:
        # figures derive from pyperf's own values: seconds per token
        bench = pyperf.Benchmark.load(str(out / r["pyperf"]))
        assert bench.get_nrun() == 2 and len(bench.get_values()) == 6
        assert r["samples_tokens_per_s"] == pytest.approx([1 / v for v in bench.get_values()])
        lo, hi = r["tokens_per_s"]["ci95_low"], r["tokens_per_s"]["ci95_high"]
        assert 0 < lo < r["tokens_per_s"]["gmean"] < hi
        assert r["processes"] == 2 and r["warmups"] == 1 and r["variant"] == runtime.best_variant()
        if r["format"] == "f16":
            assert table.loc[r["key"], "speedup"] == pytest.approx(1.0)
        else:
            base = r["key"].replace("i2s+int8", "f16+f16")
            # the ratio of geometric means over processes, paired round by round
            assert table.loc[r["key"], "speedup"] == pytest.approx(
                table.loc[r["key"], "tps_gmean"] / table.loc[base, "tps_gmean"])
            assert table.loc[r["key"], "speedup_method"] == "paired"
    # energy: the backend auto chose, idle power, and per point J/token with its provenance
    chosen = json.loads((out / "energy.json").read_text())
    assert set(chosen["not_used"]) == {"powercap", "perf", "pyrapl", "model"} - {chosen["backend"]}
    assert chosen["idle"]["seconds"] >= 0.3 and chosen["idle"]["watts"] > 0
    for r in records:
        e = r["energy"]
        assert e["measured"] == chosen["measured"]
        assert e["provenance"].startswith("measured: " if chosen["measured"] else "estimated: ")
        assert e["j_per_token"] > 0 and e["tokens_per_j"] == pytest.approx(1 / e["j_per_token"])
        assert e["j_per_token_above_idle"] < e["j_per_token"]
        assert table.loc[r["key"], "energy_provenance"] == e["provenance"]
    i2s = [r for r in records if r["format"] == "i2s" and r["test"] == "tg8"][0]
    f16 = [r for r in records if r["format"] == "f16" and r["test"] == "tg8"][0]
    # paired like the speed-up: 1 - the geometric mean of the per-round ratios of each process's J/token
    from harness.measure import stats
    assert table.loc[i2s["key"], "energy_reduction"] == pytest.approx(
        1 - stats.paired_ratio(i2s["process_j_per_token"], f16["process_j_per_token"]).value)
    # pyperf names a benchmark by its point key, so the same point of two sweeps compares
    first = out / records[0]["pyperf"]
    again = tmp_path / "again.json"
    again.write_bytes(first.read_bytes())
    for argv in (["stats", str(first)], ["compare_to", str(first), str(again)]):
        p = subprocess.run([sys.executable, "-m", "pyperf", *argv], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert records[0]["key"] in p.stdout or "Mean" in p.stdout, p.stdout
    # the same sweep again into the same directory is refused without --resume
    r = ternbench("run", str(cfg), "--out", str(out), check=False)
    assert r.returncode == 2 and "--resume" in r.stderr
    # --resume with the same config has nothing left to do
    code, summary, _ = run_json(str(cfg), "--out", str(out), "--resume")
    assert code == 0 and not summary["ok"] and len(summary["already_finished"]) == 4
    # a changed measurement setting makes old and new points incomparable: refused, naming the key
    changed = config(tmp_path, SWEEP.replace("repetitions: 3", "repetitions: 4"), "changed.yaml")
    r = ternbench("run", str(changed), "--out", str(out), "--resume", check=False)
    assert r.returncode == 2 and "'config.repetitions' changed from 3 to 4" in r.stderr
    # adding a workload only adds points
    more = config(tmp_path, SWEEP.replace("generation: [8]", "generation: [8, 4]").replace(
        "formats: [i2s, f16]", "formats: [f16]"), "more.yaml")
    code, summary, _ = run_json(str(more), "--out", str(out), "--resume")
    assert code == 0 and len(summary["ok"]) == 1 and summary["ok"][0].endswith("/tg4")
    assert len(ResultsDir(out).records()) == 5


@pytest.mark.slow
def test_crashing_point_is_recorded_and_the_sweep_goes_on(tmp_path):
    cfg, out = config(tmp_path), tmp_path / "res"
    env = {"TERNBENCH_FAULT_INJECT": "i2s+int8/" + runtime.best_variant() + "/t1/pp16:SIGILL"}
    code, summary, _ = run_json(str(cfg), "--out", str(out), check=False, env=env)
    assert code == 1
    assert len(summary["failed"]) == 1 and len(summary["ok"]) == 3
    failed = [r for r in ResultsDir(out).records() if r["status"] == "failed"]
    assert failed[0]["reason"] == "a worker process was killed by SIGILL"
    assert "exit code -4" in failed[0]["log_tail"]
    table = pd.read_csv(out / "points.csv")
    assert sorted(table.status) == ["failed", "ok", "ok", "ok"]
    # --resume retries the failed point, and its new record supersedes the old
    code, summary, _ = run_json(str(cfg), "--out", str(out), "--resume")
    assert summary["ok"] == [failed[0]["key"]]
    latest = ResultsDir(out).latest()
    assert len(latest) == 4 and all(r["status"] == "ok" for r in latest.values())


@pytest.mark.slow
def test_kill_9_mid_sweep_then_resume_loses_and_repeats_nothing(tmp_path):
    cfg = config(tmp_path, SWEEP.replace("threads: [1]", "threads: 1..max").replace(
        "generation: [8]", "generation: [8, 12]"))
    out = tmp_path / "res"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(runtime.__file__)))
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(cfg), "--out", str(out), "-q"],
                            env=env, cwd=env["PYTHONPATH"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    points = out / "points.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if points.exists() and points.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"workers outlived the killed sweep: {alive}"
    before = ResultsDir(out).records()
    assert len(before) >= 2
    total = len(json.loads((out / "plan.json").read_text())["points"])
    assert len(before) < total
    code, summary, _ = run_json(str(cfg), "--out", str(out), "--resume")
    assert code == 0
    after = ResultsDir(out).records()
    keys = [r["key"] for r in after]
    assert len(keys) == len(set(keys)) == total            # no duplicate, none missing
    assert after[: len(before)] == before                    # finished points untouched
    assert len(summary["already_finished"]) == len(before)
    assert len(pd.read_parquet(out / "points.parquet")) == total


def test_torn_last_line_is_ignored_and_repaired(tmp_path):
    res = ResultsDir(tmp_path)
    res.create()
    res.append({"key": "a", "status": "ok"})
    res.append({"key": "b", "status": "ok"})
    with open(tmp_path / "points.jsonl", "a") as f:
        f.write('{"key": "c", "sta')       # what kill -9 in the middle of a write leaves
    assert [r["key"] for r in res.records()] == ["a", "b"]
    res.repair()
    res.append({"key": "c", "status": "ok"})
    assert [r["key"] for r in res.records()] == ["a", "b", "c"]
    (tmp_path / "points.jsonl").write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(Exception, match="line 2 is not a JSON record"):
        res.records()


@pytest.mark.slow
def test_harness_timing_agrees_with_the_runtime(tmp_path):
    """The same runs, timed by pyperf's time function and by the runtime in C: within 2%
    (per token, Python adds a few microseconds to several milliseconds of work)."""
    cfg = config(tmp_path, SWEEP.replace("[tiny.yaml]", "[700M]").replace("[i2s, f16]", "[i2s]")
                 .replace("prompt: [16]\n", "").replace("generation: [8]", "generation: [16]")
                 .replace("processes: 2", "processes: 1") + "baseline: null\n")
    out = tmp_path / "res"
    run_json(str(cfg), "--out", str(out))
    (rec,) = ResultsDir(out).records()
    assert rec["timing_vs_runtime"] == pytest.approx(1.0, abs=0.02)
    assert rec["runtime_tokens_per_s"] > 0 and rec["bytes_per_token"] > 0
    assert 0 < rec["bandwidth_fraction"] and rec["achieved_gbps"] > 0


@pytest.mark.slow
def test_time_budget_leaves_points_for_resume_and_pinning_is_recorded(tmp_path):
    cfg = config(tmp_path, SWEEP + "time_budget: 1s\n")
    out = tmp_path / "res"
    code, summary, _ = run_json(str(cfg), "--out", str(out))
    assert code == 0 and not summary["ok"] and len(summary["not_run_over_budget"]) == 4
    plan = json.loads((out / "plan.json").read_text())
    assert all("time budget" in s["reason"] for s in plan["skipped"])
    pinned = config(tmp_path, SWEEP.replace("formats: [i2s, f16]", "formats: [f16]")
                    .replace("generation: [8]", "generation: []") + "pin_threads: true\n", "pinned.yaml")
    code, summary, _ = run_json(str(pinned), "--out", str(tmp_path / "pinned"))
    (rec,) = ResultsDir(tmp_path / "pinned").records()
    assert rec["pinned"] is True and rec["affinity"] == sorted(os.sched_getaffinity(0))[:1]


def test_cli_argument_errors_exit_2(tmp_path):
    cfg = config(tmp_path)
    r = ternbench("run", str(cfg), "--resume", check=False)
    assert r.returncode == 2 and "--resume needs --out" in r.stderr
    r = ternbench("run", str(cfg), "--out", str(tmp_path / "nowhere"), "--resume", check=False)
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = ternbench("run", str(tmp_path / "absent.yaml"), check=False)
    assert r.returncode == 2 and "cannot read the sweep configuration" in r.stderr
    everything_out = config(tmp_path, SWEEP + "exclude: [{model: tiny}]\n", "none.yaml")
    r = ternbench("run", str(everything_out), "--dry-run", check=False)
    assert r.returncode == 2 and "every point is excluded" in r.stderr


def test_measured_and_estimated_energy_never_share_a_ratio():
    from harness.sweep.tables import points_frame

    def rec(fmt, head, j, provenance):
        return {"key": f"m/{fmt}+{head}/v/t1/tg8", "status": "ok", "model": "m", "format": fmt, "head_format": head,
                "variant": "v", "threads": 1, "workload": "tg", "tokens": 8, "test": "tg8",
                "tokens_per_s": {"n": 3, "mean": 10.0, "median": 10.0, "stdev": 0.1, "ci95_low": 9.0,
                                 "ci95_high": 11.0},
                "seconds_per_token": {"mean": 0.1, "median": 0.1}, "runtime_tokens_per_s": 10.0,
                "energy": {"measured": provenance.startswith("measured"), "provenance": provenance,
                           "j_per_token": j, "j_per_token_above_idle": j / 2, "tokens_per_j": 1 / j, "watts": 5.0}}

    est, meas = "estimated: cpu-time model, 6 W per busy core + 27 W idle", "measured: powercap package-0"
    frame = points_frame([rec("f16", "f16", 2.0, meas), rec("i2s", "int8", 1.0, est)], "f16").set_index("format")
    assert pd.isna(frame.loc["i2s", "energy_reduction"]) and frame.loc["i2s", "speedup"] == 1.0
    frame = points_frame([rec("f16", "f16", 2.0, est), rec("i2s", "int8", 0.5, est)], "f16").set_index("format")
    assert frame.loc["i2s", "energy_reduction"] == pytest.approx(0.75)
    assert frame.loc["i2s", "energy_reduction_above_idle"] == pytest.approx(0.75)


def test_a_named_energy_backend_that_cannot_work_stops_before_any_point(tmp_path):
    from harness.energy import EnergySettings, backend_status

    if next(b for b in backend_status(EnergySettings()) if b.name == "powercap").usable:
        pytest.skip("this machine has readable RAPL")
    cfg = config(tmp_path, SWEEP.replace("energy: {idle_seconds: 0.3}", "energy: powercap"))
    r = ternbench("run", str(cfg), "--out", str(tmp_path / "res"), check=False)
    assert r.returncode == 2 and "energy backend 'powercap' cannot be used here" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "res" / "points.jsonl").exists()


@pytest.mark.slow
def test_a_checkpoint_directory_is_a_model(tmp_path):
    from test_checkpoint import make_checkpoint
    from test_model import SHAPES

    make_checkpoint(tmp_path / "ckpt", SHAPES["bitnet-gqa"], scale_dtype="f32")
    cfg = config(tmp_path, SWEEP.replace("[tiny.yaml]", "[ckpt]").replace("prompt: [16]\n", "")
                 .replace("processes: 2", "processes: 1"))
    code, summary, _ = run_json(str(cfg), "--out", str(tmp_path / "res"))
    assert code == 0 and [k.split("/")[0] for k in summary["ok"]] == ["ckpt", "ckpt"]
    manifest = json.loads((tmp_path / "res" / "manifest.json").read_text())
    assert set(manifest["config"]["models"]) == {"ckpt"}
    # a copy or a touch of the same files is the same model (its identity is its content) ...
    (tmp_path / "ckpt" / "model.safetensors").write_bytes((tmp_path / "ckpt" / "model.safetensors").read_bytes())
    os.utime(tmp_path / "ckpt" / "model.safetensors", ns=(1, 1))
    code, summary, _ = run_json(str(cfg), "--out", str(tmp_path / "res"), "--resume")
    assert code == 0 and len(summary["already_finished"]) == 2
    # ... and a checkpoint converted again, with other tensors, is another model
    make_checkpoint(tmp_path / "ckpt", SHAPES["bitnet-gqa"], scale_dtype="f16")
    r = ternbench("run", str(cfg), "--out", str(tmp_path / "res"), "--resume", check=False)
    assert r.returncode == 2 and "'config.models.ckpt' changed" in r.stderr


@pytest.mark.slow
def test_resume_refuses_another_cpu_of_the_same_name(tmp_path):
    """--resume compares the CPU by its ids, not its marketing name."""
    cfg = config(tmp_path, SWEEP.replace("prompt: [16]\n", "").replace("processes: 2", "processes: 1"))
    code, _, _ = run_json(str(cfg), "--out", str(tmp_path / "res"))
    assert code == 0
    manifest = json.loads((tmp_path / "res" / "manifest.json").read_text())
    assert manifest["machine"]["cpu_id"]
    other = manifest["machine"]["cpu_id"] = another_cpu_id(manifest["machine"]["cpu_id"])
    (tmp_path / "res" / "manifest.json").write_text(json.dumps(manifest))
    r = ternbench("run", str(cfg), "--out", str(tmp_path / "res"), "--resume", check=False)
    assert r.returncode == 2 and f"'machine.cpu_id' changed from '{other}'" in r.stderr, r.stderr
    # a manifest from before cpu_id was recorded still resumes
    del manifest["machine"]["cpu_id"]
    (tmp_path / "res" / "manifest.json").write_text(json.dumps(manifest))
    code, summary, _ = run_json(str(cfg), "--out", str(tmp_path / "res"), "--resume")
    assert code == 0 and summary["already_finished"]


@pytest.mark.slow
def test_compared_points_run_interleaved_in_rounds(tmp_path):
    """The formats of one model, threads and test run round by round (one process of each per
    round, shuffled), so the machine's drift lands on all of them alike."""
    cfg = config(tmp_path, SWEEP.replace("prompt: [16]\n", "").replace("processes: 2", "processes: 3"))
    code, summary, _ = run_json(str(cfg), "--out", str(tmp_path / "res"))
    assert code == 0 and len(summary["ok"]) == 2
    starts = []
    for f in (tmp_path / "res" / "raw").glob("*.jsonl"):
        fmt = "i2s" if "i2s" in f.name else "f16"
        starts += [(json.loads(x)["started"], fmt) for x in f.read_text().splitlines() if '"process"' in x]
    order = [fmt for _, fmt in sorted(starts)]
    assert len(order) == 6
    for rnd in range(3):   # each round runs one process of each format before the next round starts
        assert sorted(order[2 * rnd: 2 * rnd + 2]) == ["f16", "i2s"], order
    records = [json.loads(x) for x in (tmp_path / "res" / "points.jsonl").read_text().splitlines()]
    assert all(r["processes"] == 3 and r["values"] == 9 for r in records)


@pytest.mark.slow
def test_a_comparison_gets_extra_rounds_while_it_asks_for_them(tmp_path):
    """run_group measures `processes` rounds, then one more each time the rule asks (up to the
    bound): every point of the group gets the round, the records say how many were planned and
    name one group run, so their rounds pair."""
    from harness.measure import execute
    from harness.measure.point import Files, Point, Settings, Source
    from harness.models.presets import find_model

    write(tmp_path, SWEEP)
    spec = find_model(tmp_path / "tiny.yaml")
    source = Source("preset", str(tmp_path / "tiny.yaml"), spec)
    points = [Point("tiny", f, "int8" if f == "i2s" else "f16", runtime.best_variant(), 1, "tg", 4) for f in ("i2s", "f16")]
    asked = []

    def more(interim):
        asked.append([len(i.process_tps) for i in interim])
        return len(asked) < 3           # two extra rounds, then enough

    jobs = [execute.Job(p, source, Settings(repetitions=2, warmups=0, processes=2), Files.under(tmp_path / "r", p))
            for p in points]
    records = execute.run_group(jobs, more=more, max_rounds=5)
    assert asked == [[2, 2], [3, 3], [4, 4]]
    for r in records:
        assert r["status"] == "ok" and r["processes"] == 4 and r["rounds_planned"] == 2
        assert len(r["process_tokens_per_s"]) == 4
    assert records[0]["group_run"] == records[1]["group_run"]
    # the bound holds whatever the rule says
    jobs = [execute.Job(p, source, Settings(repetitions=1, warmups=0, processes=1), Files.under(tmp_path / "s", p))
            for p in points]
    assert [r["processes"] for r in execute.run_group(jobs, more=lambda i: True, max_rounds=2)] == [2, 2]


def test_the_extra_round_rule_asks_for_unstable_points_and_wide_speed_ups():
    from harness.measure.execute import Interim
    from harness.measure.point import Point
    from harness.sweep.runner import why_another_ab_round, why_more_rounds

    def interim(fmt, tps, unstable=()):
        p = Point("tiny", fmt, "int8" if fmt == "i2s" else "f16", "avx2", 1, "tg", 4)
        return Interim(p, tps, {"unstable": list(unstable)})

    steady = [interim("i2s", [50.0, 51.0, 50.5]), interim("f16", [10.0, 10.2, 10.1])]
    assert why_more_rounds(steady, "f16") is None
    noisy = [interim("i2s", [50.0, 51.0, 50.5], ["the hypervisor stole 17% of the CPU time (limit 10%)"]),
             interim("f16", [10.0, 10.2, 10.1])]
    assert "i2s+int8 unstable (the hypervisor stole 17%" in why_more_rounds(noisy, "f16")
    wide = [interim("i2s", [50.0, 30.0, 50.5]), interim("f16", [10.0, 10.2, 10.1])]
    assert why_more_rounds(wide, "f16").startswith("i2s+int8 speed-up ")
    two = [interim("i2s", [50.0, 51.0]), interim("f16", [10.0, 10.2])]
    assert "n too small for an interval (2 rounds" in why_more_rounds(two, "f16")
    assert why_more_rounds(two, None) is None      # no baseline, no speed-up to narrow
    # an A/B check: one point under two builds, no baseline; more rounds while the gate's verdict is open
    from functools import partial
    from harness.gate.regression import undecided
    rule = partial(undecided, max_regression=0.10, alpha=0.002)
    ab_open = [interim("i2s", [50.0, 40.0, 50.0]), interim("i2s", [40.0, 40.0, 42.0])]     # -12%, p 0.19
    assert why_another_ab_round(ab_open, rule).startswith("i2s+int8 candidate against baseline build -12.")
    assert "beyond 10% but p 0.19 >= 0.002" in why_another_ab_round(ab_open, rule)
    # a noisy pair whose verdict is settled takes no extra round: the pairing cancels the noise
    noisy_ab = [interim("i2s", [50.0, 40.0, 50.0], ["spread 25%"]), interim("i2s", [49.0, 40.0, 50.5], ["spread 26%"])]
    assert why_another_ab_round(noisy_ab, rule) is None and "unstable" in why_more_rounds(noisy_ab, None)
    slower = [interim("i2s", [50.0, 40.0, 50.0]), interim("i2s", [40.0, 32.0, 40.1])]      # -20%, p < 0.002
    within = [interim("i2s", [50.0, 40.0, 50.0]), interim("i2s", [45.0, 44.0, 45.5])]      # -3.8%: within 10%
    assert why_another_ab_round(slower, rule) is None and why_another_ab_round(within, rule) is None
    assert "2 round(s); the paired test needs 3" in why_another_ab_round(
        [interim("i2s", [50.0, 40.0]), interim("i2s", [40.0, 32.0])], rule)


def test_an_extra_round_is_taken_when_it_costs_no_group_that_would_run():
    """The budget rule of extra rounds: a round is taken when every later group that the budget
    would hold still fits after it; groups the budget cannot hold either way do not block it."""
    import time
    from types import SimpleNamespace

    from harness.measure.execute import Interim
    from harness.measure.point import Point
    from harness.sweep import runner

    def interim(fmt, tps):
        return Interim(Point("tiny", fmt, "int8" if fmt == "i2s" else "f16", "avx2", 1, "tg", 4), tps, {})

    wide = [interim("i2s", [50.0, 30.0, 50.5]), interim("f16", [10.0, 10.2, 10.1])]   # asks for a round
    costs = {"g": 30.0, "i2s": 15.0, "f16": 15.0, "big": 500.0}                        # seconds
    plan = SimpleNamespace(estimate=lambda p, config: costs[p.model if p.model in costs else p.format])
    config = SimpleNamespace(time_budget_s=100.0, processes=3, baseline="f16")
    notes = []
    progress = SimpleNamespace(scale=lambda: 1.0, note=notes.append)
    group, big = [Point("g", "i2s", "int8", "avx2", 1, "tg", 4)], [Point("big", "i2s", "int8", "avx2", 1, "tg", 4)]

    def asks(rest, elapsed):
        return runner._more_rounds(config, progress, time.monotonic() - elapsed, rest, plan, 1)(wide)

    # 100 s budget, 50 s spent, a round costs 10 s: a 30 s group after it still fits, so yes
    assert asks([group], 50.0) and notes[-1].startswith("one more round: i2s+int8 speed-up")
    # 65 s spent: the round would push that group out
    assert not asks([group], 65.0) and "would not hold it and the groups after it" in notes[-1]
    # a group that cannot run either way (500 s) does not block the round
    assert asks([group, big], 50.0) and asks([big], 50.0)
    assert runner._fitting([30.0, 500.0, 1.0], 100.0) == 1
