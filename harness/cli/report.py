"""`ternbench report RESULTS_DIR`: one self-contained HTML page of a sweep, its claim verdicts first."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import harness
from harness.cli.common import EXIT_FAILURE, EXIT_OK, UsageError, print_json

DEFAULT_CLAIMS = Path(harness.ROOT) / "configs" / "claims" / "bitnet-cpp.yaml"

HELP = """\
Write DIR/index.html (default reports/<results directory name>/): a single self-contained page
(CSS inline, plots as embedded PNG images, no script, nothing fetched from the network) with,
in order:
  1. the published claims and whether this sweep reproduces them (--claims FILE for others;
     --lossless FILE, the output of `ternbench lossless --json`, for the lossless claim);
  2. the machine fingerprint and how energy was obtained (measured or ESTIMATED, and why);
  3. tokens/s against model size, for prompt processing and for generation;
  4. speed-up over the baseline against model size and threads, and thread scaling;
  5. J/token and energy reduction, each provenance plotted on its own;
  6. achieved bandwidth as a fraction of the measured read bandwidth (generation);
  7. every point: mean, 95% CI, n, median, speed-up, J/token, bandwidth; skipped and failed points.
Partial results (failed or skipped points, no baseline, no energy) give "no data" where a
section has nothing to show. A claims file that cannot be evaluated is reported in the page.
A fleet directory (`ternbench fleet run`: one results directory per machine) gets the page of
`ternbench compare` across its machines, each machine's claims judged on its own points.

exit status: 0 written; 1 written, but the claims could not be evaluated (the reason is on
stderr and in the page); 2 not a results directory, or a bad option."""


def add_parser(sub):
    p = sub.add_parser("report", help="self-contained HTML report of a results directory, claims first",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, metavar="RESULTS_DIR", help="a results directory written by `ternbench run`")
    p.add_argument("--out", type=Path, metavar="DIR", help="where to write index.html (default: reports/<name>/)")
    p.add_argument("--claims", type=Path, metavar="FILE",
                   help=f"claims to check (default: {DEFAULT_CLAIMS.relative_to(harness.ROOT)})")
    p.add_argument("--lossless", type=Path, metavar="FILE",
                   help="the output of `ternbench lossless --json`, for the lossless claim")
    p.add_argument("--json", action="store_true", help="print a JSON summary (path, counts, claim verdicts)")
    p.set_defaults(run=run)


def load_results(path: Path):
    """A results directory read back, with its table built, or UsageError in one line."""
    from harness.fleet.layout import machine_dirs
    from harness.sweep.results import Results, ResultsError

    if machine_dirs(path):
        raise UsageError(f"{path} holds one results directory per machine (a fleet run), not one sweep: "
                         f"`ternbench compare {path}` reports them side by side")
    try:
        results = Results(path)
        results.frame()   # a malformed record fails here, not halfway through the page
    except ResultsError as e:
        raise UsageError(str(e)) from None
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{path}: points.jsonl holds a malformed record ({type(e).__name__}: {e})") from None
    return results


def read_lossless(path: Path | None) -> dict | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"--lossless {path}: not readable as JSON: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--lossless {path}: not the output of `ternbench lossless --json` (not an object)")
    return data


def evaluate_claims(path: Path | None, results, lossless: dict | None = None) -> tuple[list[dict] | None, str | None]:
    """(verdict dicts, None), or (None, an error line for the page). Claims are checked by
    harness.claims; whatever goes wrong there is shown in the report instead of losing the report."""
    try:
        from harness import claims
    except ImportError as e:
        return None, f"Claims not evaluated: harness.claims cannot be imported ({e})."
    path = path or DEFAULT_CLAIMS
    try:
        loaded = claims.load_claims(path)
    except claims.ClaimsError as e:   # the user's own file: a usage error, not a page note
        raise UsageError(str(e)) from None
    try:
        verdicts = claims.evaluate(loaded, [results], lossless)
        return [v.to_dict() for v in verdicts], None
    except Exception as e:   # noqa: BLE001 -- any failure in the claims must leave the rest of the report
        return None, f"Claims could not be evaluated ({path}): {type(e).__name__}: {e}"


def default_out(*paths: Path, prefix: str = "") -> Path:
    # resolve: `results/latest` names the directory it points at
    return Path("reports") / (prefix + "-".join(p.resolve().name or "results" for p in paths))


def write_machines(paths: list[Path], out: Path, claims_path: Path | None, lossless: dict | None = None):
    """The page across machines (`compare`, and `report` on a fleet directory), each machine's
    claims judged on its own points; returns (path, the --json summary)."""
    from harness.report import write_compare

    results = [load_results(p) for p in paths]
    claims = [evaluate_claims(claims_path, r, lossless) for r in results]
    try:
        return write_compare(results, out, claims)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot write: {e}") from None


def run_fleet(args, machines: list[Path], lossless: dict | None) -> int:
    """A fleet directory: one page across its machines, as `ternbench compare` writes it."""
    path, summary = write_machines(machines, args.out or default_out(args.results, prefix="compare-"), args.claims,
                                   lossless)
    errors = [f"{m['label']}: {m['claims_error']}" for m in summary["machines"] if m["claims_error"]]
    if args.json:
        print_json(summary)
    else:
        print(f"report: {path}")
        for m in summary["machines"]:
            for c in m["claims"] or []:
                print(f"  {m['label']}: {c['line']}")
    for e in errors:
        print(f"ternbench report: error: {e}", file=sys.stderr)
    return EXIT_FAILURE if errors else EXIT_OK


def run(args) -> int:
    from harness.fleet.layout import machine_dirs
    from harness.report import write_single

    if args.claims is not None and not args.claims.is_file():
        raise UsageError(f"--claims {args.claims}: no such file")
    lossless = read_lossless(args.lossless)
    machines = machine_dirs(args.results)
    if len(machines) > 1:
        return run_fleet(args, machines, lossless)
    results = load_results(machines[0] if machines else args.results)
    verdicts, error = evaluate_claims(args.claims, results, lossless)
    out = args.out or default_out(args.results)
    try:
        path, summary = write_single(results, out, verdicts, error)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot write: {e}") from None
    status = EXIT_FAILURE if error else EXIT_OK   # the page is written, but a verdict is missing
    if args.json:
        print_json(summary)
        if error:
            print(f"ternbench report: error: {error}", file=sys.stderr)
        return status
    print(f"report: {path}")
    for v in verdicts or []:
        print(f"  {v['line']}")
    if error:
        print(f"ternbench report: error: {error}", file=sys.stderr)
    return status
