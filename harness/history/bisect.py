"""`history bisect GOOD BAD CONFIG`, as `asv find` does: the first commit between GOOD and BAD
whose points are slower than GOOD's, found by halving the range.

Each probe builds the commit's runtime into the A/B build cache (gate/ab.py: its own sources and
build script, built once per commit) and measures it against GOOD's build in one session, each
point's processes of the two builds interleaved in shuffled rounds, as `check --ab` does. The
two are judged by the regression gate (gate/regression.py): a probe is slower when some point is
a regression beyond its threshold and significance, or broken. So the search assumes what asv's
does: once slower, the commits after stay slower."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from harness.gate import ab, regression


class BisectError(Exception):
    """A range or a build that cannot be bisected: the message says which and why."""


@dataclass
class Probe:
    commit: str
    slower: bool
    report: regression.Report
    results: Path


@dataclass
class Outcome:
    good: str
    bad: str
    commits: list[str]                      # the range after GOOD, oldest first, BAD last
    first_slower: str | None = None         # None: no commit in the range is slower than GOOD
    probes: list[Probe] = field(default_factory=list)
    builds: int = 0                         # runtimes compiled (the cached ones not counted)
    measurements: int = 0                   # worker processes run, both builds of every probe

    def probe(self, commit: str) -> Probe | None:
        return next((p for p in self.probes if p.commit == commit), None)


def commit_range(good: str, bad: str, repo=None) -> list[str]:
    """The commits after GOOD up to BAD on BAD's first-parent line, oldest first."""
    try:
        ab._git("merge-base", "--is-ancestor", good, bad, repo=repo)
    except ab.ABError:
        raise BisectError(f"GOOD {good[:12]} is not an ancestor of BAD {bad[:12]}: nothing to bisect between them") \
            from None
    out = ab._git("rev-list", "--reverse", "--first-parent", f"{good}..{bad}", repo=repo).decode().split()
    if not out:
        raise BisectError(f"GOOD and BAD are the same commit ({good[:12]})")
    return out


def subject(commit: str, repo=None) -> str:
    return ab._git("show", "-s", "--format=%s", commit, repo=repo).decode().strip()


def bisect(config, plan, good: str, bad: str, out: Path, max_regression: float, alpha: float, repo=None,
           log=lambda m: None) -> Outcome:
    from harness.measure.fingerprint import fingerprint
    from harness.sweep.results import ResultsDir
    from harness.sweep.runner import Arm, run_arms
    from runtime.tuning import cache_dir

    where = cache_dir() / "ab"
    outcome = Outcome(good, bad, commit_range(good, bad, repo))
    rule = partial(regression.undecided, max_regression=max_regression, alpha=alpha)

    def build(commit: str) -> Path:
        cached = (where / commit[:12] / "runtime" / ".built").is_file()
        try:
            space = ab.build_workspace(commit, where, log, repo=repo)
        except ab.ABError as e:
            raise BisectError(str(e)) from None
        outcome.builds += not cached
        return space

    def measure(commit: str) -> Probe:
        space = build(commit)
        base_fp = fingerprint()
        arms = []
        for name, sha, ws in (("good", good, good_space), ("candidate", commit, space)):
            fp = {**base_fp, "runtime": {**base_fp["runtime"], "build": ab.build_info(ws), "revision": sha},
                  "ternbench": {**base_fp["ternbench"], "git_commit": sha}}
            arms.append(Arm(ResultsDir(out / commit[:12] / name), fp, str(ws)))
        more = f" (up to {config.max_processes} while a verdict is open)" if config.max_processes > config.processes else ""
        log(f"measuring {commit[:12]} against GOOD {good[:12]}: {len(plan.points)} point(s), {config.processes} "
            f"process(es){more} of each build, interleaved ...")
        result = run_arms(config, plan, arms, resume=False, quiet=True, undecided=rule)
        if result.interrupted:
            raise KeyboardInterrupt
        try:
            sides = [regression.load(arm.results.path) for arm in arms]
            report = regression.compare(*sides, max_regression, alpha)
        except regression.CheckError as e:
            raise BisectError(f"measuring {commit[:12]}: {e}") from None
        outcome.measurements += sum(len(r.get("process_tokens_per_s") or []) for s in sides for r in s.points.values())
        slower = report.count("regression") > 0 or bool(report.broken)
        worst = min(report.compared, key=lambda c: c.change, default=None)
        figures = f"; largest change {worst.change:+.1%} ({worst.key}, p {worst.p:.2g}, {worst.baseline_n} {worst.unit})" if worst else ""
        log(f"  {commit[:12]}: {'SLOWER than GOOD' if slower else 'not slower than GOOD'}{figures}")
        probe = Probe(commit, slower, report, arms[1].results.path)
        outcome.probes.append(probe)
        return probe

    good_space = build(good)
    outcome.first_slower = search(outcome.commits, lambda c: (outcome.probe(c) or measure(c)).slower, log)
    return outcome


def search(commits: list[str], slower, log=lambda m: None) -> str | None:
    """The first of COMMITS for which slower(commit) holds, assuming it holds for every commit
    after that one too; None if it holds for none. Asks about ceil(log2(len(commits))) commits,
    and about the last one only when the search ends there."""
    lo, hi = -1, len(commits) - 1     # commits[lo] is not slower (GOOD itself at -1); commits[hi] is taken as slower
    while hi - lo > 1:
        mid = (lo + hi) // 2
        log(f"{hi - lo} commit(s) left to search; probing the middle one")
        if slower(commits[mid]):
            hi = mid
        else:
            lo = mid
    return commits[hi] if slower(commits[hi]) else None


def to_dict(o: Outcome) -> dict:
    def probe(p: Probe) -> dict:
        return {"commit": p.commit, "slower": p.slower, "results": str(p.results),
                "points": [{"key": c.key, "good_median": c.baseline_median, "median": c.candidate_median,
                            "change": c.change, "p": c.p, "verdict": c.verdict, "why": c.why}
                           for c in p.report.compared], "broken": p.report.broken}

    return {"good": o.good, "bad": o.bad, "commits_in_range": len(o.commits), "first_slower": o.first_slower,
            "builds": o.builds, "measurements": o.measurements, "probes": [probe(p) for p in o.probes]}
