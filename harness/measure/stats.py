"""Summary statistics of repeated measurements."""
from __future__ import annotations

import math
import statistics

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom; beyond 30 the normal
# quantile is within 4% of t's and shrinking, and a sweep rarely has that few values anyway.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def t95(df: int) -> float:
    return _T95[df - 1] if df <= len(_T95) else statistics.NormalDist().inv_cdf(0.975)


def summary(values: list[float]) -> dict:
    """mean, median, sample standard deviation and the 95% confidence interval of the mean
    (Student's t); with one value the spread and interval are unknown (None)."""
    n = len(values)
    mean = statistics.fmean(values)
    out = {"n": n, "mean": mean, "median": statistics.median(values), "min": min(values), "max": max(values),
           "stdev": None, "ci95_low": None, "ci95_high": None}
    if n > 1:
        sd = statistics.stdev(values)
        half = t95(n - 1) * sd / math.sqrt(n)
        out.update(stdev=sd, ci95_low=mean - half, ci95_high=mean + half)
    return out
