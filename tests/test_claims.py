"""Published claims judged against results: every verdict on hand-built results directories,
the shipped claims file, and bad claims files naming file, line and key."""
import json
import math
import statistics
import textwrap
from pathlib import Path

import pytest

from harness import claims
from harness.claims import ClaimsError, evaluate, load_claims
from harness.sweep.results import Results, ResultsDir

SHIPPED = Path(__file__).resolve().parent.parent / "configs" / "claims" / "bitnet-cpp.yaml"
I7 = "13th Gen Intel(R) Core(TM) i7-13700H"


def rec(model, fmt, threads, tps, test="tg128", joules=None, measured=True, head=None, status="ok", bytes_per_token=None,
        probe=None, fits_in_llc=False):
    """An ok (or failed) point record with the fields the results table reads; with
    bytes_per_token and a probe, the bandwidth figures a generation point records."""
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
    out = {**r, "tokens_per_s": {"n": 5, "mean": tps, "median": tps, "stdev": 0.0, "ci95_low": tps,
                                 "ci95_high": tps},
           "seconds_per_token": {"mean": 1 / tps, "median": 1 / tps}, "runtime_tokens_per_s": tps,
           "energy": energy}
    if bytes_per_token:
        gbps = bytes_per_token * tps / 1e9
        out.update(bytes_per_token=bytes_per_token, weight_bytes=bytes_per_token, probe_gbps=probe,
                   achieved_gbps=gbps, bandwidth_fraction=gbps / probe, fits_in_llc=fits_in_llc)
    return out


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
                                 "differences", "why", "status", "programs", "claimed_programs", "checks",
                                 "per_size", "counted", "short", "conditions", "line"]
    json.dumps(v.to_dict())


# --- range verdicts ----------------------------------------------------------------------------------

def test_all_points_in_range_is_reproduced(tmp_path, shipped):
    r = make(tmp_path, pair("125M", 20, 164.0, 2.5) + pair("700M", 20, 30.0, 3.9) + pair("13B", 20, 1.8, 6.0))
    v = judge(shipped["x86-speedup"], r)
    assert v.status == "reproduced", v.why
    # the verdict line says whose figures these are: never "reproduced" unqualified
    assert v.verdict == "reproduced (by ternbench's runtime, not bitnet.cpp against llama.cpp FP16)"
    assert v.programs == "ternbench's runtime: i2s against its own f16" and v.line.startswith(v.verdict)
    assert v.measured == "2.50x-6.00x over 3 points (125M, 700M, 13B; tg128, 20 threads)"
    assert v.range == "2.37x-6.17x" and "within the published range" in v.why
    assert not any(d.startswith("CPU") or "virtual machine" in d or "tg128" in d for d in v.differences)
    assert any("350M, 1B, 1.5B, 2B4T, 3.8B, 7B (not in these results)" in d for d in v.differences)


def test_above_the_range_exceeds_it_rather_than_reproducing_it(tmp_path, shipped):
    v = judge(shipped["x86-speedup"], make(tmp_path, pair("125M", 20, 100.0, 3.0) + pair("700M", 20, 20.0, 6.8)))
    assert v.status == claims.EXCEEDS and v.verdict.startswith("exceeds the published range (by ternbench's runtime")
    assert "above the published range" in v.why and "700M" in v.why and "6.80x" in v.why


def test_some_points_below_is_partly(tmp_path, shipped):
    v = judge(shipped["x86-speedup"], make(tmp_path, pair("125M", 20, 100.0, 1.5) + pair("700M", 20, 20.0, 4.0)))
    assert v.status == "partly"
    assert "1 of 2 points" in v.why and "125M" in v.why


def test_every_point_below_is_not_reproduced(tmp_path, shipped):
    v = judge(shipped["x86-speedup"], make(tmp_path, pair("125M", 20, 100.0, 1.2) + pair("700M", 20, 20.0, 2.0)))
    assert v.status == "not reproduced"
    assert "2.00x, 700M" in v.why and v.measured.startswith("1.20x-2.00x")


# --- which points count ------------------------------------------------------------------------------

def test_all_threads_means_the_machines_usable_cpus(tmp_path, shipped):
    # at 2 threads the speed-up is below the range, at all 4 usable CPUs inside it
    r = make(tmp_path, pair("700M", 2, 20.0, 1.5) + pair("700M", 4, 30.0, 4.0), cpus=4)
    v = judge(shipped["x86-speedup"], r)
    assert v.status == "reproduced" and "4 threads" in v.measured
    assert any("all threads here means 4 usable CPUs" in d and "20 hardware threads" in d for d in v.differences)
    v2 = judge(shipped["x86-speedup-2-threads"], r)
    assert v2.status == "not reproduced" and "2 threads" in v2.measured


def test_claimed_token_count_preferred_else_listed_as_a_difference(tmp_path, shipped):
    both = make(tmp_path, pair("700M", 20, 20.0, 1.0, "tg32") + pair("700M", 20, 20.0, 4.0, "tg128"), name="a")
    v = judge(shipped["x86-speedup"], both)
    assert v.status == "reproduced" and "tg128" in v.measured
    only32 = make(tmp_path, pair("700M", 20, 20.0, 4.0, "tg32"), name="b")
    v = judge(shipped["x86-speedup"], only32)
    assert v.status == "reproduced" and "tg32 instead of tg128" in v.differences
    assert any("head is int8" in d for d in v.differences)


def test_prompt_processing_does_not_count_for_a_generation_claim(tmp_path, shipped):
    v = judge(shipped["x86-speedup"], make(tmp_path, pair("700M", 20, 100.0, 4.0, "pp512")))
    assert v.status == "not testable here" and "No tg point ran" in v.why


def test_other_machine_listed_as_differences(tmp_path, shipped):
    v = judge(shipped["x86-speedup"], make(tmp_path, pair("700M", 2, 20.0, 4.0), cpu="AMD EPYC", cpus=2, vm=True))
    assert v.status == "reproduced"
    assert "CPU: AMD EPYC (x86_64), not Intel Core i7-13700H (x86_64)" in v.differences
    assert any("virtual machine (KVM)" in d for d in v.differences)


def test_results_from_several_machines_count_only_the_claims_architecture(tmp_path, shipped):
    x86 = make(tmp_path, pair("700M", 20, 20.0, 4.0), name="x86")
    arm = make(tmp_path, pair("700M", 24, 100.0, 1.0), name="arm", cpu="Apple M2 Ultra", machine="aarch64", cpus=24)
    assert judge(shipped["x86-speedup"], [x86, arm]).status == "reproduced"
    assert judge(shipped["arm-speedup"], [x86, arm]).status == "not reproduced"


# --- not testable here -------------------------------------------------------------------------------

def test_arm_claim_on_x86_is_not_testable(tmp_path, shipped):
    v = judge(shipped["arm-speedup"], make(tmp_path, pair("700M", 20, 20.0, 4.0)))
    assert v.status == "not testable here" and v.measured == ""
    assert "aarch64" in v.why and "x86_64" in v.why
    v = judge(shipped["x86-speedup"], make(tmp_path, pair("700M", 24, 20.0, 4.0), name="m2", cpu="Apple M2 Ultra",
                                           machine="aarch64", cpus=24))
    assert v.status == "not testable here" and "another architecture" in v.why


def test_no_point_at_the_claimed_threads(tmp_path, shipped):
    v = judge(shipped["x86-speedup-2-threads"], make(tmp_path, pair("700M", 1, 20.0, 4.0) + pair("700M", 4, 20.0, 4.0)))
    assert v.status == "not testable here"
    assert "No point ran at 2 threads (threads run: 1, 4)" in v.why


def test_estimated_energy_is_shown_but_not_judged(tmp_path, shipped):
    r = make(tmp_path, pair("700M", 20, 20.0, 4.0, f16_joules=1.0, i2s_joules=0.25, measured=False))
    v = judge(shipped["x86-energy"], r)
    assert v.status == "not testable here"
    # the estimate is said, but never as a figure beside the published range
    assert v.measured == "" and "75.0% (an estimate) over 1 point" in v.why and "restates the speed-up" in v.why
    assert "estimated" in v.why and any("energy is estimated here" in d for d in v.differences)


def test_measured_energy_is_judged(tmp_path, shipped):
    r = make(tmp_path, pair("700M", 20, 20.0, 4.0, f16_joules=1.0, i2s_joules=0.25)
             + pair("7B", 20, 3.0, 5.0, f16_joules=10.0, i2s_joules=2.0))
    v = judge(shipped["x86-energy"], r)
    assert v.status == "reproduced", v.why
    assert v.measured == "75.0%-80.0% over 2 points (700M, 7B; tg128, 20 threads)"
    assert any("published energy was an estimate" in d for d in v.differences)
    low = make(tmp_path, pair("700M", 20, 20.0, 4.0, f16_joules=1.0, i2s_joules=0.5), name="low")
    assert judge(shipped["x86-energy"], low).status == "not reproduced"


def test_no_energy_figures(tmp_path, shipped):
    v = judge(shipped["x86-energy"], make(tmp_path, pair("700M", 20, 20.0, 4.0)))
    assert v.status == "not testable here" and "no energy" in v.why


def test_sizes_skipped_for_memory(tmp_path, shipped):
    skip = {"key": "100B/i2s+int8/avx2/t20/tg128", "model": "100B", "format": "i2s", "head_format": "int8",
            "variant": "avx2", "threads": 20, "workload": "tg", "tokens": 128, "test": "tg128",
            "reason": "needs about 31.2 GB of memory, 20.1 GB is available"}
    r = make(tmp_path, pair("700M", 20, 20.0, 4.0), skipped=[skip, {**skip, "model": "13B", "format": "f16"}])
    v = judge(shipped["100b-one-cpu"], r)
    assert v.status == "not testable here"
    assert "100B" in v.why and "not enough memory" in v.why
    v = judge(shipped["x86-speedup"], r)
    assert any("13B (f16 skipped: not enough memory)" in d for d in v.differences)


def test_100b_tokens_per_s_when_it_ran(tmp_path, shipped):
    fast = make(tmp_path, [rec("100B", "i2s", 20, 6.2)], name="fast")
    v = judge(shipped["100b-one-cpu"], fast)
    assert v.status == "reproduced" and v.measured.startswith("6.20 tokens/s over 1 point (100B")
    slow = make(tmp_path, [rec("100B", "i2s", 20, 1.7)], name="slow")
    assert judge(shipped["100b-one-cpu"], slow).status == "not reproduced"


def test_failed_points_and_missing_baseline(tmp_path, shipped):
    v = judge(shipped["x86-speedup"], make(tmp_path, [rec("700M", "i2s", 20, 80.0, status="failed")], name="f"))
    assert v.status == "not testable here" and "failed" in v.why and "SIGKILL" in v.why
    v = judge(shipped["x86-speedup"], make(tmp_path, [rec("700M", "i2s", 20, 80.0)], name="nobase"))
    assert v.status == "not testable here" and "no f16 baseline point" in v.why
    v = judge(shipped["x86-speedup"], make(tmp_path, pair("700M", 20, 20.0, 4.0), name="other", baseline="tq1"))
    assert v.status == "not testable here" and "no f16 baseline" in v.why


def test_build_comparison_is_never_testable(tmp_path, shipped):
    v = judge(shipped["kernel-update"], make(tmp_path, pair("2B4T", 20, 6.0, 5.0)))
    assert v.status == "not testable here" and "one runtime build" in v.why and v.range == "1.15x-2.1x"


def test_lossless(tmp_path, shipped):
    claim = shipped["lossless"]
    v = judge(claim, [])
    assert v.status == "not testable here" and "ternbench lossless --model 700M" in v.why
    data = {"model": "700M", "prompts": 1000, "tokens": 100,
            "results": [{"format": "i2s", "exact": 1000, "prompts": 1000, "exact_rate": 1.0},
                        {"format": "tq1", "exact": 10, "prompts": 1000, "exact_rate": 0.01}]}
    v = judge(claim, [], data)
    assert v.status == "reproduced" and v.differences == []
    assert v.measured == "i2s 100.0% of 1000 prompts (700M, 100 tokens each)"
    data = {**data, "model": "125M", "prompts": 10, "tokens": 16,
            "results": [{"format": "i2s", "prompts": 10, "exact_rate": 0.9}]}
    v = judge(claim, [], data)
    assert v.status == "not reproduced"
    assert v.differences == ["model 125M instead of 700M", "10 prompts instead of 1000",
                             "16 generated tokens per prompt instead of 100"]
    v = judge(claim, [], {"model": "700M", "results": [{"format": "tq1", "exact_rate": 1.0}]})
    assert v.status == "not testable here" and "no i2s figure" in v.why


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
    assert out["x86-speedup"]["status"] == "reproduced" and out["lossless"]["status"] == "not testable here"
    assert "ternbench report RESULTS --lossless" in out["lossless"]["why"]




# --- the checks behind a speed-up verdict ----------------------------------------------------------

def roofline_pair(model, threads, f16_fraction, i2s_fraction, probe=40.0, f16_bytes=2_000_000_000,
                  i2s_bytes=500_000_000, fits_in_llc=False):
    """f16 and i2s generation points reading their weights at the given fractions of the probe."""
    f16_tps = f16_fraction * probe * 1e9 / f16_bytes
    i2s_tps = i2s_fraction * probe * 1e9 / i2s_bytes
    return [rec(model, "f16", threads, f16_tps, bytes_per_token=f16_bytes, probe=probe),
            rec(model, "i2s", threads, i2s_tps, bytes_per_token=i2s_bytes, probe=probe, fits_in_llc=fits_in_llc)]


def test_a_weak_baseline_makes_the_verdict_unreliable(tmp_path, shipped):
    # f16 at 50% of the probe, i2s at 90%: 4x bytes x 1.8 = 7.2x, above the range and inflated
    v = judge(shipped["x86-speedup"], make(tmp_path, roofline_pair("700M", 20, 0.50, 0.90)
                                           + roofline_pair("7B", 20, 0.90, 0.90)))
    assert v.status == claims.UNRELIABLE and v.verdict.startswith("unreliable: weak baseline")
    base = next(x for x in v.checks if x["check"] == "baseline")
    assert base["ok"] is False and "below 80% of the probed bandwidth (700M t20 50%)" in base["text"]
    assert "7B" not in base["text"]   # only the weak points are named


def test_a_fair_baseline_passes_the_gate_and_says_with_what(tmp_path, shipped):
    v = judge(shipped["x86-speedup"], make(tmp_path, roofline_pair("7B", 20, 0.90, 0.90)))
    assert v.status == claims.REPRODUCED, v.why   # 4.0x: within the range
    base = next(x for x in v.checks if x["check"] == "baseline")
    assert base["ok"] is True and "90% of the probed bandwidth (at least 80% required)" in base["text"]
    ceiling = next(x for x in v.checks if x["check"] == "ceiling")
    assert ceiling["ok"] is True and "4.00x" in ceiling["text"]


def test_a_point_above_the_bytes_ceiling_is_flagged_with_its_cause(tmp_path, shipped):
    # a fair baseline (85%), and an i2s point reading at 110% of the probe: 4x bytes -> 5.18x
    v = judge(shipped["x86-speedup"], make(tmp_path, roofline_pair("7B", 20, 0.85, 1.10)))
    assert v.status == claims.UNRELIABLE and v.verdict.startswith("unreliable: above the bytes ceiling")
    ceiling = next(x for x in v.checks if x["check"] == "ceiling")
    assert ceiling["ok"] is False and "5.18x over a ceiling of 4.00x" in ceiling["text"]
    assert "reading at 110% of the probed bandwidth against the baseline's 85%" in ceiling["text"]


def test_a_cache_resident_model_may_pass_the_bytes_ceiling(tmp_path, shipped):
    v = judge(shipped["x86-speedup"], make(tmp_path, roofline_pair("125M", 20, 0.85, 1.10, fits_in_llc=True)))
    assert v.status == claims.REPRODUCED
    (check,) = [x for x in v.checks if x["check"] == "ceiling"]
    # allowed, but named as what it is: never "within its ceiling"
    assert check["ok"] and "within" not in check["text"], check
    assert check["text"].startswith("1 point above its bytes-per-token ceiling") and "cache effect" in check["text"]


def test_one_set_of_points_is_one_measurement_under_both_claims(tmp_path, shipped):
    """On a 2-CPU machine, all threads and 2 threads are the same points: each claim gets its own
    verdict against its own range, and says the two are one measurement."""
    r = make(tmp_path, pair("700M", 2, 4.0, 3.17), cpus=2)   # inside both published ranges
    all_threads, two = evaluate([shipped["x86-speedup"], shipped["x86-speedup-2-threads"]], [r])
    assert two.status == all_threads.status == claims.REPRODUCED
    assert "x86-speedup-2-threads" in all_threads.why and "one measurement, not two" in all_threads.why
    assert any("same 1 points as claim x86-speedup-2-threads" in d for d in all_threads.differences)
    assert "one measurement" not in two.why
    # the ranges differ: 2.50x is inside the all-threads range (from 2.37x), below the 2-thread one (from 2.64x)
    r = make(tmp_path, pair("700M", 2, 4.0, 2.5), name="low", cpus=2)
    all_threads, two = evaluate([shipped["x86-speedup"], shipped["x86-speedup-2-threads"]], [r])
    assert (all_threads.status, two.status) == (claims.REPRODUCED, claims.NOT_REPRODUCED)
    four = make(tmp_path, pair("700M", 2, 20.0, 4.0) + pair("700M", 4, 20.0, 4.0), name="four", cpus=4)
    assert evaluate([shipped["x86-speedup"], shipped["x86-speedup-2-threads"]], [four])[0].status == claims.REPRODUCED


def test_per_size_figures_and_the_trend_with_size(tmp_path, shipped):
    grows = make(tmp_path, pair("125M", 20, 100.0, 2.5) + pair("700M", 20, 20.0, 3.5) + pair("13B", 20, 1.0, 6.0))
    v = judge(shipped["x86-speedup"], grows)
    assert [(s["model"], s["published"], s["measured"]) for s in v.per_size] == \
        [("125M", 2.372, 2.5), ("700M", 3.875, 3.5), ("13B", 6.174, 6.0)]
    trend = next(x for x in v.checks if x["check"] == "trend")
    assert trend["ok"] is True and "published figure grows; measured, it grows" in trend["text"]
    falls = make(tmp_path, pair("125M", 20, 100.0, 5.0) + pair("13B", 20, 1.0, 3.0), name="falls")
    trend = next(x for x in judge(shipped["x86-speedup"], falls).checks if x["check"] == "trend")
    assert trend["ok"] is False and "measured, it falls" in trend["text"]


def test_an_estimated_energy_reduction_is_labelled_everywhere(tmp_path, shipped):
    from clirun import ternbench

    r = make(tmp_path, pair("700M", 20, 20.0, 4.0, f16_joules=2.0, i2s_joules=0.5, measured=False))
    frame = r.frame()
    row = frame[frame.format == "i2s"].iloc[0]
    assert row["energy_reduction"] == pytest.approx(0.75) and "restates the speed-up" in row["energy_reduction_basis"]
    v = judge(shipped["x86-energy"], r)
    assert v.status == claims.NOT_TESTABLE and v.measured == "" and "1 - 1/speed-up" in v.why
    proc = ternbench("report", str(tmp_path / "run"), "--out", str(tmp_path / "out"), "--json")
    out = {c["id"]: c for c in json.loads(proc.stdout)["claims"]}
    assert "restates the speed-up" in out["x86-energy"]["why"] and "71.9%" not in out["x86-energy"]["why"]
    assert out["x86-energy"]["line"].startswith("not testable here: x86-energy: published 71.9%-82.2%; needs "
                                                "measured energy: ")
    html = (tmp_path / "out" / "index.html").read_text()
    assert "restates the speed-up" in html
    ResultsDir(tmp_path / "run").rebuild_tables("f16")
    csv = (tmp_path / "run" / "points.csv").read_text()
    assert "energy_reduction_basis" in csv.splitlines()[0] and "restates the speed-up" in csv


def test_a_size_claim_uses_the_most_compact_format_that_ran_and_says_which(tmp_path, shipped):
    r = make(tmp_path, [rec("100B", "tq1", 20, 5.5, bytes_per_token=20_500_000_000, probe=120.0, head="f16"),
                        rec("100B", "i2s", 20, 4.0, bytes_per_token=25_600_000_000, probe=120.0, head="f16")])
    v = judge(shipped["100b-one-cpu"], r)
    assert v.status == claims.REPRODUCED and v.measured == "5.50 tokens/s over 1 point (100B in tq1; tg128, 20 threads)"
    assert v.programs == "ternbench's runtime: tq1"


def rounds(model, threads, f16_rounds, ratios, conditions=None, group="g1", test="tg128"):
    """An f16 point and an i2s point measured in the same rounds of one group run: per-round
    process means, the i2s one ratios[i] times round i's f16 figure."""
    f16, i2s = pair(model, threads, statistics.median(f16_rounds), statistics.median(ratios), test)
    f16.update(process_tokens_per_s=list(f16_rounds), group_run=group)
    i2s.update(process_tokens_per_s=[f * r for f, r in zip(f16_rounds, ratios)], group_run=group)
    if conditions:
        for r in (f16, i2s):
            r["conditions"] = conditions
    return [f16, i2s]


NOISY = {"unstable": ["tokens/s spread 16% of the mean (limit 10%)",
                      "the hypervisor stole 17% of the CPU time (limit 10%)"], "steal_fraction": 0.17, "spread": 0.16}


def test_a_noisy_host_is_judged_on_the_paired_interval_and_says_so(tmp_path, shipped):
    """Recorded noisy records (17% steal, 16% spread): the baseline's rounds swing by a third, but
    each round's ratio holds, so the paired interval decides and the verdict states it."""
    f16 = [4.1, 3.2, 4.4, 3.6, 4.2]
    ratios = [4.9, 5.1, 4.7, 5.0, 4.8]
    r = make(tmp_path, rounds("2B4T", 20, f16, ratios, NOISY))
    row = r.frame().set_index("format").loc["i2s"]
    assert row["speedup_method"] == "paired" and row["speedup_n"] == 5
    assert row["speedup"] == pytest.approx(statistics.geometric_mean(ratios))
    assert 4.6 < row["speedup_ci95_low"] < row["speedup"] < row["speedup_ci95_high"] < 5.2
    # the same figures as independent samples: the host's swings land in the interval
    from harness.measure import stats
    loose = stats.unpaired_ratio([f * q for f, q in zip(f16, ratios)], f16)
    assert math.log(loose.high / loose.low) > 3 * math.log(row["speedup_ci95_high"] / row["speedup_ci95_low"])
    v = judge(shipped["x86-speedup"], r)
    assert v.status == claims.REPRODUCED
    assert v.verdict.startswith("reproduced, noisy host (1 of 1 points unstable, up to 17% CPU stolen)")
    assert f"95% {row['speedup_ci95_low']:.2f}x-{row['speedup_ci95_high']:.2f}x, paired" in v.measured
    assert any("noisy host" in d and "stole 17%" in d for d in v.differences)
    # the host's conditions are stated on the verdict's line, beside the paired interval
    assert v.conditions == "up to 17% CPU stolen, tokens/s spread up to 16% over processes"
    assert "paired) over 1 point" in v.line and v.line.endswith("; host: up to 17% CPU stolen, tokens/s spread up to "
                                                                 "16% over processes")


def test_a_point_too_noisy_to_place_is_left_out_and_alone_it_is_unreliable(tmp_path, shipped):
    wide = rounds("700M", 20, [20.0, 21.0, 19.0], [2.0, 2.9, 2.4])     # 95% about 1.5x-3.9x around 2.37x
    good = rounds("125M", 20, [100.0, 98.0, 101.0], [3.0, 3.05, 2.95], group="g2")
    v = judge(shipped["x86-speedup"], make(tmp_path, good + wide))
    assert v.status == claims.REPRODUCED and "1 point" in v.measured
    assert any("left out" in d and "700M i2s t20 tg128" in d and "too wide" in d for d in v.differences)
    v = judge(shipped["x86-speedup"], make(tmp_path, wide, name="only"))
    assert v.status == claims.UNRELIABLE and "too wide to place" in v.why and v.short.startswith("too noisy")
    assert "95% " in v.why and v.verdict.startswith("unreliable: too noisy to decide (by ternbench")


def test_a_narrow_interval_at_a_bound_is_placed_by_its_figure(tmp_path, shipped):
    edge = rounds("700M", 20, [20.0, 21.0, 19.0, 20.0], [2.40, 2.36, 2.41, 2.39])
    v = judge(shipped["x86-speedup"], make(tmp_path, edge))
    assert v.status == claims.REPRODUCED and "At a bound of the range" in v.why


def test_points_without_an_interval_are_judged_by_their_figure_and_say_why(tmp_path, shipped):
    two = rounds("700M", 20, [20.0, 21.0], [4.0, 4.1])
    v = judge(shipped["x86-speedup"], make(tmp_path, two))
    assert v.status == claims.REPRODUCED and "no interval (n too small for an interval (2 rounds" in v.why


# --- the claim's own programs, when the sweep ran them -------------------------------------------------

def engine_rec(engine, model, fmt, threads, tps, test="tg128"):
    r = rec(model, fmt, threads, tps, test, head="q6_k" if fmt.startswith("tq") else "f16")
    return {**r, "key": f"{engine}:{r['key']}", "engine": engine, "variant": "native"}


def test_the_claims_own_programs_give_a_bare_verdict(tmp_path, shipped):
    """bitnet.cpp's i2_s against llama.cpp's F16, the paper's comparison: no qualification."""
    records = [engine_rec("bitnetcpp", "700M", "i2_s", 20, 90.0), engine_rec("llamacpp", "700M", "f16", 20, 25.0),
               engine_rec("bitnetcpp", "7B", "i2_s", 20, 10.0), engine_rec("llamacpp", "7B", "f16", 20, 2.0),
               *pair("700M", 20, 26.0, 4.0), *pair("7B", 20, 2.0, 5.0)]
    v = judge(shipped["x86-speedup"], make(tmp_path, records, baseline="llamacpp:f16,f16"))
    assert v.status == "reproduced" and v.verdict == "reproduced", v.why
    assert v.programs == "bitnet.cpp: i2_s against llama.cpp's f16"
    assert v.measured.startswith("3.60x-5.00x over 2 points")
    # ternbench's f16 against llama.cpp's F16 (26 against 25, 2 against 2): a fair baseline
    assert all(x["ok"] for x in v.checks if x["check"] == "baseline")
    # the claim's own programs: no "compares ternbench's own kernels" among the differences
    assert not any("ternbench's own" in d for d in v.differences), v.differences
    ternbench_only = judge(shipped["x86-speedup"], make(tmp_path, pair("700M", 20, 26.0, 4.0), name="own"))
    assert any("compares ternbench's own" in d for d in ternbench_only.differences)


def test_a_size_left_out_for_its_interval_is_not_called_unmeasured(tmp_path, shipped):
    wide = rounds("700M", 20, [20.0, 21.0, 19.0], [2.0, 2.9, 2.4])
    good = rounds("125M", 20, [100.0, 98.0, 101.0], [3.0, 3.05, 2.95], group="g2")
    v = judge(shipped["x86-speedup"], make(tmp_path, good + wide))
    (sizes,) = [d for d in v.differences if d.startswith("sizes:")]
    assert "700M" not in sizes.split("not measured:")[1], sizes


def test_ternbench_standing_in_against_llamacpp_says_so(tmp_path, shipped):
    records = [engine_rec("llamacpp", "700M", "f16", 20, 25.0), *pair("700M", 20, 26.0, 4.0)]
    v = judge(shipped["x86-speedup"], make(tmp_path, records, baseline="llamacpp:f16,f16"))
    assert v.verdict == "reproduced (by ternbench's runtime against llama.cpp, not bitnet.cpp against llama.cpp FP16)"
    assert v.programs == "ternbench's runtime: i2s against llama.cpp's f16"
    assert v.measured.startswith("4.16x")     # 104 / 25


def test_a_baseline_slower_than_llamacpp_f16_is_weak(tmp_path, shipped):
    """Each engine against its own f16, with llama.cpp's F16 beside: ternbench's f16 at 0.80x of it."""
    records = [engine_rec("llamacpp", "700M", "f16", 20, 30.0), *pair("700M", 20, 24.0, 4.0)]
    v = judge(shipped["x86-speedup"], make(tmp_path, records))
    assert v.status == claims.UNRELIABLE and v.verdict.startswith("unreliable: weak baseline"), v.why
    weak = next(x for x in v.checks if x["check"] == "baseline" and x["ok"] is False)
    assert "below 0.95x llama.cpp's F16 on the same shapes (700M t20 0.80x)" in weak["text"]
