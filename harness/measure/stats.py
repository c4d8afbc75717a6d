"""Summary statistics of repeated measurements, and the ratios between two sets of them.

Tokens/s and J/token are positive and their noise is multiplicative (a stolen time slice costs a
share of the run, not a fixed amount), so every interval here is computed on the log scale and
mapped back: a bound can never be at or below zero, and a ratio's interval is symmetric in the
ratio and its inverse. The unit of independence is the worker process (values within one process
share its memory layout, its model build and its minute of the host), and in a sweep the round:
one process of every point of a comparison, run back to back. An interval needs MIN_UNITS of
them; with fewer, there is none and `note` says so, rather than Student's t with one degree of
freedom stretching it across an order of magnitude."""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

CONFIDENCE = 0.95
MIN_UNITS = 3   # fewer independent units than this: no interval (with 2, t has 1 degree of freedom: 12.7)

# An interval narrower than this (high / low, about +-5%) is narrow enough to place its figure
# against a published range; wider ones crossing a bound cannot say on which side it lies.
NARROW = 1.10

PAIRED = "paired"       # per-round ratios, each round one process of both sides back to back
UNPAIRED = "unpaired"   # two independent samples: Welch's t on the logs


def _t(df: float) -> float:
    from scipy import stats as scipy_stats   # here, not at the top: it costs every command 0.6 s at start-up

    return float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, df))


def too_few(n: int, unit: str) -> str:
    plural = unit if n == 1 else unit + ("es" if unit.endswith("s") else "s")
    return f"n too small for an interval ({n} {plural}; an interval needs {MIN_UNITS})"


def log_interval(values: list[float]) -> tuple[float, float] | None:
    """The 95% interval of the geometric mean (Student's t on the logs), or None with fewer than
    MIN_UNITS values or a value that is not positive."""
    if len(values) < MIN_UNITS or min(values) <= 0:
        return None
    logs = [math.log(v) for v in values]
    half = _t(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    centre = statistics.fmean(logs)
    return math.exp(centre - half), math.exp(centre + half)


def gmean(values: list[float]) -> float | None:
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values and min(values) > 0 else None


def summary(values: list[float]) -> dict:
    """mean, median, geometric mean, sample standard deviation, and the 95% interval of the
    geometric mean (None with fewer than MIN_UNITS values)."""
    n = len(values)
    interval = log_interval(values)
    return {"n": n, "mean": statistics.fmean(values), "median": statistics.median(values), "gmean": gmean(values),
            "min": min(values), "max": max(values), "stdev": statistics.stdev(values) if n > 1 else None,
            "ci95_low": interval[0] if interval else None, "ci95_high": interval[1] if interval else None,
            "interval": "geometric mean, t on logs" if interval else too_few(n, "value")}


@dataclass(frozen=True)
class Ratio:
    """a / b with its 95% interval and how it was obtained. value is the ratio of geometric
    means, which for paired samples is also the geometric mean of the per-round ratios."""
    value: float | None
    low: float | None
    high: float | None
    n: int                  # rounds (paired) or the smaller side's units (unpaired)
    method: str             # PAIRED or UNPAIRED
    note: str = ""          # why there is no interval, when there is none

    def to_dict(self) -> dict:
        return asdict(self)

    def inverse_complement(self) -> "Ratio":
        """1 - ratio, for reductions (energy): its interval's ends swap."""
        flip = (lambda x: None if x is None else 1.0 - x)
        return Ratio(flip(self.value), flip(self.high), flip(self.low), self.n, self.method, self.note)


def same_rounds(ra: dict, rb: dict, field: str) -> bool:
    """Whether two records' per-process FIELD lists pair round by round: both ran in one group
    run (measure/execute.run_group), with as many processes."""
    a, b = ra.get(field), rb.get(field)
    return (bool(ra.get("group_run")) and ra.get("group_run") == rb.get("group_run")
            and isinstance(a, list) and isinstance(b, list) and len(a) == len(b))


def paired_ratio(a: list[float], b: list[float]) -> Ratio:
    """a_i / b_i within each round i: the host's drift from round to round lands on both sides
    and cancels, so the interval over rounds is as narrow as the ratio really is."""
    if len(a) != len(b) or not a or min(a) <= 0 or min(b) <= 0:
        raise ValueError("paired samples need the same number of positive values on both sides")
    logs = [math.log(x / y) for x, y in zip(a, b)]
    value = math.exp(statistics.fmean(logs))
    if len(logs) < MIN_UNITS:
        return Ratio(value, None, None, len(logs), PAIRED, too_few(len(logs), "round"))
    half = _t(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    centre = math.log(value)
    return Ratio(value, math.exp(centre - half), math.exp(centre + half), len(logs), PAIRED)


def unpaired_ratio(a: list[float], b: list[float], unit: str = "process") -> Ratio:
    """Ratio of geometric means of two independent samples, with Welch's interval on the logs
    (unequal variances, Welch-Satterthwaite degrees of freedom)."""
    if not a or not b or min(a) <= 0 or min(b) <= 0:
        raise ValueError("a ratio needs positive values on both sides")
    la, lb = [math.log(x) for x in a], [math.log(x) for x in b]
    value = math.exp(statistics.fmean(la) - statistics.fmean(lb))
    n = min(len(la), len(lb))
    if n < MIN_UNITS:
        return Ratio(value, None, None, n, UNPAIRED, too_few(n, unit))
    va, vb = statistics.variance(la) / len(la), statistics.variance(lb) / len(lb)
    se = math.sqrt(va + vb)
    if se == 0:
        return Ratio(value, value, value, n, UNPAIRED)
    df = (va + vb) ** 2 / (va ** 2 / (len(la) - 1) + vb ** 2 / (len(lb) - 1))
    half = _t(df) * se
    return Ratio(value, value * math.exp(-half), value * math.exp(half), n, UNPAIRED)


def ratio(a: list[float], b: list[float], paired: bool) -> Ratio:
    return paired_ratio(a, b) if paired else unpaired_ratio(a, b)
