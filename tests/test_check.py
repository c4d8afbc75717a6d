"""`ternbench check`, the CI regression gate, on results directories built by hand: the ratio
AND test rule, too few values, one-side-only and failed points, unusable input, the formats."""
import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from clirun import ternbench
from harness.gate import regression as check
from harness.cli.check import md, parse_percent
from harness.cli.common import UsageError
from harness.sweep.results import ResultsDir

KEY = "700M/i2s+int8/avx512vnni/t2/tg32"
MANIFEST = {"config": {"repetitions": 5, "warmups": 1, "processes": 2, "seed": 1234, "pin_threads": True,
                       "energy": {"mode": "off"}, "models": {"700M": "sha256:aaaa"}},
            "machine": {"cpu": "Test CPU 9000", "runtime_build": "gcc 13", "ternbench_commit": "abc123"}}


def samples(median=100.0, n=10, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    return [float(v) for v in median * (1 + noise * rng.standard_normal(n))]


def ok(key, values):
    model, fmt, variant, threads, test = key.split("/")
    return {"key": key, "status": "ok", "model": model, "format": fmt.split("+")[0],
            "head_format": fmt.split("+")[-1], "variant": variant, "threads": int(threads[1:]),
            "workload": test[:2], "tokens": int(test[2:]), "test": test, "samples_tokens_per_s": values,
            "tokens_per_s": {"n": len(values), "median": float(np.median(values)), "mean": float(np.mean(values))}}


def failed(key, reason):
    return {"key": key, "status": "failed", "reason": reason}


def results(path, records, manifest=None):
    """A results directory as `ternbench run` leaves it; records: dicts, or {key: samples}."""
    d = ResultsDir(path)
    d.create()
    if isinstance(records, dict):
        records = [ok(k, v) for k, v in records.items()]
    for r in records:
        d.append(r)
    d.write_json("manifest.json", manifest or MANIFEST)
    return str(path)


def pair(tmp_path, base, cand, base_manifest=None, cand_manifest=None):
    return (results(tmp_path / "base", base, base_manifest), results(tmp_path / "cand", cand, cand_manifest))


def compare(a, b, max_regression=0.05, alpha=0.05):
    return check.compare(check.load(a), check.load(b), max_regression, alpha)


def run_json(*args):
    proc = ternbench("check", *args, "--format", "json", check=False)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout else None, proc.stderr


# --- the rule ---------------------------------------------------------------------------------

def test_identical_data_passes(tmp_path):
    a, b = pair(tmp_path, {KEY: samples()}, {KEY: samples()})
    proc = ternbench("check", a, b, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "PASS" in proc.stdout and "unchanged" in proc.stdout


@pytest.mark.parametrize("fmt", ["md", "junit", "json"])
def test_ten_percent_slowdown_fails_in_every_format(tmp_path, fmt):
    a, b = pair(tmp_path, {KEY: samples(seed=1)}, {KEY: samples(90.0, seed=2)})
    proc = ternbench("check", a, b, "--format", fmt, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "regression" in proc.stdout and KEY in proc.stdout
    if fmt == "json":
        data = json.loads(proc.stdout)
        assert data["verdict"] == "fail" and data["exit_status"] == 1
        (point,) = data["points"]
        assert point["verdict"] == "regression" and point["p"] < 0.001 and point["change"] < -0.05
    if fmt == "md":
        assert proc.stdout.startswith("## ternbench check: FAIL")


def test_slowdown_within_a_larger_threshold_passes(tmp_path):
    a, b = pair(tmp_path, {KEY: samples(seed=1)}, {KEY: samples(90.0, seed=2)})
    status, data, _ = run_json(a, b, "--max-regression", "15%")
    assert status == 0
    assert data["points"][0]["verdict"] == "unchanged" and "within threshold" in data["points"][0]["why"]


def test_significant_slowdown_under_the_threshold_passes(tmp_path):
    a, b = pair(tmp_path, {KEY: samples(seed=1, noise=0.005)}, {KEY: samples(97.0, seed=2, noise=0.005)})
    (c,) = compare(a, b).compared
    assert c.p < 0.01 and c.change < -0.02                # significant, but only ~3%
    assert c.verdict == "unchanged" and c.why == "within threshold"
    assert ternbench("check", a, b, check=False).returncode == 0


def test_large_but_noisy_slowdown_is_not_significant(tmp_path):
    a, b = pair(tmp_path, {KEY: [100, 60, 140, 90, 110]}, {KEY: [85, 150, 55, 95, 120]})
    (c,) = compare(a, b).compared
    assert c.change < -0.05 and c.p >= 0.05
    assert c.verdict == "unchanged" and c.why == "not significant"


def test_improvement_is_reported(tmp_path):
    a, b = pair(tmp_path, {KEY: samples(seed=1)}, {KEY: samples(120.0, seed=2)})
    status, data, _ = run_json(a, b)
    assert status == 0
    assert data["points"][0]["verdict"] == "improvement" and data["summary"]["improvement"] == 1


def test_too_few_values_is_inconclusive_and_does_not_fail(tmp_path):
    # 3 vs 3: the exact two-sided test cannot go below p = 2/C(6,3) = 0.1
    a, b = pair(tmp_path, {KEY: [100.0, 101.0, 99.0], "m/f16/avx2/t1/tg8": [50.0, 50.5, 49.5]},
                {KEY: [60.0, 61.0, 59.0], "m/f16/avx2/t1/tg8": [50.2, 50.1, 49.8]})
    status, data, _ = run_json(a, b)
    assert status == 0 and data["verdict"] == "pass"
    slow, same = data["points"]
    assert slow["verdict"] == "inconclusive" and slow["min_p"] == pytest.approx(0.1)
    assert "cannot reach p < 0.002" in slow["why"]
    assert same["verdict"] == "unchanged" and "too few values" in same["why"]
    assert data["summary"]["inconclusive"] == 1 and data["summary"]["underpowered"] == 2
    out = ternbench("check", a, b, check=False).stdout
    assert "WARNING" in out and "Inconclusive" in out
    assert out.index("Inconclusive") < out.index("| point |")    # listed before the table


def measured_in_rounds(key, process_means, group_run="g1", per_process=4):
    """A record as a session of interleaved rounds leaves it: each process's values close to its mean."""
    values = [m * (1 + 0.002 * (i - 1.5)) for m in process_means for i in range(per_process)]
    return {**ok(key, values), "process_tokens_per_s": process_means, "group_run": group_run}


def test_builds_measured_in_shared_rounds_are_judged_round_by_round(tmp_path):
    # The host drifts from round to round by up to 30%; within a round the candidate is 15%
    # slower every time. Pooled per-run values overlap (Mann-Whitney cannot see it); the rounds can.
    drift = [100.0, 70.0, 125.0, 85.0, 110.0, 95.0]
    base = measured_in_rounds(KEY, drift)
    cand = measured_in_rounds(KEY, [d * 0.85 * (1 + 0.01 * (-1) ** i) for i, d in enumerate(drift)])
    a, b = pair(tmp_path, [base], [cand])
    (c,) = compare(a, b, max_regression=0.10, alpha=0.002).compared
    assert c.method == check.PAIRED_METHOD and c.baseline_n == c.candidate_n == 6 and c.unit == "rounds"
    assert c.verdict == "regression" and c.change == pytest.approx(-0.15, abs=0.005) and c.p < 1e-4
    assert "(6 rounds, paired)" in c.why
    # the same values from two separate sessions: nothing pairs them, and the pooled test finds nothing
    a, b = pair(tmp_path / "apart", [base], [{**cand, "group_run": "g2"}])
    (c,) = compare(a, b, max_regression=0.10, alpha=0.002).compared
    assert c.method.startswith("exact") and c.unit == "values" and c.verdict == "unchanged"
    out = ternbench("check", *pair(tmp_path / "cli", [base], [cand]), "--format", "junit", check=False).stdout
    assert f"{check.PAIRED_METHOD} on 6 vs 6 rounds" in out


def test_one_slowed_process_is_one_observation_not_four(tmp_path):
    # A neighbour slows one candidate process by 40%: its four values move together. Counted as
    # four independent values, that is significant; counted as the one round it is, it is not.
    base = measured_in_rounds(KEY, [100.0, 101.0, 99.0, 100.5, 99.5, 100.2])
    cand = measured_in_rounds(KEY, [60.0, 100.5, 99.2, 100.1, 99.8, 100.4])
    a, b = pair(tmp_path, [base], [cand])
    (c,) = compare(a, b, max_regression=0.05, alpha=0.05).compared
    assert c.verdict == "unchanged" and "not significant" in c.why and c.change < -0.05
    pooled = check.judge(KEY, base["samples_tokens_per_s"], cand["samples_tokens_per_s"], 0.0, 0.05)
    assert pooled.p < c.p


def test_fewer_than_three_rounds_fall_back_to_the_test_on_values(tmp_path):
    a, b = pair(tmp_path, [measured_in_rounds(KEY, [100.0, 90.0])], [measured_in_rounds(KEY, [80.0, 72.0])])
    (c,) = compare(a, b).compared
    assert c.method != check.PAIRED_METHOD and c.baseline_n == 8


def test_minimum_p_and_test_method():
    assert check.min_p(3, 3) == pytest.approx(0.1)
    assert check.min_p(4, 4) < 0.05 < check.min_p(3, 4)
    assert check.min_p(1, 1) == 1.0
    p, method = check.mann_whitney([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0])
    assert method == "exact" and p == pytest.approx(2 / 70)
    p, method = check.mann_whitney([1.0, 2.0, 2.0, 3.0], [3.0, 5.0, 6.0, 7.0])
    assert method == "exact permutation (ties)" and 0 < p < 1
    assert check.mann_whitney([5.0] * 12, [5.0] * 12)[0] == 1.0     # every value tied: no evidence


def test_later_record_supersedes_an_earlier_one(tmp_path):
    a = results(tmp_path / "base", [ok(KEY, samples(seed=1))])
    b = results(tmp_path / "cand", [failed(KEY, "crashed"), ok(KEY, samples(seed=2))])
    (c,) = compare(a, b).compared
    assert c.verdict == "unchanged"


# --- one side only, failed points ----------------------------------------------------------------

@pytest.mark.slow
def test_one_side_only_and_failed_points_are_listed(tmp_path):
    gone, new, broken = "m/i2s/avx2/t1/pp64", "m/tq1/avx2/t1/pp64", "m/f16/avx2/t4/tg16"
    a = results(tmp_path / "base", [ok(KEY, samples(seed=1)), ok(gone, samples()), ok(broken, samples())])
    b = results(tmp_path / "cand", [ok(KEY, samples(seed=2)), ok(new, samples()),
                                    failed(broken, "worker killed by SIGSEGV")])
    status, data, _ = run_json(a, b)
    # a candidate point that crashed or went missing fails the gate, listed first
    assert status == 1 and data["verdict"] == "fail" and data["summary"]["regression"] == 0
    assert data["broken"] == [{"key": broken, "why": "the candidate failed: worker killed by SIGSEGV"},
                              {"key": gone, "why": "missing from the candidate"}]
    assert [i["key"] for i in data["only_in_baseline"]] == [gone]
    assert [i["key"] for i in data["only_in_candidate"]] == [new]
    assert data["failed"] == [{"key": broken, "baseline": None, "candidate": "worker killed by SIGSEGV"}]
    out = ternbench("check", a, b, check=False).stdout
    assert "Only in the baseline" in out and "Only in the candidate" in out
    assert out.index("Broken in the candidate") < out.index("| point |") and "SIGSEGV" in out
    # a point only the baseline failed is listed, not a failure of the candidate
    c = results(tmp_path / "base2", [ok(KEY, samples(seed=1)), failed(broken, "baseline crashed")])
    d = results(tmp_path / "cand2", [ok(KEY, samples(seed=2)), ok(broken, samples())])
    status, data, _ = run_json(c, d)
    assert status == 0 and data["broken"] == []


# --- unusable input: exit 2 ------------------------------------------------------------------------

def one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ternbench check: error:"), proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_no_matching_points(tmp_path):
    a, b = pair(tmp_path, {KEY: samples()}, {"other/f16/avx2/t1/tg8": samples()})
    one_line_error(ternbench("check", a, b, check=False), "no point in common", KEY, "other/f16/avx2/t1/tg8")


def test_no_point_ok_in_both(tmp_path):
    a = results(tmp_path / "base", [failed(KEY, "out of memory")])
    b = results(tmp_path / "cand", [ok(KEY, samples())])
    one_line_error(ternbench("check", a, b, check=False), "no point is ok in both")


def test_a_crashed_candidate_fails_the_gate(tmp_path):
    a = results(tmp_path / "base", [ok(KEY, samples())])
    b = results(tmp_path / "cand", [failed(KEY, "a worker process was killed by SIGILL")])
    proc = ternbench("check", a, b, check=False)
    assert proc.returncode == 1 and "FAIL" in proc.stdout and "SIGILL" in proc.stdout


def test_different_model_identity(tmp_path):
    other = json.loads(json.dumps(MANIFEST))
    base = json.loads(json.dumps(MANIFEST))
    base["config"]["models"]["700M"] = "c:aaaa"
    other["config"]["models"]["700M"] = "c:bbbb"
    a, b = pair(tmp_path, {KEY: samples()}, {KEY: samples()}, base_manifest=base, cand_manifest=other)
    one_line_error(ternbench("check", a, b, check=False), "config.models.700M", "c:aaaa", "c:bbbb")


def test_different_seed(tmp_path):
    other = json.loads(json.dumps(MANIFEST))
    other["config"]["seed"] = 99
    a, b = pair(tmp_path, {KEY: samples()}, {KEY: samples()}, cand_manifest=other)
    one_line_error(ternbench("check", a, b, check=False), "config.seed", "1234", "99")


def test_other_differences_are_notes(tmp_path):
    other = json.loads(json.dumps(MANIFEST))
    other["config"]["repetitions"] = 10
    other["machine"]["cpu"] = "Other CPU"
    other["config"]["models"]["2B"] = "sha256:cccc"     # a model only one side has: fine
    a, b = pair(tmp_path, {KEY: samples()}, {KEY: samples()}, cand_manifest=other)
    status, data, _ = run_json(a, b)
    assert status == 0
    assert any("config.repetitions" in n for n in data["notes"])
    assert any("different CPUs" in n for n in data["notes"])


@pytest.mark.parametrize("damage,needle", [
    ("missing", "no such results directory"),
    ("no_points", "not a results directory"),
    ("corrupt_points", "line 1 is not a JSON record"),
    ("no_key", "without a point key"),
    ("no_samples", "no usable samples_tokens_per_s"),
    ("no_manifest", "no manifest.json"),
    ("corrupt_manifest", "manifest.json: not readable"),
    ("wrong_manifest", "not a ternbench manifest"),
    ("wrong_models", "not a ternbench manifest"),
])
def test_unusable_directory(tmp_path, damage, needle):
    a = results(tmp_path / "base", {KEY: samples()})
    b = tmp_path / "cand"
    if damage != "missing":
        results(b, {KEY: samples()})
    points, manifest = b / "points.jsonl", b / "manifest.json"
    if damage == "no_points":
        points.unlink()
    elif damage == "corrupt_points":
        points.write_text("{not json\n")
    elif damage == "no_key":
        points.write_text('{"status": "ok"}\n')
    elif damage == "no_samples":
        points.write_text(json.dumps({**ok(KEY, [1.0]), "samples_tokens_per_s": []}) + "\n")
    elif damage == "no_manifest":
        manifest.unlink()
    elif damage == "corrupt_manifest":
        manifest.write_text("{")
    elif damage == "wrong_manifest":
        manifest.write_text("[1, 2]")
    elif damage == "wrong_models":
        manifest.write_text(json.dumps({**MANIFEST, "config": {**MANIFEST["config"], "models": ["700M"]}}))
    one_line_error(ternbench("check", a, str(b), check=False), needle)


@pytest.mark.parametrize("value", ["-5%", "-1", "abc", "nan", "inf%", ""])
def test_bad_max_regression(tmp_path, value):
    a, b = pair(tmp_path, {KEY: samples()}, {KEY: samples()})
    one_line_error(ternbench("check", a, b, f"--max-regression={value}", check=False), "--max-regression")


@pytest.mark.parametrize("value", ["0", "1", "x", "-0.1"])
def test_bad_alpha(tmp_path, value):
    a, b = pair(tmp_path, {KEY: samples()}, {KEY: samples()})
    one_line_error(ternbench("check", a, b, f"--alpha={value}", check=False), "--alpha")


def test_percent_spellings():
    assert parse_percent("5%") == parse_percent("5") == parse_percent(" 5% ") == 0.05
    assert parse_percent("0.5") == 0.005      # a plain number is always percent
    assert parse_percent("0") == 0
    with pytest.raises(UsageError):
        parse_percent("5%%")


# --- formats ----------------------------------------------------------------------------------

def test_junit_has_a_failure_for_the_regression(tmp_path):
    slow = "m/f16/avx2/t1/tg8"
    a = results(tmp_path / "base", [ok(KEY, samples(seed=1)), ok(slow, samples(seed=3)),
                                    ok("m/x/avx2/t1/tg8", samples())])
    b = results(tmp_path / "cand", [ok(KEY, samples(seed=2)), ok(slow, samples(80.0, seed=4))])
    proc = ternbench("check", a, b, "--format", "junit", check=False)
    assert proc.returncode == 1
    suite = ET.fromstring(proc.stdout)
    # the regression, and the point missing from the candidate
    assert suite.tag == "testsuite" and suite.get("failures") == "2" and suite.get("tests") == "3"
    cases = {tc.get("name"): tc for tc in suite.iter("testcase")}
    assert set(cases) == {KEY, slow, "m/x/avx2/t1/tg8"}
    (failure,) = cases[slow].findall("failure")
    message = failure.get("message")
    assert "slower by 19.8%" in message and "99.66 -> 79.93 tokens/s" in message and "p 1.1e-05" in message
    assert cases[KEY].find("failure") is None
    assert "missing from the candidate" in cases["m/x/avx2/t1/tg8"].find("failure").get("message")


HOSTILE = '<script>&"|x'


def test_hostile_strings_are_escaped(tmp_path):
    key = f"{HOSTILE}/i2s/avx2/t1/tg8"
    reason = 'boom </failure> & "quotes" | pipe\x1b[31m\nsecond line'
    manifest = json.loads(json.dumps(MANIFEST))
    manifest["config"]["models"][HOSTILE] = "sha256:dddd"
    a = results(tmp_path / "base", [ok(key, samples(seed=1)), ok("m/f16/avx2/t1/tg8", samples())], manifest)
    b = results(tmp_path / "cand", [ok(key, samples(80.0, seed=2)), failed("m/f16/avx2/t1/tg8", reason)], manifest)

    xml = ternbench("check", a, b, "--format", "junit", check=False)
    assert xml.returncode == 1
    suite = ET.fromstring(xml.stdout)
    names = [tc.get("name") for tc in suite.iter("testcase")]
    assert key in names and "<script>" not in xml.stdout
    assert suite.find("testcase/failure") is not None

    out = ternbench("check", a, b, check=False).stdout
    assert "<script>" not in out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    unescaped = [len(re.findall(r"(?<!\\)\|", line)) for line in table]
    assert len(set(unescaped)) == 1, table          # every row has the header's cell count
    failed_line = next(line for line in out.splitlines() if "boom" in line)
    assert "second line" in failed_line            # the newline did not end the list item


def test_md_cell_escaping():
    assert md("a|b") == r"a\|b"
    assert md("<b>&") == "&lt;b&gt;&amp;"
    assert md("one\ntwo") == "one two"


def test_out_writes_the_report_and_a_verdict_line(tmp_path):
    a, b = pair(tmp_path, {KEY: samples(seed=1)}, {KEY: samples(90.0, seed=2)})
    report = tmp_path / "report.xml"
    proc = ternbench("check", a, b, "--format", "junit", "--out", str(report), check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("ternbench check: FAIL") and len(proc.stderr.strip().splitlines()) == 1
    assert ET.parse(report).getroot().get("failures") == "1"


def test_help_explains_the_rule_and_exit_status():
    out = ternbench("check", "--help").stdout
    assert "Mann-Whitney" in out and "exit status" in out and "inconclusive" in out


def test_a_zen4_and_a_zen5_of_one_name_are_told_apart(tmp_path):
    """Both call themselves "AMD EPYC": the family and model in the manifest say which is which."""
    base, cand = json.loads(json.dumps(MANIFEST)), json.loads(json.dumps(MANIFEST))
    base["machine"] = {"cpu": "AMD EPYC", "cpu_id": "AuthenticAMD family 25 model 17 stepping 1"}
    cand["machine"] = {"cpu": "AMD EPYC", "cpu_id": "AuthenticAMD family 26 model 2 stepping 0"}
    a, b = pair(tmp_path, {KEY: samples()}, {KEY: samples()}, base_manifest=base, cand_manifest=cand)
    status, data, _ = run_json(a, b)
    note = next(n for n in data["notes"] if "different CPUs" in n)
    assert "the same name, another CPU" in note and "family 25 model 17" in note and "family 26 model 2" in note


# --- same-session A/B ----------------------------------------------------------------------------

AB_SWEEP = """\
models: [tiny.yaml]
formats: [i2s, f16]
threads: [1]
workloads:
  generation: [8]
repetitions: 3
warmups: 1
processes: 2
energy: {idle_seconds: 0.3}
"""


@pytest.mark.slow
def test_ab_builds_the_revision_and_interleaves_both_builds(tmp_path):
    """Functional only: which build is faster on a shared machine is not asserted."""
    from harness.gate import ab
    from test_sweep_config import write

    cfg = write(tmp_path, AB_SWEEP)
    env = {"TERNBENCH_CACHE_DIR": str(tmp_path / "cache")}
    proc = ternbench("check", "--ab", "HEAD", str(cfg), "--results", str(tmp_path / "ab"), "--format", "json",
                     check=False, env=env)
    assert proc.returncode in (0, 1), proc.stderr
    data = json.loads(proc.stdout)
    assert data["summary"]["compared"] == 2 and data["broken"] == []
    space = next((tmp_path / "cache" / "ab").iterdir())
    base_build = ab.build_info(space)
    for side, build in (("baseline", base_build), ("candidate", None)):
        records = [json.loads(x) for x in (tmp_path / "ab" / side / "points.jsonl").read_text().splitlines()]
        assert len(records) == 2 and all(r["status"] == "ok" for r in records)
        if build:
            assert {r["runtime_build"] for r in records} == {build}
    # every round runs one process of each of the 4 jobs (2 formats x 2 builds) before the next
    starts = sorted((json.loads(x)["started"], f.parent.parent.name + f.name)
                    for f in (tmp_path / "ab").glob("*/raw/*.jsonl") for x in f.read_text().splitlines()
                    if '"process"' in x)
    assert len(starts) == 8
    assert len({job for _, job in starts[:4]}) == 4 and len({job for _, job in starts[4:]}) == 4


@pytest.mark.parametrize("args, words", [
    (["--ab", "HEAD", "a", "b"], "--ab takes one sweep configuration"),
    (["--ab", "no-such-revision-xyz", "configs/ci-smoke.yaml"], "not a commit of the checkout"),
    (["a", "b", "--results", "x"], "--results goes with --ab"),
    (["only-one"], "give BASELINE and CANDIDATE"),
])
def test_ab_bad_input(args, words):
    one_line_error(ternbench("check", *args, check=False), words)
