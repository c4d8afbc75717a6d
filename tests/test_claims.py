"""Published claims judged against results: every verdict on hand-built results directories,
the shipped claims file, and bad claims files naming file, line and key."""
import json
import textwrap
from pathlib import Path

import pytest

from harness import claims
from harness.claims import ClaimsError, evaluate, load_claims
from harness.sweep.results import Results, ResultsDir

SHIPPED = Path(__file__).resolve().parent.parent / "configs" / "claims" / "bitnet-cpp.yaml"
REAL_RUN = Path("/tmp/default-run1")
I7 = "13th Gen Intel(R) Core(TM) i7-13700H"


def rec(model, fmt, threads, tps, test="tg128", joules=None, measured=True, head=None, status="ok"):
    """An ok (or failed) point record with the fields the results table reads."""
    workload, tokens = test[:2], int(test[2:])
    head = head or ("f16" if fmt == "f16" else "int8")
    r = {"key": f"{model}/{fmt}+{head}/avx2/t{threads}/{test}", "model": model, "format": fmt, "head_format": head,
         "variant": "avx2", "threads": threads, "workload": workload, "tokens": tokens, "test": test,
         "status": status}
    if status != "ok":
        return {**r, "reason": "a worker process was killed by SIGKILL"}
    energy = None
    if joules is not None:
        prov = "measured: powercap package-0" if measured else "estimated: cpu-time model, 6 W per busy core"
        energy = {"measured": measured, "provenance": prov, "j_per_token": joules, "j_per_token_above_idle": None,
                  "tokens_per_j": 1 / joules, "watts": joules * tps}
    return {**r, "tokens_per_s": {"n": 5, "mean": tps, "median": tps, "stdev": 0.0, "ci95_low": tps,
                                  "ci95_high": tps},
            "seconds_per_token": {"mean": 1 / tps, "median": 1 / tps}, "runtime_tokens_per_s": tps,
            "energy": energy}


def pair(model, threads, f16_tps, speedup, test="tg128", **kw):
    """An f16 baseline point and an i2s point `speedup` times faster."""
    f16_j = kw.pop("f16_joules", None)
    i2s_j = kw.pop("i2s_joules", None)
    return [rec(model, "f16", threads, f16_tps, test, f16_j, **kw),
            rec(model, "i2s", threads, f16_tps * speedup, test, i2s_j, **kw)]


def make(tmp_path, records, name="run", cpu=I7, machine="x86_64", cpus=20, vm=False, baseline="f16",
         skipped=()):
    d = ResultsDir(tmp_path / name)
    d.create()
    for r in records:
        d.append(r)
    d.write_json("sysinfo.json", {
        "cpu": {"model_name": cpu, "arch": "arm" if machine == "aarch64" else "x86", "logical_cpus": cpus,
                "usable_cpus": cpus},
        "os": {"machine": machine},
        "virtualisation": {"virtualised": vm, "hypervisor": "KVM" if vm else None}})
    d.write_json("plan.json", {"config": name, "baseline": baseline, "points": [], "skipped": list(skipped)})
    d.write_json("energy.json", {"backend": "powercap", "measured": True, "provenance": "measured: powercap"})
    d.write_json("manifest.json", {"config": {}, "machine": {"cpu": cpu}})
    return Results(d.path)


@pytest.fixture(scope="module")
def shipped():
    return {c.id: c for c in load_claims(SHIPPED)}


def judge(claim, results, lossless=None):
    return evaluate([claim], results if isinstance(results, list) else [results], lossless)[0]


# --- the shipped file --------------------------------------------------------------------------------

def test_shipped_claims_load(shipped):
    assert set(shipped) == {"x86-speedup", "x86-energy", "arm-speedup", "arm-energy", "x86-speedup-2-threads",
                            "arm-speedup-2-threads", "100b-one-cpu", "kernel-update", "lossless"}
    x86 = shipped["x86-speedup"]
    assert (x86.lo, x86.hi, x86.arch, x86.threads, x86.workload, x86.tokens) == (2.37, 6.17, "x86_64", "all", "tg", 128)
    assert x86.baseline == "f16" and x86.formats == ("i2s",)
    assert "2B4T" in x86.models and "2.5B" not in x86.models     # the alias names the label results use
    assert shipped["x86-energy"].energy == "measured" and shipped["x86-speedup-2-threads"].threads == 2
    assert shipped["arm-speedup"].arch == "aarch64"
    assert {c.metric for c in shipped.values()} == set(claims.METRICS)
    assert claims.range_text(shipped["x86-energy"]) == "71.9%-82.2%"
    assert claims.range_text(shipped["100b-one-cpu"]) == "5-7 tokens/s"
    assert claims.range_text(shipped["lossless"]) == "100%"


def test_verdict_dict_has_exactly_the_documented_keys(tmp_path, shipped):
    v = judge(shipped["x86-speedup"], make(tmp_path, pair("700M", 20, 30.0, 4.0)))
    assert list(v.to_dict()) == ["id", "title", "source", "statement", "verdict", "measured", "range",
                                 "differences", "why"]
    json.dumps(v.to_dict())


# --- range verdicts ----------------------------------------------------------------------------------

def test_all_points_in_range_is_reproduced(tmp_path, shipped):
    r = make(tmp_path, pair("125M", 20, 164.0, 2.5) + pair("700M", 20, 30.0, 3.9) + pair("13B", 20, 1.8, 6.0))
    v = judge(shipped["x86-speedup"], r)
    assert v.verdict == "reproduced", v.why
    assert v.measured == "2.50x-6.00x over 3 points (125M, 700M, 13B; tg128, 20 threads)"
    assert v.range == "2.37x-6.17x" and "within the published range" in v.why
    assert not any(d.startswith("CPU") or "virtual machine" in d or "tg128" in d for d in v.differences)
    assert any("350M, 1B, 1.5B, 2B4T, 3.8B, 7B (not in these results)" in d for d in v.differences)


def test_above_the_range_is_reproduced_and_says_so(tmp_path, shipped):
    v = judge(shipped["x86-speedup"], make(tmp_path, pair("125M", 20, 100.0, 3.0) + pair("700M", 20, 20.0, 6.8)))
    assert v.verdict == "reproduced"
    assert "above the range" in v.why and "700M" in v.why and "6.80x" in v.why


def test_some_points_below_is_partly(tmp_path, shipped):
    v = judge(shipped["x86-speedup"], make(tmp_path, pair("125M", 20, 100.0, 1.5) + pair("700M", 20, 20.0, 4.0)))
    assert v.verdict == "partly"
    assert "1 of 2 points" in v.why and "125M" in v.why


def test_every_point_below_is_not_reproduced(tmp_path, shipped):
    v = judge(shipped["x86-speedup"], make(tmp_path, pair("125M", 20, 100.0, 1.2) + pair("700M", 20, 20.0, 2.0)))
    assert v.verdict == "not reproduced"
    assert "2.00x, 700M" in v.why and v.measured.startswith("1.20x-2.00x")


# --- which points count ------------------------------------------------------------------------------

def test_all_threads_means_the_machines_usable_cpus(tmp_path, shipped):
    # at 2 threads the speed-up is below the range, at all 4 usable CPUs inside it
    r = make(tmp_path, pair("700M", 2, 20.0, 1.5) + pair("700M", 4, 30.0, 4.0), cpus=4)
    v = judge(shipped["x86-speedup"], r)
    assert v.verdict == "reproduced" and "4 threads" in v.measured
    assert any("all threads here means 4 usable CPUs" in d and "20 hardware threads" in d for d in v.differences)
    v2 = judge(shipped["x86-speedup-2-threads"], r)
    assert v2.verdict == "not reproduced" and "2 threads" in v2.measured


def test_claimed_token_count_preferred_else_listed_as_a_difference(tmp_path, shipped):
    both = make(tmp_path, pair("700M", 20, 20.0, 1.0, "tg32") + pair("700M", 20, 20.0, 4.0, "tg128"), name="a")
    v = judge(shipped["x86-speedup"], both)
    assert v.verdict == "reproduced" and "tg128" in v.measured
    only32 = make(tmp_path, pair("700M", 20, 20.0, 4.0, "tg32"), name="b")
    v = judge(shipped["x86-speedup"], only32)
    assert v.verdict == "reproduced" and "tg32 instead of tg128" in v.differences
    assert any("head is int8" in d for d in v.differences)


def test_prompt_processing_does_not_count_for_a_generation_claim(tmp_path, shipped):
    v = judge(shipped["x86-speedup"], make(tmp_path, pair("700M", 20, 100.0, 4.0, "pp512")))
    assert v.verdict == "not testable here" and "No tg point ran" in v.why


def test_other_machine_listed_as_differences(tmp_path, shipped):
    v = judge(shipped["x86-speedup"], make(tmp_path, pair("700M", 2, 20.0, 4.0), cpu="AMD EPYC", cpus=2, vm=True))
    assert v.verdict == "reproduced"
    assert "CPU: AMD EPYC (x86_64), not Intel Core i7-13700H (x86_64)" in v.differences
    assert any("virtual machine (KVM)" in d for d in v.differences)


def test_results_from_several_machines_count_only_the_claims_architecture(tmp_path, shipped):
    x86 = make(tmp_path, pair("700M", 20, 20.0, 4.0), name="x86")
    arm = make(tmp_path, pair("700M", 24, 100.0, 1.0), name="arm", cpu="Apple M2 Ultra", machine="aarch64", cpus=24)
    assert judge(shipped["x86-speedup"], [x86, arm]).verdict == "reproduced"
    assert judge(shipped["arm-speedup"], [x86, arm]).verdict == "not reproduced"


# --- not testable here -------------------------------------------------------------------------------

def test_arm_claim_on_x86_is_not_testable(tmp_path, shipped):
    v = judge(shipped["arm-speedup"], make(tmp_path, pair("700M", 20, 20.0, 4.0)))
    assert v.verdict == "not testable here" and v.measured == ""
    assert "aarch64" in v.why and "x86_64" in v.why
    v = judge(shipped["x86-speedup"], make(tmp_path, pair("700M", 24, 20.0, 4.0), name="m2", cpu="Apple M2 Ultra",
                                           machine="aarch64", cpus=24))
    assert v.verdict == "not testable here" and "another architecture" in v.why


def test_no_point_at_the_claimed_threads(tmp_path, shipped):
    v = judge(shipped["x86-speedup-2-threads"], make(tmp_path, pair("700M", 1, 20.0, 4.0) + pair("700M", 4, 20.0, 4.0)))
    assert v.verdict == "not testable here"
    assert "No point ran at 2 threads (threads run: 1, 4)" in v.why


def test_estimated_energy_is_shown_but_not_judged(tmp_path, shipped):
    r = make(tmp_path, pair("700M", 20, 20.0, 4.0, f16_joules=1.0, i2s_joules=0.25, measured=False))
    v = judge(shipped["x86-energy"], r)
    assert v.verdict == "not testable here"
    assert v.measured.startswith("75.0% (estimated) over 1 point")
    assert "estimated" in v.why and any("energy is estimated here" in d for d in v.differences)


def test_measured_energy_is_judged(tmp_path, shipped):
    r = make(tmp_path, pair("700M", 20, 20.0, 4.0, f16_joules=1.0, i2s_joules=0.25)
             + pair("7B", 20, 3.0, 5.0, f16_joules=10.0, i2s_joules=2.0))
    v = judge(shipped["x86-energy"], r)
    assert v.verdict == "reproduced", v.why
    assert v.measured == "75.0%-80.0% over 2 points (700M, 7B; tg128, 20 threads)"
    assert any("published energy was an estimate" in d for d in v.differences)
    low = make(tmp_path, pair("700M", 20, 20.0, 4.0, f16_joules=1.0, i2s_joules=0.5), name="low")
    assert judge(shipped["x86-energy"], low).verdict == "not reproduced"


def test_no_energy_figures(tmp_path, shipped):
    v = judge(shipped["x86-energy"], make(tmp_path, pair("700M", 20, 20.0, 4.0)))
    assert v.verdict == "not testable here" and "no energy" in v.why


def test_sizes_skipped_for_memory(tmp_path, shipped):
    skip = {"key": "100B/i2s+int8/avx2/t20/tg128", "model": "100B", "format": "i2s", "head_format": "int8",
            "variant": "avx2", "threads": 20, "workload": "tg", "tokens": 128, "test": "tg128",
            "reason": "needs about 31.2 GB of memory, 20.1 GB is available"}
    r = make(tmp_path, pair("700M", 20, 20.0, 4.0), skipped=[skip, {**skip, "model": "13B", "format": "f16"}])
    v = judge(shipped["100b-one-cpu"], r)
    assert v.verdict == "not testable here"
    assert "100B" in v.why and "not enough memory" in v.why
    v = judge(shipped["x86-speedup"], r)
    assert any("13B (f16 skipped: not enough memory)" in d for d in v.differences)


def test_100b_tokens_per_s_when_it_ran(tmp_path, shipped):
    fast = make(tmp_path, [rec("100B", "i2s", 20, 6.2)], name="fast")
    v = judge(shipped["100b-one-cpu"], fast)
    assert v.verdict == "reproduced" and v.measured.startswith("6.20 tokens/s over 1 point (100B")
    slow = make(tmp_path, [rec("100B", "i2s", 20, 1.7)], name="slow")
    assert judge(shipped["100b-one-cpu"], slow).verdict == "not reproduced"


def test_failed_points_and_missing_baseline(tmp_path, shipped):
    v = judge(shipped["x86-speedup"], make(tmp_path, [rec("700M", "i2s", 20, 80.0, status="failed")], name="f"))
    assert v.verdict == "not testable here" and "failed" in v.why and "SIGKILL" in v.why
    v = judge(shipped["x86-speedup"], make(tmp_path, [rec("700M", "i2s", 20, 80.0)], name="nobase"))
    assert v.verdict == "not testable here" and "no f16 baseline point" in v.why
    v = judge(shipped["x86-speedup"], make(tmp_path, pair("700M", 20, 20.0, 4.0), name="other", baseline="tq1"))
    assert v.verdict == "not testable here" and "no f16 baseline" in v.why


def test_build_comparison_is_never_testable(tmp_path, shipped):
    v = judge(shipped["kernel-update"], make(tmp_path, pair("2B4T", 20, 6.0, 5.0)))
    assert v.verdict == "not testable here" and "one runtime build" in v.why and v.range == "1.15x-2.1x"


def test_lossless(tmp_path, shipped):
    claim = shipped["lossless"]
    v = judge(claim, [])
    assert v.verdict == "not testable here" and "ternbench lossless --model 700M" in v.why
    data = {"model": "700M", "prompts": 1000, "tokens": 100,
            "results": [{"format": "i2s", "exact": 1000, "prompts": 1000, "exact_rate": 1.0},
                        {"format": "tq1", "exact": 10, "prompts": 1000, "exact_rate": 0.01}]}
    v = judge(claim, [], data)
    assert v.verdict == "reproduced" and v.differences == []
    assert v.measured == "i2s 100.0% of 1000 prompts (700M, 100 tokens each)"
    data = {**data, "model": "125M", "prompts": 10, "tokens": 16,
            "results": [{"format": "i2s", "prompts": 10, "exact_rate": 0.9}]}
    v = judge(claim, [], data)
    assert v.verdict == "not reproduced"
    assert v.differences == ["model 125M instead of 700M", "10 prompts instead of 1000",
                             "16 generated tokens per prompt instead of 100"]
    v = judge(claim, [], {"model": "700M", "results": [{"format": "tq1", "exact_rate": 1.0}]})
    assert v.verdict == "not testable here" and "no i2s figure" in v.why


# --- bad claims files --------------------------------------------------------------------------------

GOOD = """\
claims:
  - id: mine
    title: my claim
    source: my paper
    statement: ternary is at least twice as fast
    metric: speedup
    range: [2, 4]
    arch: x86_64
    threads: all
    models: [125M, 2.5B]
    workload: tg
    baseline: f16
    formats: [i2s]
"""


def write(tmp_path, text):
    p = tmp_path / "mine.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_a_minimal_claims_file_loads(tmp_path):
    (c,) = load_claims(write(tmp_path, GOOD))
    assert (c.id, c.lo, c.hi, c.models, c.threads, c.cpu) == ("mine", 2.0, 4.0, ("125M", "2B4T"), "all", ())


@pytest.mark.parametrize("old, new, line, key, words", [
    ("    range: [2, 4]\n", "    rnage: [2, 4]\n", 7, "mine.rnage", "did you mean 'range'"),
    ("    range: [2, 4]\n", "    range: [4, 2]\n", 7, "mine.range", "is above hi"),
    ("    range: [2, 4]\n", "    range: [2, fast]\n", 7, "mine.range", "must be a number"),
    ("    range: [2, 4]\n", "", 2, "mine.range", "either range"),
    ("    threads: all\n", "    threads: many\n", 9, "mine.threads", "all or an integer"),
    ("    models: [125M, 2.5B]\n", "    models: [125M, 2.5C]\n", 10, "mine.models", "unknown model '2.5C'"),
    ("    models: [125M, 2.5B]\n", "    models: [2B4T, 2.5B]\n", 10, "mine.models", "listed twice"),
    ("    arch: x86_64\n", "    arch: x86\n", 8, "mine.arch", "did you mean 'x86_64'"),
    ("    arch: x86_64\n", "", 2, "mine.arch", "missing"),
    ("    metric: speedup\n", "    metric: speed\n", 6, "mine.metric", "choose from"),
    ("    formats: [i2s]\n", "    formats: [i3s]\n", 13, "mine.formats", "unknown format 'i3s'"),
    ("    formats: [i2s]\n", "    formats: [i2s]\n    energy: measured\n", 14, "mine.energy", "energy_reduction"),
    ("  - id: mine\n", "  - id: my claim\n", 2, "claims[0].id", "letters, digits"),
    ("claims:\n", "claimz:\n", 1, "claimz", "unknown key"),
    ("  - id: mine\n", "  - note: x\n", 2, "claims[0].id", "missing"),
    ("    title: my claim\n", "    title: ''\n", 3, "mine.title", "non-empty text"),
])
def test_bad_claims_files_name_file_line_and_key(tmp_path, old, new, line, key, words):
    assert old in GOOD
    with pytest.raises(ClaimsError) as e:
        load_claims(write(tmp_path, GOOD.replace(old, new)))
    message = str(e.value)
    assert message.startswith(f"{tmp_path / 'mine.yaml'}: line {line}: key {key!r}: "), message
    assert words in message and "\n" not in message


def test_duplicate_ids_and_broken_yaml(tmp_path):
    second = GOOD.split("claims:\n")[1]
    with pytest.raises(ClaimsError, match=r"line 14: key 'mine.id': id 'mine' is used twice \(first on line 2\)"):
        load_claims(write(tmp_path, GOOD + second))
    with pytest.raises(ClaimsError, match=r"mine.yaml: line \d+: invalid YAML"):
        load_claims(write(tmp_path, GOOD + "  - id: [unclosed\n"))
    with pytest.raises(ClaimsError, match="cannot read the claims file"):
        load_claims(tmp_path / "missing.yaml")


# --- the command and a real run -----------------------------------------------------------------------

def test_report_prints_the_verdicts_as_json(tmp_path):
    from clirun import ternbench

    make(tmp_path, pair("700M", 20, 20.0, 4.0))
    proc = ternbench("report", str(tmp_path / "run"), "--out", str(tmp_path / "out"), "--json")
    out = {v["id"]: v for v in json.loads(proc.stdout)["claims"]}
    assert out["x86-speedup"]["verdict"] == "reproduced" and out["lossless"]["verdict"] == "not testable here"
    assert "ternbench report RESULTS --lossless" in out["lossless"]["why"]


@pytest.mark.skipif(not (REAL_RUN / "points.jsonl").is_file(), reason=f"no results at {REAL_RUN}")
def test_real_default_run_evaluates(shipped):
    verdicts = {v.id: v for v in evaluate(list(shipped.values()), [Results(REAL_RUN)])}
    assert set(verdicts) == set(shipped)
    for v in verdicts.values():
        assert v.verdict in ("reproduced", "not reproduced", "partly", "not testable here")
        assert v.why and v.range
        assert (v.measured == "") == (v.verdict == "not testable here" and "estimated" not in v.measured)
    assert verdicts["kernel-update"].verdict == "not testable here"
    assert verdicts["lossless"].verdict == "not testable here"
