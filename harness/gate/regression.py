"""Compares two results directories point by point: the logic of `ternbench check`, no printing.

The rule is asv's: a point regressed only when it is both slower by more than the threshold
and significantly slower. The ratio alone flags noise; the test alone flags changes too small to
matter. Two separate runs are compared as asv does: the ratio of median tokens/s, and a
two-sided Mann-Whitney U test on the raw per-run values. Two builds measured in one session
(`check --ab`, `history bisect`) ran their processes in shared rounds, and are judged round by
round: the geometric mean of the per-round ratios of process means, and a paired t-test on
their logs. The worker process is the unit there, as everywhere else (measure/stats.py): a
neighbour that slows one process moves all its values together, which a test on the values
counts as that many independent observations, and what the host does to a whole round cancels
in its ratio."""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from harness.sweep.config import identities_differ
from harness.sweep.results import POINTS, ResultsError, read_results

# With ties the exact distribution needs every rearrangement enumerated: 8 vs 8 values is
# 12,870 (~0.1 s); beyond this the normal approximation is good and each point stays fast.
EXACT_PERMUTATIONS_MAX = 20_000
# scipy's exact null distribution costs ~0.1 s at 100 vs 100 and fails (NaN) near 1000 vs 1000;
# at these sizes the normal approximation agrees with it to two digits.
EXACT_VALUES_MAX = 200

# Rounds a paired test needs: with 2, t has one degree of freedom and no power.
MIN_ROUNDS = 3
PAIRED_METHOD = "paired t on the per-round log ratios"

# What a difference in which only notes, not refuses: they change how a point was measured,
# not what it measures (unlike the seed or the model's weights).
NOTED_CONFIG = ("repetitions", "warmups", "processes", "pin_threads", "energy")


class CheckError(Exception):
    """Input that cannot be compared: exit status 2."""


@dataclass
class Side:
    path: Path
    manifest: dict
    points: dict[str, dict]   # key -> newest record


@dataclass
class Comparison:
    key: str
    baseline_median: float
    candidate_median: float
    baseline_n: int           # values compared: per-run values, or rounds (paired)
    candidate_n: int
    change: float             # candidate / baseline - 1 (medians, or per-round ratios); negative is slower
    p: float
    min_p: float              # the smallest p the test could give with these sample sizes
    method: str
    verdict: str              # regression | improvement | unchanged | inconclusive
    why: str

    @property
    def unit(self) -> str:
        return "rounds" if self.method == PAIRED_METHOD else "values"


@dataclass
class Report:
    baseline: Side
    candidate: Side
    max_regression: float
    alpha: float
    compared: list[Comparison] = field(default_factory=list)
    only_baseline: list[dict] = field(default_factory=list)    # {key, status, reason}
    only_candidate: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)           # {key, baseline, candidate}: a reason or None
    notes: list[str] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(c.verdict == verdict for c in self.compared)

    @property
    def underpowered(self) -> list[Comparison]:
        """Points whose sample sizes cannot reach p < alpha whatever the data."""
        return [c for c in self.compared if c.min_p >= self.alpha]

    @property
    def broken(self) -> list[dict]:
        """Candidate points that crashed, failed or are missing: each fails the gate, since a
        build that no longer runs a point has regressed it ({key, why})."""
        out = [{"key": f["key"], "why": f"the candidate failed: {f['candidate']}"} for f in self.failed
               if f["candidate"]]
        return out + [{"key": i["key"], "why": "missing from the candidate"} for i in self.only_baseline]

    @property
    def passed(self) -> bool:
        # inconclusive points do not fail the gate: failing needs evidence, and a gate that
        # fails on what it cannot tell from noise is a flaky gate; they are listed first instead
        return self.count("regression") == 0 and not self.broken

    def to_dict(self) -> dict:
        def side(s: Side) -> dict:
            return {"path": str(s.path), "manifest": s.manifest, "points": len(s.points)}

        return {"verdict": "pass" if self.passed else "fail",
                "rule": {"max_regression": self.max_regression, "alpha": self.alpha,
                         "test": "two-sided Mann-Whitney U on per-run tokens/s; for two builds measured in "
                                 "shared rounds, a paired t-test on the per-round log ratios of process means",
                         "change": "candidate median / baseline median - 1; paired: the geometric mean of the "
                                   "per-round ratios - 1"},
                "summary": {v: self.count(v) for v in ("regression", "improvement", "unchanged", "inconclusive")}
                | {"compared": len(self.compared), "underpowered": len(self.underpowered),
                   "broken": len(self.broken)},
                "broken": self.broken,
                "baseline": side(self.baseline), "candidate": side(self.candidate),
                "points": [asdict(c) for c in self.compared],
                "only_in_baseline": self.only_baseline, "only_in_candidate": self.only_candidate,
                "failed": self.failed, "notes": self.notes}


# --- reading ----------------------------------------------------------------------------------

def load(path) -> Side:
    """A results directory, read as every command reads one (sweep.results.Results), and checked
    for what a comparison needs: a manifest, and usable samples in every ok point."""
    try:
        results = read_results(path)
    except ResultsError as e:
        raise CheckError(str(e)) from None
    manifest = results.manifest
    if not results.has_manifest:
        raise CheckError(f"{path}: no manifest.json, so its configuration cannot be checked against the other's")
    if (not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict)
            or not isinstance(manifest["config"].get("models", {}), dict)
            or not isinstance(manifest.get("machine", {}), dict)):
        raise CheckError(f"{results.dir.file('manifest.json')}: not a ternbench manifest "
                         "(\"config\", \"config.models\" and \"machine\" must be objects)")
    points = {r["key"]: r for r in results.records}
    for key, r in points.items():
        _validate(results.dir.file(POINTS), key, r)
    return Side(results.path, manifest, points)


def _validate(file: Path, key: str, r: dict) -> None:
    if r.get("status") == "failed":
        return
    if r.get("status") != "ok":
        raise CheckError(f"{file}: point {key!r} has status {r.get('status')!r}, neither ok nor failed")
    s = r.get("samples_tokens_per_s")
    if (not isinstance(s, list) or not s
            or not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in s)):
        raise CheckError(f"{file}: point {key!r} has no usable samples_tokens_per_s")


# --- comparing --------------------------------------------------------------------------------

def compatibility(base: Side, cand: Side) -> tuple[list[str], list[str]]:
    """(refusals, notes). Refused: a model label naming other weights, or another seed; either
    would compare different computations under one name."""
    bc, cc = base.manifest["config"], cand.manifest["config"]
    errors, notes = [], []
    bm, cm = bc.get("models") or {}, cc.get("models") or {}
    for label in sorted(set(bm) & set(cm), key=str):
        differ = identities_differ(bm[label], cm[label])
        if differ:
            errors.append(f"config.models.{label}: model identity differs: baseline {bm[label]!r}, "
                          f"candidate {cm[label]!r}")
        elif differ is None:
            notes.append(f"config.models.{label}: one side's model identity was recorded by an earlier ternbench "
                         "(with the preset's location), so that the weights are the same cannot be checked; "
                         "compared by the model's name")
    if bc.get("seed") != cc.get("seed"):
        errors.append(f"config.seed differs: baseline {bc.get('seed')!r}, candidate {cc.get('seed')!r}")
    for k in NOTED_CONFIG:
        if bc.get(k) != cc.get(k):
            notes.append(f"config.{k} differs: baseline {bc.get(k)!r}, candidate {cc.get(k)!r}")
    bm_, cm_ = base.manifest.get("machine") or {}, cand.manifest.get("machine") or {}
    bcpu, ccpu = bm_.get("cpu"), cm_.get("cpu")
    bid, cid = bm_.get("cpu_id"), cm_.get("cpu_id")
    if bcpu != ccpu or (bid and cid and bid != cid):
        same_name = " (the same name, another CPU)" if bcpu == ccpu else ""
        notes.append(f"measured on different CPUs{same_name}: baseline {bcpu!r}{f' ({bid})' if bid else ''}, "
                     f"candidate {ccpu!r}{f' ({cid})' if cid else ''}; the change mixes the machine with the code")
    return errors, notes


def min_p(n1: int, n2: int) -> float:
    """The smallest two-sided exact p: every value of one side above every value of the other."""
    return min(1.0, 2 / math.comb(n1 + n2, n1))


def mann_whitney(a: list[float], b: list[float]) -> tuple[float, str]:
    """(two-sided p, method). Exact when there are no ties (scipy's 'auto' goes asymptotic past 8
    values, needlessly); with ties an exact permutation test while that stays cheap. Otherwise
    the normal approximation with tie correction, which is sound at those sizes."""
    # scipy.stats here, not at the top: it costs every command 0.6 s at start-up
    from scipy.stats import PermutationMethod, mannwhitneyu  # a method object since scipy 1.13

    if len(a) + len(b) > EXACT_VALUES_MAX:
        method, name = "asymptotic", "asymptotic"
    elif len(set(a) | set(b)) == len(a) + len(b):
        method, name = "exact", "exact"
    elif math.comb(len(a) + len(b), len(a)) <= EXACT_PERMUTATIONS_MAX:
        method, name = PermutationMethod(n_resamples=np.inf), "exact permutation (ties)"
    else:
        method, name = "asymptotic", "asymptotic (ties)"
    p = float(mannwhitneyu(a, b, alternative="two-sided", method=method).pvalue)
    return (1.0 if math.isnan(p) else p), name


def paired_t(base: list[float], cand: list[float]) -> tuple[float, float]:
    """(change, two-sided p) of CAND against BASE round by round: the geometric mean of the
    per-round ratios - 1, and Student's t on their logs."""
    from scipy.stats import ttest_1samp   # here, not at the top: scipy.stats costs 0.6 s at start-up

    logs = [math.log(c / b) for b, c in zip(base, cand)]
    change = math.exp(statistics.fmean(logs)) - 1
    if max(logs) == min(logs):      # no spread: t is undefined, and the evidence is all or nothing
        return change, (1.0 if logs[0] == 0 else 0.0)
    return change, float(ttest_1samp(logs, 0.0).pvalue)


def paired_rounds(b: dict, c: dict) -> tuple[list[float], list[float]] | None:
    """The two records' process means, round by round, when both ran in one group run (the
    same rounds) with at least MIN_ROUNDS of them; else None."""
    from harness.measure.stats import same_rounds

    field = "process_tokens_per_s"
    if not same_rounds(b, c, field) or len(b[field]) < MIN_ROUNDS:
        return None
    pb, pc = b[field], c[field]
    return (pb, pc) if all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in pb + pc) else None


def undecided(base: list[float], cand: list[float], max_regression: float, alpha: float) -> str | None:
    """Why another round of two builds' process means (BASE, CAND, round by round) could change
    their verdict, or None. The rule needs a change beyond the threshold AND significance: a
    change beyond it that is not yet significant is where more rounds decide (on this host a
    15% step measured in 12 rounds missed p < 0.002 when the neighbours were busy)."""
    if len(base) < MIN_ROUNDS:
        return f"{len(base)} round(s); the paired test needs {MIN_ROUNDS}"
    change, p = paired_t(base, cand)
    if abs(change) > max_regression and p >= alpha:
        return f"{change:+.1%}, beyond {max_regression:.0%} but p {p:.2g} >= {alpha:g}"
    return None


def judge(key: str, base: list[float], cand: list[float], max_regression: float, alpha: float,
          rounds: tuple[list[float], list[float]] | None = None) -> Comparison:
    """BASE and CAND are the per-run values; ROUNDS, when given, the process means of both
    sides round by round, on which the change and the test are then computed."""
    bmed, cmed = statistics.median(base), statistics.median(cand)
    if rounds:
        change, p = paired_t(*rounds)
        method, floor, n_base, n_cand = PAIRED_METHOD, 0.0, len(rounds[0]), len(rounds[1])
    else:
        change = cmed / bmed - 1
        p, method = mann_whitney(base, cand)
        floor, n_base, n_cand = min_p(len(base), len(cand)), len(base), len(cand)
    beyond = abs(change) > max_regression
    if floor >= alpha and beyond:
        verdict = "inconclusive"
        why = (f"{'slower' if change < 0 else 'faster'} by {abs(change):.1%}, but {n_base} vs {n_cand} "
               f"values cannot reach p < {alpha:g} (smallest possible p {floor:.3g})")
    elif p < alpha and beyond:
        verdict = "regression" if change < 0 else "improvement"
        why = f"{'slower' if change < 0 else 'faster'} by {abs(change):.1%} > {max_regression:.1%}, p {p:.2g} < {alpha:g}"
    else:
        verdict = "unchanged"
        reasons = ([] if beyond else ["within threshold"]) + ([] if p < alpha else ["not significant"])
        if floor >= alpha:
            reasons.append(f"too few values for the test (smallest possible p {floor:.3g})")
        why = ", ".join(reasons)
    if rounds:
        why += f" ({n_base} rounds, paired)"
    return Comparison(key, bmed, cmed, n_base, n_cand, change, p, floor, method, verdict, why)


def _brief(keys, limit=5) -> str:
    keys = list(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return (", ".join(keys[:limit]) + more) if keys else "nothing"


def compare(base: Side, cand: Side, max_regression: float, alpha: float) -> Report:
    errors, notes = compatibility(base, cand)
    if errors:
        raise CheckError("incompatible results: " + "; ".join(errors))
    common = [k for k in base.points if k in cand.points]
    if not common:
        raise CheckError(f"no point in common: baseline has {len(base.points)} ({_brief(base.points)}); "
                         f"candidate has {len(cand.points)} ({_brief(cand.points)})")
    report = Report(base, cand, max_regression, alpha, notes=notes)
    for key in common:
        b, c = base.points[key], cand.points[key]
        if b["status"] == "ok" and c["status"] == "ok":
            report.compared.append(judge(key, b["samples_tokens_per_s"], c["samples_tokens_per_s"],
                                         max_regression, alpha, paired_rounds(b, c)))
        else:
            report.failed.append({"key": key, "baseline": _reason(b), "candidate": _reason(c)})
    for side, own, other in ((report.only_baseline, base, cand), (report.only_candidate, cand, base)):
        side.extend({"key": k, "status": r["status"], "reason": _reason(r)}
                    for k, r in own.points.items() if k not in other.points)
    if not report.compared and not report.broken:
        # a gate that compared nothing must not pass
        raise CheckError(f"no point is ok in both: {len(common)} in common, each failed on one side or both "
                         f"({_brief(f['key'] for f in report.failed)})")
    return report


def _reason(r: dict) -> str | None:
    return None if r["status"] == "ok" else str(r.get("reason") or "failed, no reason recorded")
