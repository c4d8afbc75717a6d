"""`ternbench check BASELINE CANDIDATE`: the CI regression gate, and its three report formats."""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import xml.etree.ElementTree as ET
from functools import partial
from pathlib import Path

from harness.cli.common import EXIT_FAILURE, EXIT_OK, UsageError

HELP = """\
Compare two results directories written by `ternbench run` point by point (points match by
key, e.g. 700M/i2s+int8/avx512vnni/t2/tg32) and fail if the candidate regressed.

The rule (asv's: ratio AND test): change = candidate median / baseline median - 1 of tokens/s;
p from a two-sided Mann-Whitney U test on the raw per-run tokens/s values (exact when the
samples allow it). Two builds measured in shared rounds (--ab, at least 3 processes) are judged
round by round instead: change = the geometric mean of the per-round ratios of process means
- 1, p from a paired t-test on their logs. A point is a regression when it is slower by more
than --max-regression AND p < --alpha; an improvement symmetrically; otherwise unchanged
(within threshold, or not significant). When the threshold is exceeded but the samples are too few for the test ever to
reach p < alpha (3 vs 3 values: smallest p 0.1), the point is inconclusive: it does not fail
the gate, but is listed first and counted in the verdict. Raise repetitions x processes.

A candidate point that crashed, failed or is missing fails the gate: a build that no longer
runs a point has regressed it; these are listed first. Points only in the candidate, and
points that failed only in the baseline, are listed, not judged. Notes say when the CPU (told
apart by vendor, family, model and stepping, not only by name) or the measurement settings differ.

A/B mode (`--ab REV CONFIG.yaml`) measures both sides in one session, as `asv continuous` does:
REV's runtime (built from its own sources and build script) and this checkout's, each point's
processes interleaved in shuffled rounds, so both meet the same drift of a shared machine. The
two results directories land in --results (baseline/, candidate/) and are judged as below.
When the configuration's max_processes exceeds processes, a point gets more rounds (up to
max_processes) while its change is beyond --max-regression but not yet significant.

The defaults (10%, p < 0.002) are asv's, and hold on a shared runner, where run-to-run drift
is several percent: they need at least 7 values per side (smallest exact p at 7 vs 7: 0.0006).

exit status: 0 no regression; 1 a regression, or a broken candidate point; 2 unusable input: not a results
directory, corrupt files, no point in common (or none ok in both), the same model label with
different weights, a different seed, or a bad option."""

VERDICT_NAMES = {"regression": "regression(s)", "improvement": "improvement(s)",
                     "unchanged": "unchanged", "inconclusive": "inconclusive"}


def add_parser(sub):
    p = sub.add_parser("check", help="CI regression gate: compare a candidate results directory with a baseline",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("baseline", type=Path, metavar="BASELINE",
                   help="results directory of the reference run (with --ab: the sweep configuration)")
    p.add_argument("candidate", type=Path, metavar="CANDIDATE", nargs="?",
                   help="results directory of the run under test (not with --ab)")
    p.add_argument("--ab", metavar="REV",
                   help="same-session A/B: build git revision REV's runtime, sweep the configuration BASELINE with "
                        "it and with this checkout's runtime interleaved, then judge the two")
    p.add_argument("--results", type=Path, metavar="DIR",
                   help="with --ab: where the two results directories go (default: results/ab-REV-DATE-TIME)")
    p.add_argument("--max-regression", default="10%", metavar="PCT",
                   help="largest tolerated slowdown in median tokens/s, in percent: 10%% or 10 (0.05 means "
                        "0.05%%); default 10%%, as asv")
    p.add_argument("--alpha", default="0.002", metavar="P",
                   help="significance level of the test, 0 < P < 1 (default 0.002, as asv)")
    p.add_argument("--format", choices=("md", "junit", "json"), default="md",
                   help="report format: Markdown for a CI job summary (default), JUnit XML, or JSON")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="write the report to FILE instead of stdout; a one-line verdict goes to stderr")
    p.set_defaults(run=run)


def parse_percent(text: str) -> float:
    """'5%' or '5' -> 0.05. A plain number is percent too, so one spelling never means two things."""
    number = text.strip()[:-1] if text.strip().endswith("%") else text.strip()
    try:
        value = float(number)
    except ValueError:
        raise UsageError(f"--max-regression: {text!r} is not a percentage like 5% or 5") from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"--max-regression must be a non-negative percentage (got {text!r})")
    return value / 100


def parse_alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise UsageError(f"--alpha must be a number between 0 and 1 (got {text!r})")
    return value


def run(args) -> int:
    from harness.gate import regression as check

    threshold, alpha = parse_percent(args.max_regression), parse_alpha(args.alpha)
    if args.ab:
        if args.candidate is not None:
            raise UsageError("--ab takes one sweep configuration, not two results directories")
        args.baseline, args.candidate = run_ab(args, partial(check.undecided, max_regression=threshold, alpha=alpha))
    elif args.candidate is None:
        raise UsageError("give BASELINE and CANDIDATE results directories, or --ab REV CONFIG.yaml")
    elif args.results:
        raise UsageError("--results goes with --ab")
    try:
        report = check.compare(check.load(args.baseline), check.load(args.candidate), threshold, alpha)
    except check.CheckError as e:
        raise UsageError(str(e)) from None
    status = EXIT_OK if report.passed else EXIT_FAILURE
    text = {"md": markdown, "junit": junit, "json": as_json}[args.format](report, status)
    if args.out:
        try:
            args.out.write_text(text, encoding="utf-8")
        except OSError as e:
            raise UsageError(f"--out {args.out}: cannot write: {e}") from None
        print(f"ternbench check: {verdict(report)} (report: {args.out})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return status


def run_ab(args, undecided) -> tuple[Path, Path]:
    """Sweeps the configuration with REV's runtime and this checkout's, interleaved; more rounds
    (up to max_processes) while undecided(base, candidate) says the verdict is open."""
    import time

    from harness.gate import ab
    from harness.sweep.config import ConfigError, load_config
    from harness.sweep.plan import expand

    try:
        config = load_config(args.baseline)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    try:
        commit = ab.resolve(args.ab)
    except ab.ABError as e:
        raise UsageError(str(e)) from None
    plan = expand(config)
    if not plan.points:
        raise UsageError(f"{args.baseline}: no point of this sweep can run on this machine")
    out = args.results or Path("results") / f"ab-{commit[:12]}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (out / "baseline" / "points.jsonl").exists():
        raise UsageError(f"{out} already holds an A/B run; choose another --results")
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    log(f"A/B: {args.ab} ({commit[:12]}, baseline) against this checkout (candidate), {len(plan.points)} point(s), "
        f"interleaved; results in {out}")
    try:
        return ab.run(config, plan, commit, out, log=log, undecided=undecided)
    except ab.ABError as e:
        raise UsageError(str(e)) from None


def verdict(report) -> str:
    return f"{'PASS' if report.passed else 'FAIL'}: {summary(report)}"


def summary(report) -> str:
    counts = ", ".join(f"{report.count(v)} {name}" for v, name in VERDICT_NAMES.items())
    rule = f"slower by more than {report.max_regression * 100:g}% at p < {report.alpha:g}"
    out = f"{report.count('regression')} point(s) {rule}; {len(report.compared)} compared ({counts})"
    if report.broken:
        out = f"{len(report.broken)} candidate point(s) crashed, failed or missing; " + out
    if report.underpowered:
        out += f"; WARNING: {len(report.underpowered)} point(s) with too few values for the test to ever be significant"
    return out


# --- Markdown ---------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|])")


def md(text) -> str:
    """Plain text for a Markdown table cell: the job summary renders HTML, so < > & become
    entities; | would end the cell; newlines would end the row."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", " ".join(s.splitlines()))


def markdown(report, status: int) -> str:
    lines = [f"## ternbench check: {'PASS' if report.passed else 'FAIL'}", "",
             md(summary(report)), "",
             f"baseline: {md(_describe(report.baseline))}  ", f"candidate: {md(_describe(report.candidate))}", ""]
    if report.broken:
        lines += ["> [!CAUTION]", "> Broken in the candidate (each fails the gate):"]
        lines += [f"> - {md(b['key'])}: {md(b['why'])}" for b in report.broken]
        lines.append("")
    inconclusive = [c for c in report.compared if c.verdict == "inconclusive"]
    if inconclusive:
        lines += ["> [!WARNING]", "> Inconclusive (not counted as regressions; raise repetitions x processes):"]
        lines += [f"> - {md(c.key)}: {md(c.why)}" for c in inconclusive]
        lines.append("")
    lines += ["| point | baseline tok/s | candidate tok/s | change | p | verdict |", "|---|--:|--:|--:|--:|---|"]
    for c in report.compared:
        mark = f"**{c.verdict}**" if c.verdict in ("regression", "inconclusive") else c.verdict
        lines.append(f"| {md(c.key)} | {c.baseline_median:.2f} (n={c.baseline_n} {c.unit}) | "
                     f"{c.candidate_median:.2f} (n={c.candidate_n} {c.unit}) | {c.change:+.1%} | {c.p:.2g} | {mark}: {md(c.why)} |")
    for title, items in (("Only in the baseline", report.only_baseline),
                         ("Only in the candidate", report.only_candidate)):
        if items:
            lines += ["", f"### {title} (not compared)", ""]
            lines += [f"- {md(i['key'])}" + (f": failed: {md(i['reason'])}" if i["reason"] else "") for i in items]
    if report.failed:
        lines += ["", "### Failed points (not compared; a candidate failure fails the gate, above)", ""]
        lines += [f"- {md(f['key'])}: {md(_failure(f))}" for f in report.failed]
    if report.notes:
        lines += ["", "### Notes", ""] + [f"- {md(n)}" for n in report.notes]
    return "\n".join(lines) + "\n"


def _describe(side) -> str:
    m = side.manifest.get("machine") or {}
    bits = [f"{k} {m[k]}" for k in ("cpu", "ternbench_commit", "runtime_build") if m.get(k)]
    return f"{side.path} ({len(side.points)} points" + "".join(f"; {b}" for b in bits) + ")"


def _failure(f: dict) -> str:
    return "; ".join(f"{side} failed: {f[side]}" for side in ("baseline", "candidate") if f[side])


# --- JUnit XML --------------------------------------------------------------------------------

# characters XML 1.0 cannot hold at all, escaped or not (a failed point's reason may carry
# terminal escapes from a worker's log)
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def x(text) -> str:
    return _XML_INVALID.sub("\ufffd", str(text))


def junit(report, status: int) -> str:
    suite = ET.Element("testsuite", name="ternbench check", errors="0")
    props = ET.SubElement(suite, "properties")
    for name, value in (("baseline", report.baseline.path), ("candidate", report.candidate.path),
                        ("max_regression", f"{report.max_regression:.6g}"), ("alpha", f"{report.alpha:g}")):
        ET.SubElement(props, "property", name=name, value=x(value))
    skipped = 0

    def case(key):
        return ET.SubElement(suite, "testcase", classname="ternbench.check", name=x(key), time="0")

    for c in report.compared:
        tc = case(c.key)
        numbers = (f"{c.key}: {c.verdict}: {c.why}; median {c.baseline_median:.4g} -> {c.candidate_median:.4g} "
                   f"tokens/s ({c.change:+.1%}), {c.method} on {c.baseline_n} vs {c.candidate_n} {c.unit}")
        if c.verdict == "regression":
            ET.SubElement(tc, "failure", type="regression", message=x(numbers)).text = x(numbers)
        else:
            if c.verdict == "inconclusive":
                ET.SubElement(tc, "skipped", message=x(numbers))
                skipped += 1
            ET.SubElement(tc, "system-out").text = x(numbers)
    for b in report.broken:
        ET.SubElement(case(b["key"]), "failure", type="broken", message=x(b["why"])).text = x(b["why"])
    others = [(f["key"], f"not compared: {_failure(f)}") for f in report.failed if not f["candidate"]]
    others += [(i["key"], "only in the candidate" + (f"; failed: {i['reason']}" if i["reason"] else ""))
               for i in report.only_candidate]
    for key, message in others:
        ET.SubElement(case(key), "skipped", message=x(message))
    skipped += len(others)
    suite.set("tests", str(len(report.compared) + len(others) + len(report.broken)))
    suite.set("failures", str(report.count("regression") + len(report.broken)))
    suite.set("skipped", str(skipped))
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def as_json(report, status: int) -> str:
    return json.dumps(report.to_dict() | {"exit_status": status}, indent=2) + "\n"
