"""`ternbench history add|report|bisect`: every sweep kept by machine and commit, the series
published with their steps, and the commit that made a configuration slower found."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from harness.cli.common import EXIT_FAILURE, EXIT_OK, UsageError, print_json

HELP = """\
A performance history for CI: each commit's sweep added to a store, published as one static page
of every point's tokens/s over commits with its detected steps, and a range of commits bisected
to the first one that is slower.

  ternbench history add RESULTS_DIR [--commit SHA] [--branch NAME]
  ternbench history report [--out DIR]
  ternbench history bisect GOOD BAD CONFIG.yaml

The store is one SQLite file, DIR/history.sqlite: --store DIR, else $TERNBENCH_HISTORY, else
~/.cache/ternbench/history. Several CI jobs may add to one store at once; an add that is killed
leaves nothing behind. See `ternbench history COMMAND --help`."""

ADD_HELP = """\
Add a finished sweep (a results directory written by `ternbench run`, by this or an earlier
version) to the store: every point's record, under its machine (the CPU's name and identity, as
`ternbench check` tells machines apart; --machine to name runners with the same CPU apart), the
commit it measured (recorded in the results; --commit to say another) and the branch. Adding the
same results again changes nothing.

exit status: 0 added (or already there); 2 not a results directory, no commit known, or an
unusable store."""

REPORT_HELP = """\
Write DIR/index.html (default reports/history/): one self-contained page (CSS inline, plots as
embedded PNG images, no script, nothing fetched) with the table of detected steps, the largest
first, each with the commit where it starts and its size; then, per machine, one plot per point
of its median tokens/s over commits with the 95% interval as a band and each step marked.

Steps: log tokens/s split into levels by exact dynamic programming (the ruptures library), the
number of steps chosen by the Schwarz criterion for change points (3 log n per step, the
modified BIC); a step must hold for two commits. Commits are ordered by commit date where git
knew it when they were added, else by when they were measured.

exit status: 0 written; 2 no store, or a bad option."""

BISECT_HELP = """\
Find the first commit between GOOD and BAD (on BAD's first-parent line) whose runtime is slower
than GOOD's, as `asv find` does: build the middle commit's runtime (its own sources and build
script, cached like `check --ab`'s builds under ~/.cache/ternbench/ab), sweep CONFIG with GOOD's
build and that one interleaved in one session, judge the pair with the regression gate's rule
(slower by more than --max-regression and p < --alpha, or a point broken), and halve the range.
With 3 processes or more the pair is judged round by round (a paired t-test on the per-round
ratios); with fewer, on the per-run values, which then need at least 7 per point and side
(repetitions x processes). Set max_processes above processes in CONFIG: a probe whose change is
beyond the threshold but not yet significant then gets more rounds, up to max_processes (on a
shared 2-vCPU machine 12 rounds usually settle a 15% step at p < 0.002, but not when the
neighbours are busy).
About log2(commits) + 1 builds.

Prints the commit, each probe's figures, and how many builds and measurements it took.

exit status: 0 found; 1 no commit in the range is slower than GOOD; 2 bad input (a revision,
the range, the configuration, a build that fails)."""

# `ternbench check`'s defaults: the same gate (asserted equal by tests/test_history.py)
MAX_REGRESSION, ALPHA = "10%", "0.002"


def add_parser(sub):
    p = sub.add_parser("history", help="performance history: add sweeps by commit, report steps, bisect a slowdown",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="verb", metavar="VERB")

    def store_option(q):
        q.add_argument("--store", type=Path, metavar="DIR",
                       help="the store's directory (default: $TERNBENCH_HISTORY, else ~/.cache/ternbench/history)")

    a = verbs.add_parser("add", help="add a results directory to the store", description=ADD_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("results", type=Path, metavar="RESULTS_DIR")
    a.add_argument("--commit", metavar="SHA", help="the commit measured (default: the one the results record)")
    a.add_argument("--branch", metavar="NAME", help="the branch it was measured on (for `report --branch`)")
    a.add_argument("--machine", metavar="LABEL", help="the machine's label (default: its CPU name and identity)")
    a.add_argument("--json", action="store_true", help="print what was added as JSON")
    store_option(a)
    a.set_defaults(run=run_add)

    r = verbs.add_parser("report", help="write the history page", description=REPORT_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--out", type=Path, metavar="DIR", default=Path("reports") / "history",
                   help="where to write index.html (default: reports/history/)")
    r.add_argument("--branch", metavar="NAME", help="only the runs added with this branch")
    r.add_argument("--json", action="store_true", help="print a JSON summary: path, counts, the steps")
    store_option(r)
    r.set_defaults(run=run_report)

    b = verbs.add_parser("bisect", help="find the first commit slower than GOOD", description=BISECT_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("good", metavar="GOOD", help="a commit known to be fast")
    b.add_argument("bad", metavar="BAD", help="a later commit known to be slow")
    b.add_argument("config", type=Path, metavar="CONFIG", help="the sweep configuration to measure (YAML)")
    b.add_argument("--repo", type=Path, metavar="DIR",
                   help="the git checkout whose runtime/ is built (default: this ternbench's own)")
    b.add_argument("--results", type=Path, metavar="DIR",
                   help="where each probe's two results directories go (default: results/bisect-GOOD-BAD)")
    b.add_argument("--max-regression", default=MAX_REGRESSION, metavar="PCT",
                   help=f"as for `ternbench check` (default {MAX_REGRESSION.replace('%', '%%')})")
    b.add_argument("--alpha", default=ALPHA, metavar="P", help=f"as for `ternbench check` (default {ALPHA})")
    b.add_argument("--json", action="store_true", help="print the outcome as JSON (progress stays on stderr)")
    b.set_defaults(run=run_bisect)
    p.set_defaults(run=lambda args: (p.print_help(), 2)[1])


def _store(args, create: bool):
    from harness.history.store import Store, StoreError

    try:
        return Store(args.store, create=create)
    except StoreError as e:
        raise UsageError(str(e)) from None


def run_add(args) -> int:
    from harness.history.store import StoreError

    store = _store(args, create=True)
    try:
        added = store.add(args.results, commit=args.commit, branch=args.branch, machine=args.machine)
    except StoreError as e:
        raise UsageError(str(e)) from None
    finally:
        store.close()
    if args.json:
        print_json({"store": str(store.file), "run": added.run_id, "new": added.new, "machine": added.machine,
                    "config": added.config, "commit": added.commit, "branch": added.branch, "points": added.points})
    else:
        what = "added" if added.new else "already in the store, unchanged"
        print(f"{args.results}: {added.points} point(s) of {added.config} at {added.commit[:12]}"
              f"{f' ({added.branch})' if added.branch else ''} on {added.machine}: {what} ({store.file})")
    return EXIT_OK


def run_report(args) -> int:
    from harness.history import report

    store = _store(args, create=False)
    try:
        path, summary = report.write(store, args.out, args.branch)
    except OSError as e:
        raise UsageError(f"--out {args.out}: cannot write: {e}") from None
    finally:
        store.close()
    if args.json:
        print_json(summary)
    else:
        print(f"history report: {path} ({summary['runs']} run(s), {summary['commits']} commit(s), "
              f"{summary['series']} series, {len(summary['steps'])} step(s))")
        for s in summary["steps"][:10]:
            print(f"  {s['change']:+.1%} at {s['commit'][:12]}: {s['key']} ({s['config']}) on {s['machine']}")
    return EXIT_OK


def run_bisect(args) -> int:
    from harness.cli.check import parse_alpha, parse_percent
    from harness.gate import ab
    from harness.history import bisect
    from harness.sweep.config import ConfigError, load_config
    from harness.sweep.plan import expand

    threshold, alpha = parse_percent(args.max_regression), parse_alpha(args.alpha)
    if args.repo is not None and not (args.repo / ".git").exists():
        raise UsageError(f"--repo {args.repo}: not a git checkout")
    try:
        good = ab.resolve(args.good, args.repo, "GOOD")
        bad = ab.resolve(args.bad, args.repo, "BAD")
    except ab.ABError as e:
        raise UsageError(str(e)) from None
    try:
        config = load_config(args.config)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    plan = expand(config)
    if not plan.points:
        raise UsageError(f"{args.config}: no point of this sweep can run on this machine")
    values = config.repetitions * config.processes
    from harness.gate.regression import MIN_ROUNDS, min_p

    if config.processes < MIN_ROUNDS and min_p(values, values) >= alpha:
        raise UsageError(f"{args.config}: {values} value(s) per point and side (repetitions x processes) can never "
                         f"reach p < {alpha:g} (smallest possible p {min_p(values, values):.3g}); raise them, or "
                         f"run {MIN_ROUNDS} processes or more (judged round by round)")
    out = args.results or Path("results") / f"bisect-{good[:12]}-{bad[:12]}"
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--results {out}: not empty (an earlier bisect?); choose another")
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    try:
        commits = bisect.commit_range(good, bad, args.repo)
    except bisect.BisectError as e:
        raise UsageError(str(e)) from None
    log(f"bisect: {len(commits)} commit(s) after GOOD {good[:12]} up to BAD {bad[:12]}; at most "
        f"{math.ceil(math.log2(len(commits))) + 2} build(s); {len(plan.points)} point(s) per probe; results in {out}")
    try:
        outcome = bisect.bisect(config, plan, good, bad, out, threshold, alpha, args.repo, log)
    except bisect.BisectError as e:
        raise UsageError(str(e)) from None
    if args.json:
        print_json(bisect.to_dict(outcome))
    else:
        print(text(outcome, args.repo))
    return EXIT_OK if outcome.first_slower else EXIT_FAILURE


def text(outcome, repo) -> str:
    from harness.history.bisect import subject

    cost = f"{outcome.builds} build(s), {len(outcome.probes)} A/B session(s), {outcome.measurements} worker process(es)"
    if not outcome.first_slower:
        return (f"no commit after {outcome.good[:12]} up to {outcome.bad[:12]} is slower than GOOD beyond the "
                f"threshold ({cost})")
    probe = outcome.probe(outcome.first_slower)
    lines = [f"first slower commit: {outcome.first_slower} {subject(outcome.first_slower, repo)}",
             f"  against GOOD {outcome.good[:12]}, measured interleaved ({probe.results}):"]
    for c in probe.report.compared:
        lines.append(f"  {c.key}: {c.baseline_median:.4g} -> {c.candidate_median:.4g} tokens/s ({c.change:+.1%}, "
                     f"p {c.p:.2g}): {c.verdict}")
    lines += [f"  {b['key']}: {b['why']}" for b in probe.report.broken]
    lines.append("probes: " + ", ".join(f"{p.commit[:12]} {'slower' if p.slower else 'not slower'}"
                                         for p in outcome.probes))
    lines.append(f"took {cost}")
    return "\n".join(lines)
