"""`ternbench report` and `ternbench compare`: self-contained HTML from results directories built
by hand and from a real sweep of a tiny model run here, partial results, hostile
strings, no reference to anything outside the page, and the page loaded in headless Chromium
on a narrow screen with no console error."""
import base64
import copy
import datetime
import html.parser
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from clirun import ternbench
from harness.cli import report as report_cmd
from harness.report import compare, single, write_compare, write_single
from harness.sweep.results import Results, ResultsDir

HOSTILE = "<script>alert(1)</script>\"&'$x^"
ESTIMATED = "estimated: cpu-time model, 6.075 W per busy core + 27 W idle"
MEASURED = "measured: powercap package-0 + dram-0, sampled every 1 s"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- results directories built by hand --------------------------------------------------------

def fingerprint(cpu="Test CPU 9000", arch="x86", variants=("avx512vnni", "avx2", "scalar"), cores=2):
    return {
        "schema": 1,
        "cpu": {"vendor": "TestVendor", "model_name": cpu, "arch": arch, "ids": {"family": 6, "model": 1},
                "isa": {"avx2": arch == "x86"}, "logical_cpus": cores, "physical_cores": cores, "sockets": 1,
                "usable_cpus": cores},
        "caches": {"levels": [{"level": 3, "type": "Unified", "size_bytes": 32 << 20, "shared_cpu_list": "0-1"}],
                   "llc_bytes": 32 << 20, "llc_source": "test"},
        "memory": {"total_bytes": 16 << 30, "numa_nodes": 1, "numa": [], "transparent_hugepages": "madvise"},
        "os": {"system": "Linux", "kernel": "6.1", "machine": "x86_64" if arch == "x86" else "aarch64",
               "distribution": "Debian", "python": "CPython 3.11"},
        "frequency": {"governor": None, "min_khz": None, "max_khz": None, "turbo": None},
        "virtualisation": {"virtualised": True, "hypervisor": "KVM", "container": None,
                           "evidence": ["cpuinfo flag 'hypervisor' set"]},
        "runtime": {"version": "0.1.0", "build": "gcc 12", "best_variant": variants[0],
                    "variants": [{"name": v, "usable": True} for v in variants]},
        "ternbench": {"version": "0.1.0", "git_commit": "abc123", "git_dirty": False},
        "notes": [],
    }


def energy_json(measured=False):
    return {"backend": "powercap" if measured else "model", "measured": measured,
            "provenance": MEASURED if measured else ESTIMATED,
            "not_used": {} if measured else {"powercap": "no RAPL zones", "perf": "no power PMU"},
            "idle": {"joules": 135.0, "seconds": 5.0, "watts": 27.0, "measured": measured}}


def ok_record(model, fmt, threads, test, tps, variant="avx512vnni", provenance=ESTIMATED, watts=33.0,
              weight_bytes=50_000_000):
    workload, tokens = test[:2], int(test[2:])
    head = "int8" if fmt in ("i2s", "tq1") else "f16"
    rec = {"key": f"{model}/{fmt}+{head}/{variant}/t{threads}/{test}", "model": model, "format": fmt,
           "head_format": head, "variant": variant, "threads": threads, "workload": workload, "tokens": tokens,
           "test": test, "status": "ok",
           "tokens_per_s": {"n": 6, "mean": tps * 1.001, "median": tps, "min": tps * 0.98, "max": tps * 1.02,
                            "stdev": tps * 0.01, "ci95_low": tps * 0.99, "ci95_high": tps * 1.01},
           "seconds_per_token": {"mean": 1 / tps, "median": 1 / tps}, "samples_tokens_per_s": [tps] * 6,
           "runtime_tokens_per_s": tps, "timing_vs_runtime": 1.0, "weight_bytes": weight_bytes,
           "bytes_per_token": weight_bytes, "probe_gbps": 40.0 * threads ** 0.5, "fits_in_llc": False,
           "achieved_gbps": None, "bandwidth_fraction": None, "setup_s": 0.1, "pinned": False}
    if workload == "tg":
        gbps = weight_bytes * tps / 1e9
        rec.update(achieved_gbps=gbps, bandwidth_fraction=gbps / rec["probe_gbps"])
    if provenance:
        rec["energy"] = {"measured": provenance.startswith("measured"), "provenance": provenance,
                         "j_per_token": watts / tps, "tokens_per_j": tps / watts, "watts": watts,
                         "j_per_token_above_idle": (watts - 27.0) / tps}
    return rec


def failed_record(model, fmt, threads, test, reason, variant="avx512vnni"):
    head = "int8" if fmt in ("i2s", "tq1") else "f16"
    return {"key": f"{model}/{fmt}+{head}/{variant}/t{threads}/{test}", "model": model, "format": fmt,
            "head_format": head, "variant": variant, "threads": threads, "workload": test[:2],
            "tokens": int(test[2:]), "test": test, "status": "failed", "reason": reason,
            "log_tail": "Traceback (most recent call last):\n  boom " + reason}


SPEED = {"125M": 1.0, "700M": 0.2}          # relative tokens/s of the models
BASE_TPS = {"pp128": 600.0, "tg32": 120.0}
GAIN = {"f16": 1.0, "i2s": 4.0, "tq1": 3.0}


def sweep_records(models=("125M", "700M"), formats=("i2s", "tq1", "f16"), threads=(1, 2), tests=("pp128", "tg32"),
                  variant="avx512vnni", provenance=ESTIMATED, scale=1.0):
    return [ok_record(m, f, t, test, BASE_TPS[test] * SPEED[m] * GAIN[f] * t ** 0.8 * scale, variant=variant,
                      provenance=provenance, weight_bytes=int(50e6 / SPEED[m]) // (8 if f != "f16" else 1))
            for test in tests for m in models for t in threads for f in formats]


def make_results(path, records, fp=None, energy="estimated", baseline="f16", skipped=(), planned=(),
                 config="name: synthetic\nmodels: [125M, 700M]\n"):
    d = ResultsDir(path)
    d.create()
    for r in records:
        d.append(r)
    fp = fingerprint() if fp is None else fp
    d.write_json("sysinfo.json", fp)
    if energy:
        d.write_json("energy.json", energy_json(measured=energy == "measured"))
    d.write_json("plan.json", {"config": "synthetic", "baseline": baseline,
                               "points": [{"key": r["key"]} for r in records] + [{"key": k} for k in planned],
                               "skipped": list(skipped)})
    d.write_json("manifest.json", {"config": {}, "machine": {"cpu": fp.get("cpu", {}).get("model_name")}})
    (Path(path) / "config.yaml").write_text(config)
    return Path(path)


VERDICTS = [
    {"id": "x86-speedup", "title": "x86 speed-up over FP16", "source": "bitnet.cpp README",
     "statement": "2.37x to 6.17x faster", "verdict": "reproduced", "measured": "4.0x-5.1x over 4 points",
     "range": "2.37x-6.17x", "differences": ["CPU: Test CPU 9000, not i7-13700H", "tg32 instead of tg128"],
     "why": "All points lie in or above the range."},
    {"id": "x86-energy", "title": "x86 energy reduction", "source": "paper", "statement": "71.9% to 82.2% less",
     "verdict": "not testable here", "measured": "80% (estimated)", "range": "71.9%-82.2%", "differences": [],
     "why": "Energy is estimated here."},
    {"id": "arm", "title": "ARM speed-up", "source": "paper", "statement": "1.37x to 5.07x", "verdict": "partly",
     "measured": "1.1x-2x", "range": "1.37x-5.07x", "differences": ["one"], "why": "some below"},
    {"id": "big", "title": "100B on one CPU", "source": "paper", "statement": "5-7 tokens/s",
     "verdict": "not reproduced", "measured": 1.7, "range": [5, 7], "differences": [], "why": "too slow"},
]


@pytest.fixture
def machine_a(tmp_path):
    return make_results(tmp_path / "machine-a", sweep_records())


def render(results_dir, out, claims=None, error=None) -> str:
    path, _ = write_single(Results(results_dir), out, claims, error)
    return Path(path).read_text()


def section(html_text: str, ident: str) -> str:
    """The HTML of <section id=IDENT> (sections are not nested)."""
    start = html_text.index(f'<section id="{ident}">')
    return html_text[start:html_text.index("</section>", start)]


class Refs(html.parser.HTMLParser):
    """Every src/href/srcset/action/data attribute, and the tags, of a page."""

    def __init__(self):
        super().__init__()
        self.refs, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [(tag, k, v or "") for k, v in attrs if k in ("src", "href", "srcset", "action", "data",
                                                                    "poster", "xlink:href")]


def refs(html_text: str) -> Refs:
    p = Refs()
    p.feed(html_text)
    return p


def assert_self_contained(html_text: str) -> None:
    p = refs(html_text)
    for tag, attr, value in p.refs:
        assert not re.match(r"\s*(https?:)?//", value, re.I), f"<{tag} {attr}> refers outside the page: {value[:80]}"
        if attr == "src":
            assert value.startswith("data:image/png;base64,"), f"<{tag} src> is not an embedded PNG: {value[:60]}"
        if attr == "href":
            assert value.startswith("#"), f"<{tag} href> is not an anchor in the page: {value[:60]}"
    assert "link" not in p.tags and "script" not in p.tags and "iframe" not in p.tags
    assert not re.search(r"@import|url\(", html_text, re.I), "CSS refers to a file"
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*https?://""", html_text, re.I)


def images(html_text: str) -> list[bytes]:
    return [base64.b64decode(v.split(",", 1)[1]) for tag, attr, v in refs(html_text).refs
            if tag == "img" and attr == "src"]


# --- the single-machine report ----------------------------------------------------------------

def test_report_has_every_section_in_order_with_embedded_plots(machine_a, tmp_path):
    text = render(machine_a, tmp_path / "out", VERDICTS)
    order = [text.index(f'<section id="{s}">') for s in
             ("claims", "system", "speed", "speedup", "energy", "bandwidth", "tables")]
    assert order == sorted(order)
    assert_self_contained(text)
    pngs = images(text)
    # 2 size plots, 3 x 2 speed-up and scaling plots, 2 x 2 energy plots, 1 bandwidth plot
    assert len(pngs) == 13
    assert all(p.startswith(PNG_MAGIC) and len(p) > 5000 for p in pngs)
    assert "no data" not in text
    tables = section(text, "tables")
    assert tables.count("<tr>") == 1 + 24 + 0      # header + every point
    assert "ESTIMATED" in section(text, "system") and "ESTIMATED" in section(text, "energy")
    assert "est.</span>" in tables


def test_claims_section_shows_each_verdict_with_text_and_class(machine_a, tmp_path):
    claims = section(render(machine_a, tmp_path / "out", VERDICTS), "claims")
    for v, css in (("reproduced", "ok"), ("not testable here", "na"), ("partly", "part"),
                   ("not reproduced", "bad")):
        assert re.search(rf'class="badge {css}">[^<]* {v}</span>', claims), v
    assert "CPU: Test CPU 9000, not i7-13700H" in claims and "tg32 instead of tg128" in claims
    assert "4.0x-5.1x over 4 points" in claims and "5, 7" in claims
    assert "1 reproduced; 1 not testable here; 1 partly; 1 not reproduced" in claims


def test_a_claims_error_is_a_line_in_the_report_not_a_crash(machine_a, tmp_path):
    text = render(machine_a, tmp_path / "out", None, "Claims could not be evaluated (x.yaml): ValueError: bad")
    assert 'class="error"' in section(text, "claims") and "ValueError: bad" in text
    assert len(images(text)) == 13


def test_evaluate_claims_turns_any_failure_into_an_error_line(machine_a, monkeypatch, capsys):
    import harness

    def boom(claims, results, lossless=None):
        raise RuntimeError("evaluation exploded")

    fake = types.SimpleNamespace(load_claims=lambda path: [], evaluate=boom)
    monkeypatch.setitem(sys.modules, "harness.claims", fake)
    monkeypatch.setattr(harness, "claims", fake, raising=False)
    verdicts, error = report_cmd.evaluate_claims(None, Results(machine_a))
    assert verdicts is None and "RuntimeError: evaluation exploded" in error
    # the command writes the page with the error line, and exits 1 with the reason: never silently 0
    from harness.cli.main import main

    assert main(["report", str(machine_a), "--out", str(machine_a.parent / "exploded")]) == 1
    assert "evaluation exploded" in capsys.readouterr().err
    assert "evaluation exploded" in (machine_a.parent / "exploded" / "index.html").read_text()

    class V:
        def to_dict(self):
            return dict(VERDICTS[0])

    fake.evaluate = lambda claims, results, lossless=None: [V()]
    verdicts, error = report_cmd.evaluate_claims(None, Results(machine_a))
    assert error is None and verdicts[0]["verdict"] == "reproduced"


def test_cli_writes_the_report_and_a_json_summary(machine_a, tmp_path):
    proc = ternbench("report", str(machine_a), "--out", str(tmp_path / "out"), "--json")
    summary = json.loads(proc.stdout)
    assert summary["path"] == str(tmp_path / "out" / "index.html")
    assert summary["points"] == {"ok": 24, "failed": 0, "skipped": 0, "not_finished": 0}
    # the claims come from harness.claims when it works; otherwise the page says why
    assert summary["claims"] or summary["claims_error"]
    text = (tmp_path / "out" / "index.html").read_text()
    assert_self_contained(text)
    plain = ternbench("report", str(machine_a), "--out", str(tmp_path / "out2"))
    lines = plain.stdout.splitlines()
    assert lines[0] == f"report: {tmp_path / 'out2' / 'index.html'}"
    # one line per claim: the verdict (qualified by whose figures), the claim, the published range
    assert any(line.strip().startswith("unreliable: weak baseline (by ternbench's runtime")
               and "x86-speedup-2-threads: published 2.64x-6.46x" in line for line in lines[1:])
    # on this 2-CPU machine all threads are 2: the all-threads claim has its own verdict on the same points
    assert any(line.strip().startswith("unreliable: weak baseline (by ternbench's runtime")
               and "x86-speedup: published 2.37x-6.17x" in line for line in lines[1:])


def test_cli_broken_claims_file_exits_2_naming_file_and_line(machine_a, tmp_path):
    bad = tmp_path / "claims.yaml"
    bad.write_text("claims: [unclosed\n")
    proc = ternbench("report", str(machine_a), "--out", str(tmp_path / "out"), "--claims", str(bad), check=False)
    assert proc.returncode == 2 and "claims.yaml: line 2: invalid YAML" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("make", ["missing", "empty_dir", "not_a_dir"])
def test_cli_bad_results_directory_exits_2_with_one_line(tmp_path, make):
    target = tmp_path / "r"
    if make == "empty_dir":
        target.mkdir()
    elif make == "not_a_dir":
        target.write_text("x")
    proc = ternbench("report", str(target), "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("ternbench report: error:")
    assert not (tmp_path / "out").exists()


def test_cli_missing_claims_file_exits_2(machine_a, tmp_path):
    proc = ternbench("report", str(machine_a), "--claims", str(tmp_path / "nope.yaml"), check=False)
    assert proc.returncode == 2 and "nope.yaml" in proc.stderr


def test_default_out_is_reports_and_the_directory_name(tmp_path):
    (tmp_path / "default-20261124-101500").mkdir()
    (tmp_path / "latest").symlink_to("default-20261124-101500")
    assert report_cmd.default_out(tmp_path / "latest") == Path("reports/default-20261124-101500")
    assert report_cmd.default_out(tmp_path / "latest", tmp_path / "x", prefix="compare-") == \
        Path("reports/compare-default-20261124-101500-x")


def test_partial_results_give_no_data_not_a_crash(tmp_path):
    records = [ok_record("125M", "i2s", 1, "tg32", 500.0, provenance=None),
               ok_record("125M", "tq1", 1, "tg32", 400.0, provenance=None),
               failed_record("125M", "i2s", 1, "pp128", "a worker process was killed by SIGILL")]
    skipped = [{"key": "700M/i2s+int8/avx512vnni/t1/tg32", "reason": "needs 9 GB, 4 GB available"}]
    d = make_results(tmp_path / "partial", records, energy=None, baseline=None, skipped=skipped,
                     planned=["125M/tq1+int8/avx512vnni/t1/pp128"])
    text = render(d, tmp_path / "out")
    assert_self_contained(text)
    assert "no data: no prompt-processing point" in section(text, "speed")
    speedup = section(text, "speedup")
    assert "no data: this sweep names no baseline format" in speedup
    assert "no data: every point ran at the same thread count" in speedup
    assert "no data: this sweep recorded no energy figures" in section(text, "energy")
    assert "no energy.json" in section(text, "system")
    tables = section(text, "tables")
    assert "a worker process was killed by SIGILL" in tables and "needs 9 GB, 4 GB available" in tables
    assert "125M/tq1+int8/avx512vnni/t1/pp128" in tables and "--resume" in tables
    assert len(images(text)) == 2          # tokens/s and bandwidth for tg32
    assert "no data: no claims were evaluated" in section(text, "claims")


def test_nothing_finished_still_renders(tmp_path):
    d = make_results(tmp_path / "none", [failed_record("125M", "f16", 1, "tg32", "killed")], energy=None,
                     fp={})
    text = render(d, tmp_path / "out")
    assert "no data: no point finished" in section(text, "tables") and "killed" in text
    assert "no sysinfo.json" in section(text, "system")
    assert images(text) == []


def test_no_skipped_point_is_not_called_every_point_ran(tmp_path):
    """With points planned but not run, "none skipped" must not read as "everything ran"."""
    d = make_results(tmp_path / "half", [ok_record("125M", "i2s", 1, "tg32", 500.0)], energy=None,
                     planned=["125M/f16+f16/avx512vnni/t1/tg32"])
    tables = section(render(d, tmp_path / "out"), "tables")
    assert "none: the plan skipped no point" in tables and "every planned point ran" not in tables
    assert "125M/f16+f16/avx512vnni/t1/tg32" in tables and "Planned but not run" in tables


def test_a_baseline_that_never_finished_and_a_checkpoint_label(tmp_path):
    records = [ok_record("125M", "i2s", t, "tg32", 500.0 * t) for t in (1, 2)]
    records += [ok_record("my-checkpoint", "i2s", t, "tg32", 90.0 * t) for t in (1, 2)]
    text = render(make_results(tmp_path / "r", records), tmp_path / "out")
    assert "no data: no f16 baseline point finished" in section(text, "speedup")
    assert "Not on the model-size plots (not a preset, so no parameter count): my-checkpoint" in text
    assert "my-checkpoint" in section(text, "tables")


def test_measured_and_estimated_energy_are_never_plotted_together(tmp_path):
    records = sweep_records(tests=("tg32",), threads=(1,))
    for r in records:
        if r["model"] == "700M":
            r["energy"] = dict(r["energy"], measured=True, provenance=MEASURED)
    ctx = single.context(Results(make_results(tmp_path / "r", records)))
    titles = [f["title"] for f in ctx["energy"]["figures"]]
    assert titles == ["Energy per token (ESTIMATED): generation (tg32)",
                      "Energy reduction vs f16 (ESTIMATED): generation (tg32)",
                      "Energy per token (measured): generation (tg32)",
                      "Energy reduction vs f16 (measured): generation (tg32)"]
    assert any("more than one provenance" in n for n in ctx["energy"]["notes"])


# --- hostile strings --------------------------------------------------------------------------

def test_hostile_strings_are_escaped_everywhere(tmp_path):
    fp = fingerprint(cpu=HOSTILE)
    fp["notes"] = [HOSTILE]
    records = sweep_records(models=("125M",), tests=("tg32",))
    records += [ok_record(HOSTILE, f, t, "tg32", 100.0 * t * GAIN[f]) for f in ("i2s", "f16") for t in (1, 2)]
    records.append(failed_record("125M", "tq1", 4, "tg32", HOSTILE + " \x1b[31mred\x1b[0m\x00"))
    skipped = [{"key": HOSTILE, "reason": HOSTILE}]
    d = make_results(tmp_path / "h", records, fp=fp, skipped=skipped, config=f"name: x\nmodels: ['{HOSTILE}']\n")
    claims = [dict(VERDICTS[0], title=HOSTILE, differences=[HOSTILE], measured=HOSTILE)]
    text = render(d, tmp_path / "out", claims, HOSTILE)
    other = make_results(tmp_path / "h2", records, fp=fingerprint(cpu="Other CPU"))
    path, _ = write_compare([Results(d), Results(other)], tmp_path / "cmp")
    for page in (text, Path(path).read_text()):
        assert "<script" not in page.lower() and "\x1b" not in page and "\x00" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&amp;&#39;$x^" in page
        assert_self_contained(page)
    for part in ("claims", "system", "tables"):
        assert "&lt;script&gt;alert(1)" in section(text, part), part


# --- compare ----------------------------------------------------------------------------------

@pytest.fixture
def two_machines(tmp_path):
    a = make_results(tmp_path / "epyc", sweep_records(provenance=MEASURED)
                     + [ok_record("125M", "i2s", 4, "tg32", 900.0, provenance=MEASURED)],
                     energy="measured", fp=fingerprint("AMD EPYC 9654", cores=4))
    b_records = sweep_records(variant="neon", scale=0.5, provenance=MEASURED)
    b_records.append(failed_record("700M", "tq1", 2, "pp128", "killed by SIGILL", variant="neon"))  # supersedes
    b = make_results(tmp_path / "graviton", b_records, energy="measured",
                     fp=fingerprint("Neoverse-V2", arch="arm", variants=("neon", "scalar")),
                     skipped=[{"key": "125M/i2s+int8/neon/t4/tg32", "model": "125M", "format": "i2s",
                               "head_format": "int8", "threads": 4, "test": "tg32", "reason": "more threads than CPUs"}])
    c = make_results(tmp_path / "laptop", sweep_records(scale=0.8), energy="estimated",
                     fp=fingerprint("Test Laptop CPU"))
    return a, b, c


def test_compare_matches_points_across_variants(two_machines, tmp_path):
    a, b, _ = two_machines
    ctx = compare.context([Results(a), Results(b)])
    assert ctx["labels"] == ["epyc", "graviton"]
    assert len(ctx["shared"]) == 24
    row = next(r for r in ctx["shared"] if (r["model"], r["format"], r["threads"], r["test"]) == ("125M", "i2s", 1, "tg32"))
    first, second = row["cells"]
    assert (first["variant"], second["variant"]) == ("avx512vnni", "neon")
    assert first["ratio"] == pytest.approx(1.0) and second["ratio"] == pytest.approx(0.5)
    assert second["per_thread"] == pytest.approx(second["tps"])
    assert second["j_ratio"] == pytest.approx(2.0 * 33.0 / 33.0)     # both measured: a ratio
    failed = next(r for r in ctx["shared"] if (r["model"], r["format"], r["threads"], r["test"]) == ("700M", "tq1", 2, "pp128"))
    assert failed["cells"][1] == {"status": "failed", "reason": "failed: killed by SIGILL", "variant": "neon"}
    only = {o["key"]: o for o in ctx["only_one"]}
    assert list(only) == ["125M/i2s+int8/avx512vnni/t4/tg32"]
    assert only["125M/i2s+int8/avx512vnni/t4/tg32"]["elsewhere"] == ["graviton: skipped (more threads than CPUs)"]
    top = next(r for r in ctx["top"] if (r["model"], r["format"], r["test"]) == ("125M", "i2s", "tg32"))
    assert [c["threads"] for c in top["cells"]] == [4, 2]
    assert len(ctx["figures"]["tps"]) == 2 and len(ctx["figures"]["bw"]) == 1


def test_compare_never_divides_measured_by_estimated_energy(two_machines):
    a, _, c = two_machines
    ctx = compare.context([Results(a), Results(c)])
    cells = [row["cells"][1] for row in ctx["shared"]]
    assert all(cell["j"] is not None and cell["estimated"] for cell in cells)
    assert all(cell["j_ratio"] is None for cell in cells)
    assert all(cell["ratio"] is not None for cell in cells)


@pytest.mark.slow
def test_compare_cli_writes_a_self_contained_page(two_machines, tmp_path):
    a, b, c = two_machines
    proc = ternbench("compare", str(a), str(b), str(c), "--out", str(tmp_path / "cmp"), "--json")
    summary = json.loads(proc.stdout)
    assert [m["label"] for m in summary["machines"]] == ["epyc", "graviton", "laptop"]
    assert [m["energy"] for m in summary["machines"]] == ["measured", "measured", "ESTIMATED"]
    assert summary["only_one_machine"] == 1
    text = (tmp_path / "cmp" / "index.html").read_text()
    assert_self_contained(text)
    assert len(images(text)) == 3
    for needle in ("AMD EPYC 9654", "Neoverse-V2", "neon", "avx512vnni", "killed by SIGILL", "vs epyc",
                   "125M/i2s+int8/avx512vnni/t4/tg32", "not all of one kind"):
        assert needle in text, needle


def test_compare_needs_two_directories(machine_a, tmp_path):
    proc = ternbench("compare", str(machine_a), check=False)
    assert proc.returncode == 2 and "at least two" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = ternbench("compare", str(machine_a), str(tmp_path / "nope"), check=False)
    assert proc.returncode == 2 and "nope" in proc.stderr


def test_compare_same_directory_names_are_told_apart(tmp_path):
    a = make_results(tmp_path / "x" / "run", sweep_records(tests=("tg32",)))
    b = make_results(tmp_path / "y" / "run", sweep_records(tests=("tg32",), scale=2))
    ctx = compare.context([Results(a), Results(b)])
    assert ctx["labels"] == ["run #1", "run #2"]


# --- the real sweep on this machine -----------------------------------------------------------

# All threads only: at 1 thread the bandwidth probes around each point take twice as long, and
# the thread-scaling plots are drawn from the synthetic sweeps above.
REAL_SWEEP = """\
models: [125M]
formats: [i2s, f16]
threads: [max]
workloads:
  generation: [8]
repetitions: 3
warmups: 1
processes: 1
energy: {idle_seconds: 0.3}
"""


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory):
    """A real sweep of a tiny model on this machine, run once for the tests that read one."""
    from test_sweep_config import write

    d = tmp_path_factory.mktemp("real")
    cfg = write(d, REAL_SWEEP, "sweep.yaml")
    ternbench("run", str(cfg), "--out", str(d / "run"), "-q")
    return d / "run"


@pytest.fixture
def real_run(real_sweep, tmp_path):
    return Path(shutil.copytree(real_sweep, tmp_path / "run"))


def test_real_default_sweep(real_run, tmp_path):
    results = Results(real_run)
    text = render(real_run, tmp_path / "out", VERDICTS)
    assert_self_contained(text)
    n = len(results.records)
    assert section(text, "tables").count("<tr>") == 1 + n
    tests = {r["test"] for r in results.records}
    several_threads = len({r["threads"] for r in results.records}) > 1
    # per test: tokens/s by size, speed-up by size (+ by threads, thread scaling), J/token and
    # energy reduction; and bandwidth per generation test
    expected = len(tests) * (2 + 2 * several_threads + 2) + sum(t.startswith("tg") for t in tests)
    assert len(images(text)) == expected
    compare_path, summary = write_compare([results, Results(real_run)], tmp_path / "cmp")
    assert summary["shared_points"] == n and summary["only_one_machine"] == 0
    assert_self_contained(Path(compare_path).read_text())


# --- in a browser -----------------------------------------------------------------------------

CHROMIUM_HELP = ("headless Chromium is needed for the report tests and was not found (looked for /usr/bin/chromium "
                 "and `chromium` on PATH). Install it: `sudo apt-get install chromium` (Debian/Ubuntu), "
                 "or `make browser` as root, which `make test` runs.")

# Injected first into a copy of the page: records script errors, failed loads (capture phase:
# they do not bubble), CSP violations and console.error/warn; after `load`, posts them, the
# state of every image and the page's width to the frame page around it.
PROBE = """<script>(function(){var E=[];function rec(m){E.push(String(m))}
addEventListener('error',function(e){rec(e.message||('failed to load: '+String((e.target&&(e.target.src||e.target.href))||'?').slice(0,60)))},true);
addEventListener('unhandledrejection',function(e){rec('unhandled rejection: '+e.reason)});
document.addEventListener('securitypolicyviolation',function(e){rec('CSP: '+e.violatedDirective+' '+e.blockedURI)});
['error','warn'].forEach(function(k){var o=console[k];console[k]=function(){rec('console.'+k+': '+[].join.call(arguments,' '));return o.apply(console,arguments)}});
addEventListener('load',function(){var im=[].slice.call(document.images);parent.postMessage(JSON.stringify({errors:E,images:im.length,
broken:im.filter(function(i){return !(i.complete&&i.naturalWidth>0)}).length,
scrollWidth:document.documentElement.scrollWidth,innerWidth:innerWidth,glance:(function(){
var g=document.getElementById('glance');if(!g)return null;var t=g.querySelector('table');
var sb=document.getElementById('side-by-side');
return {top:g.getBoundingClientRect().top,tableTop:t?t.getBoundingClientRect().top:null,
sideBySideBottom:sb?sb.nextElementSibling.getBoundingClientRect().bottom:null,
clipped:[].slice.call(g.querySelectorAll('.scroll')).some(function(s){return s.scrollWidth>s.clientWidth+1})}})()}),'*')})})();</script>"""

# Headless Chromium's window is at least 500 px wide whatever --window-size says (only
# --screenshot emulates a narrower one), so the page is measured in a 412 px wide frame, and
# the frame page writes what the probe posts into its DOM, which --dump-dom prints.
FRAME = """<!DOCTYPE html><html><body style="margin:0"><script>addEventListener('message',function(e){
var p=document.createElement('pre');p.id='tb-probe';p.textContent=e.data;document.body.appendChild(p)})</script>
<iframe src="PAGE" style="border:0;width:WIDTHpx;height:HEIGHTpx"></iframe></body></html>"""


CHROMIUM = "/usr/bin/chromium"


def chromium() -> str:
    """Never a skip: a report test that silently did not run would pass for a broken page."""
    for candidate in (CHROMIUM, shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail(CHROMIUM_HELP, pytrace=False)


def test_without_chromium_the_browser_tests_fail_and_say_how_to_install_it(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        chromium()


def run_chromium(tmp_path, page: Path, *args) -> subprocess.CompletedProcess:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    # --no-sandbox: the tests may run as root (CI containers), where Chromium's sandbox refuses to start
    cmd = [chromium(), "--headless=new", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0",
           "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", "--window-size=412,900",
           *args, page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def console_lines(stderr: str) -> list[str]:
    """Chromium's log of the page's console (every message: a page without script has none)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def browser_errors(tmp_path, page: Path, width: int = 412, height: int = 900) -> tuple[list[str], dict]:
    """Loads a copy of PAGE with the probe injected, in a frame of that size (a phone's, by
    default); (errors, the probe's record)."""
    text = page.read_text()
    # the probe is an inline script: the copy's CSP lets it (and only it, as the page has none) run
    text = text.replace("default-src 'none'", "default-src 'none'; script-src 'unsafe-inline'")
    at = text.index(">", text.lower().index("<head")) + 1
    probed = page.with_name(page.stem + "-probed.html")
    probed.write_text(text[:at] + PROBE + text[at:])
    frame = page.with_name(page.stem + "-frame.html")
    frame.write_text(FRAME.replace("PAGE", probed.name).replace("WIDTH", str(width)).replace("HEIGHT", str(height)))
    proc = run_chromium(tmp_path, frame, "--virtual-time-budget=5000", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r'<pre id="tb-probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"the probe did not report (page did not load?):\n{proc.stdout[-500:]}\n{proc.stderr[-2000:]}"
    probe = json.loads(html.unescape(m.group(1)))
    errors = probe["errors"] + console_lines(proc.stderr)
    if probe["broken"]:
        errors.append(f"{probe['broken']} of {probe['images']} images did not decode")
    return errors, probe


def screenshot(tmp_path, page: Path) -> tuple[Path, list[str]]:
    """A 412x900 screenshot of the page as it is (no probe), and its console lines."""
    shot = tmp_path / (page.parent.name + "-narrow.png")
    proc = run_chromium(tmp_path, page, f"--screenshot={shot}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return shot, console_lines(proc.stderr)


def assert_good_screenshot(shot: Path) -> None:
    from PIL import Image

    assert shot.is_file() and shot.read_bytes().startswith(PNG_MAGIC), "no screenshot written"
    with Image.open(shot) as im:
        assert im.size == (412, 900)
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    # a blank or error page has a handful of colours; text and a plot have hundreds
    assert colours is not None and len(colours) > 100, f"screenshot looks blank ({len(colours or [])} colours)"


def test_browser_check_detects_a_broken_page(tmp_path):
    """The detection must work, or the clean result below would prove nothing."""
    broken = tmp_path / "broken" / "index.html"
    broken.parent.mkdir()
    broken.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">"
        "</head><body><p>broken</p><img src='data:image/png;base64,AAAA'>"
        "<img src='http://example.invalid/x.png'>"       # refused by the CSP: never fetched
        "<div style='width:2000px'>wider than a phone</div>"
        "<script>console.error('deliberate'); undefinedFunction();</script></body></html>")
    errors, probe = browser_errors(tmp_path, broken)
    text = "\n".join(errors)
    assert "undefinedFunction is not defined" in text
    assert "console.error: deliberate" in text
    assert "failed to load: data:image/png" in text and "2 of 2 images did not decode" in text
    assert "CSP: img-src http://example.invalid/x.png" in text
    assert probe["innerWidth"] == 412 and probe["scrollWidth"] > 412
    # the unmodified page (its CSP refuses the inline script) is caught from Chromium's log
    _, console = screenshot(tmp_path, broken)
    assert any("Content Security Policy" in line or "CONSOLE" in line for line in console), console

    ok_page = tmp_path / "fine" / "index.html"
    ok_page.parent.mkdir()
    ok_page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><p>fine</p></body></html>")
    assert browser_errors(tmp_path, ok_page)[0] == []


def check_in_browser(tmp_path, page: Path) -> None:
    errors, probe = browser_errors(tmp_path, page)
    assert errors == [], errors
    assert probe["images"] > 0
    # narrow screen: wide tables scroll inside their box; the page itself never scrolls sideways
    assert probe["innerWidth"] == 412 and probe["scrollWidth"] <= probe["innerWidth"], probe
    shot, console = screenshot(tmp_path, page)
    assert console == [], console
    assert_good_screenshot(shot)


@pytest.mark.slow
def test_report_in_a_browser_on_a_narrow_screen(machine_a, tmp_path):
    path, _ = write_single(Results(machine_a), tmp_path / "report", VERDICTS)
    check_in_browser(tmp_path, Path(path))


@pytest.mark.slow
def test_compare_in_a_browser_on_a_narrow_screen(two_machines, tmp_path):
    path, _ = write_compare([Results(d) for d in two_machines], tmp_path / "compare")
    check_in_browser(tmp_path, Path(path))


def test_real_report_in_a_browser(real_run, tmp_path):
    path, _ = write_single(Results(real_run), tmp_path / "real", copy.deepcopy(VERDICTS))
    check_in_browser(tmp_path, Path(path))


def test_the_first_screen_of_a_laptop_answers_the_question(real_run, tmp_path):
    """At 1366 x 768, the verdicts and the first compact table start on the first screen, and
    the compact tables fit the width without scrolling sideways."""
    path, _ = write_single(Results(real_run), tmp_path / "laptop", copy.deepcopy(VERDICTS))
    errors, probe = browser_errors(tmp_path, Path(path), 1366, 768)
    assert errors == [], errors
    g = probe["glance"]
    assert g and g["top"] < 768 and g["tableTop"] is not None and g["tableTop"] < 768, g
    assert g["clipped"] is False, g
    text = Path(path).read_text()
    assert text.index('id="glance"') < text.index('id="claims"') < text.index("<img")
    # a sweep that crosses midnight UTC names the end's date too
    assert re.search(r"measured \d{4}-\d\d-\d\d \d\d:\d\d-(\d{4}-\d\d-\d\d )?\d\d:\d\d UTC \(\d+ min\)", text)


def test_when_names_the_end_date_only_when_the_sweep_crosses_midnight():
    class Run:
        def __init__(self, start, end):
            self.records = [{"started": start, "finished": end}]

    day = datetime.datetime(2026, 12, 6, 23, 50, tzinfo=datetime.timezone.utc).timestamp()
    assert single.when(Run(day, day + 5 * 60)) == "measured 2026-12-06 23:50-23:55 UTC (5 min)"
    assert single.when(Run(day, day + 15 * 60)) == "measured 2026-12-06 23:50-2026-12-07 00:05 UTC (15 min)"


def test_compare_a_sweep_over_several_variants_compares_the_best_one(tmp_path):
    both = sweep_records(tests=("tg32",)) + sweep_records(tests=("tg32",), variant="avx2", scale=0.5)
    a = make_results(tmp_path / "a", both)
    b = make_results(tmp_path / "b", sweep_records(tests=("tg32",), variant="neon"),
                     fp=fingerprint("Neoverse-V2", arch="arm", variants=("neon",)))
    ctx = compare.context([Results(a), Results(b)])
    assert {row["cells"][0]["variant"] for row in ctx["shared"]} == {"avx512vnni"}
    assert len(ctx["not_compared"]) == 12
    assert all(n["key"].split("/")[2] == "avx2" for n in ctx["not_compared"])
    assert {row["series"] for row in ctx["shared"]} == {"i2s", "tq1", "f16"}


def test_energy_ratios_between_machines_need_like_meters():
    def row(prov, measured=True):
        return {"j_per_token": 1.0, "energy_measured": measured, "energy_provenance": prov}

    pkg_dram = row("measured: powercap package-0 + dram-0, sampled every 1 s")
    two_sockets = row("measured: powercap package-0 + package-1 + dram-0 + dram-1, sampled every 1 s")
    pkg_only = row("measured: powercap package-0, sampled every 1 s")
    perf_both = row("measured: perf stat power/energy-pkg/,power/energy-ram/ (package-all + dram-all)")
    assert compare.like_energy(pkg_dram, two_sockets) and compare.like_energy(pkg_dram, perf_both)
    assert not compare.like_energy(pkg_dram, pkg_only)          # package + DRAM against package alone
    est = row("estimated: cpu-time model, 6.075 W per busy core + 27 W idle", measured=False)
    assert compare.like_energy(est, dict(est)) and not compare.like_energy(est, pkg_dram)


# --- the first screen of a measured sweep ----------------------------------------------------------

POWER_W = 132.0   # what the simulated package draws: the meter must read it back


class LivePowercap:
    """A powercap tree whose package counter runs at POWER_W from the moment it starts, as a real
    RAPL zone would; the file is replaced whole each time, so a reader never sees half a number."""

    def __init__(self, root: Path):
        import threading
        import time

        self.zone = root / "intel-rapl:0"
        self.zone.mkdir(parents=True)
        (self.zone / "name").write_text("package-0\n")
        (self.zone / "max_energy_range_uj").write_text("262143328850\n")
        self._t0, self._clock, self._stop = time.monotonic(), time.monotonic, threading.Event()
        self._write()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _write(self):
        uj = int(POWER_W * 1e6 * (self._clock() - self._t0))
        tmp = self.zone / ".energy_uj.tmp"
        tmp.write_text(f"{uj}\n")
        tmp.replace(self.zone / "energy_uj")

    def _run(self):
        while not self._stop.wait(0.002):
            self._write()

    def stop(self):
        self._stop.set()
        self._thread.join()


MEASURED_SWEEP = """\
models: [125M]
formats: [i2s, f16]
threads: [1]
workloads:
  generation: [16, 64]
repetitions: 2
warmups: 1
processes: 3
energy: {backend: powercap, powercap_root: rapl, idle_seconds: 0.5}
"""


@pytest.fixture(scope="module")
def measured_sweep(tmp_path_factory):
    """The sweep a researcher runs first: 125M, i2s against f16, one thread, with energy measured
    from a (simulated) RAPL zone, then reported with the shipped claims."""
    from test_sweep_config import write

    d = tmp_path_factory.mktemp("measured")
    meter = LivePowercap(d / "rapl")
    try:
        ternbench("run", str(write(d, MEASURED_SWEEP, "sweep.yaml")), "--out", str(d / "run"), "-q", timeout=900)
    finally:
        meter.stop()
    proc = ternbench("report", str(d / "run"), "--out", str(d / "report"), "--json")
    return d / "run", d / "report" / "index.html", json.loads(proc.stdout)


@pytest.mark.slow
def test_the_first_screen_gives_every_claim_a_verdict_or_its_reason(measured_sweep, tmp_path):
    run, page, summary = measured_sweep
    for c in summary["claims"]:
        assert c["status"] != "not testable here" or c["short"], c["line"]
        assert c["line"].startswith(c["verdict"])
    text = page.read_text()
    glance = section(text, "glance")
    for c in summary["claims"]:   # its line, or its id and reason on the line it shares with others
        assert c["line"] in html.unescape(glance) or f"{c['id']} (published {c['range']})" in html.unescape(glance) \
            and c["short"] in html.unescape(glance), c
    # 1 thread only: the all-threads claims say what to add, the energy claim what is missing
    lines = {c["id"]: c["line"] for c in summary["claims"]}
    assert "add max to threads" in lines["x86-speedup"] and "add 2 to threads" in lines["x86-speedup-2-threads"]
    errors, probe = browser_errors(tmp_path, page, 1366, 768)
    assert errors == [], errors
    assert probe["glance"]["tableTop"] < 768 and probe["glance"]["clipped"] is False, probe


@pytest.mark.slow
def test_the_first_screen_shows_the_measured_energy_and_only_positive_intervals(measured_sweep):
    run, page, _ = measured_sweep
    frame = Results(run).frame()
    assert (frame.energy_measured == True).all()   # noqa: E712 (a pandas column)
    # the simulated zone's power, read back through the sampler and the timed windows; within 10%:
    # the counter is written every 2 ms by a thread of this process, which lags when the sweep's
    # workers hold both CPUs (126.8 W for 132 W was seen), and a timed window can be ~30 ms
    assert frame.watts.min() == pytest.approx(POWER_W, rel=0.10) and frame.watts.max() == pytest.approx(POWER_W, rel=0.10)
    glance = section(page.read_text(), "glance")
    assert "Energy measured: measured: powercap package-0" in glance and "W average over the timed passes" in glance
    assert "J/token" in glance and "energy reduction (95% CI)" in glance
    # every interval on the page has positive ends; every speed-up has one (3 rounds, paired)
    bounds = [float(x) for pair in re.findall(r"\(([-\d.]+)x?&ndash;([-\d.]+)x?", glance) for x in pair]
    assert bounds and min(bounds) > 0
    i2s = frame[frame.format == "i2s"]
    assert (i2s.speedup_method == "paired").all() and (i2s.speedup_ci95_low > 0).all()
    assert (i2s.speedup_ci95_low <= i2s.speedup).all() and (i2s.speedup <= i2s.speedup_ci95_high).all()
    assert (frame.tps_mean_ci95_low > 0).all()
    assert glance.count(">baseline<") == 2 * 2   # the f16 rows: speed-up and energy reduction columns, two tests



def _engine_record(model, engine, fmt, threads, test, tps, rounds, group=None):
    r = ok_record(model, fmt, threads, test, tps)
    r.update(key=f"{model}/{engine}:{fmt}/t{threads}/{test}", engine=engine,
             group_run=group or f"{model}/t{threads}/{test}", process_tokens_per_s=[tps * x for x in rounds])
    return r


def test_the_first_screen_sets_the_claims_programs_side_by_side(tmp_path):
    """Where the most programs ran (then the largest model, the most threads): llama.cpp's F16 as
    the reference, then each program's fastest ternary format, with tokens/s and the ratio to
    that F16, paired by round when both shared the rounds and said so when not."""
    drift = [1.0, 1.1, 0.9, 1.05]
    records = []
    for model in ("125M", "700M"):
        s = SPEED[model]
        records += [_engine_record(model, "llamacpp", "f16", 2, "tg32", 10 * s, drift),
                    _engine_record(model, "llamacpp", "tq2_0", 2, "tg32", 30 * s, drift),
                    _engine_record(model, "ternbench", "f16", 2, "tg32", 9 * s, drift),
                    _engine_record(model, "ternbench", "tq1", 2, "tg32", 50 * s, drift),
                    _engine_record(model, "ternbench", "i2s", 2, "tg32", 60 * s, [1.0, 1.12, 0.88, 1.05]),
                    # measured in other rounds: its ratio is unpaired, and says so
                    _engine_record(model, "bitnetcpp", "i2_s", 2, "tg32", 35 * s, [1.0, 0.9, 1.1, 1.0], "other")]
    records += [ok_record("700M", "i2s", 1, "tg32", 6.0)]      # one program only: not where to compare
    path, _ = write_single(Results(make_results(tmp_path / "r", records)), tmp_path / "report", copy.deepcopy(VERDICTS))
    sb = single.context(Results(tmp_path / "r"))["side_by_side"]
    assert (sb["model"], sb["threads"], sb["tests"], sb["judged_by"]) == ("700M", 2, ["tg32"], "tg32")
    assert [r["label"] for r in sb["rows"]] == ["llama.cpp f16", "ternbench i2s", "bitnet.cpp i2_s",
                                                "llama.cpp tq2_0"]
    ref, ours, theirs, tq2 = (r["cells"][0] for r in sb["rows"])
    assert sb["rows"][0]["reference"] and ref["ratio"] is None
    assert ours["ratio"].method == "paired" and abs(ours["ratio"].value - 6.0) < 0.05
    assert ours["ratio"].low < 6.0 < ours["ratio"].high and ours["ratio"].low > 0
    assert theirs["ratio"].method == "unpaired" and tq2["ratio"].value == pytest.approx(3.0)
    glance = html.unescape(section(Path(path).read_text(), "glance"))
    assert "The programs side by side: 700M, 2 threads" in glance
    # on a laptop's first screen, under the verdicts of every published claim (the report command
    # judges them all), with their reasons
    proc = ternbench("report", str(tmp_path / "r"), "--out", str(tmp_path / "cli"), "--json")
    assert len(json.loads(proc.stdout)["claims"]) >= 9
    errors, probe = browser_errors(tmp_path, tmp_path / "cli" / "index.html", 1366, 768)
    assert errors == [] and probe["glance"]["sideBySideBottom"] < 768, (errors, probe)
    assert re.search(r"ternbench i2s</td><td class=\"n\">[\d.]+ \([\d.]+–[\d.]+\)</td>\s*<td class=\"n\">[56]\.\d\dx \(", glance)
    assert re.search(r"bitnet.cpp i2_s</td>.*\n.*\d\.\d\dx \([\d.]+x–[\d.]+x, unpaired\)", glance)


def test_the_first_screen_folds_claims_not_testable_for_one_reason_into_one_line():
    arm = "an aarch64 claim; these results are from x86_64: run the sweep on aarch64"
    claims = [{"id": "x86", "verdict": "reproduced", "status": "reproduced", "range": "2x-6x", "line": "reproduced: x86"},
              {"id": "arm-speedup", "verdict": "not testable here", "status": "not testable here",
               "range": "1.37x-5.07x", "short": arm, "line": "not testable here: arm-speedup ..."},
              {"id": "energy", "verdict": "not testable here", "status": "not testable here", "range": "70%",
               "short": "needs measured energy", "line": "not testable here: energy: published 70%; needs ..."},
              {"id": "arm-energy", "verdict": "not testable here", "status": "not testable here",
               "range": "55%-70%", "short": arm, "line": "not testable here: arm-energy ..."}]
    lines = [x["text"] for x in single.claims_section(claims, None)["lines"]]
    assert lines == ["reproduced: x86",
                     f"not testable here: arm-speedup (published 1.37x-5.07x), arm-energy (published 55%-70%); {arm}",
                     "not testable here: energy: published 70%; needs ..."]
