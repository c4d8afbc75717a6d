"""Steps in a series of one point's figures over commits: the segmentation of the log of the
values (so that a step's size is relative whatever the point's speed) into levels, with the
number of steps chosen by the Schwarz criterion for change points in a Gaussian mean with unknown
variance (Yao, 1988): n log(RSS_m / n) + penalty x m x log n, at its minimum over m. For each m the
best segmentation is exact dynamic programming (ruptures' Dynp, least squares).

The penalty is 3 per step, the weight of the modified BIC of Zhang and Siegmund (2007) that R's
changepoint package uses: with the plain BIC's 2, a fifth of the 12-commit series of pure 2%
noise got a step; with 3, about one in fourteen, and one in seventy at 30 commits. A floor on the
noise (the points' own standard errors) keeps a series of near-identical values from being
split on rounding."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

# A step must hold for two commits: one slow run is an outlier, not a step (asv likewise waits
# for a second commit before it reports one).
MIN_SIZE = 2
PENALTY = 3
# the most steps looked for in one series: the exact search costs O(steps x n^2)
MAX_STEPS = 8


@dataclass
class Step:
    index: int           # the first position of the new level
    before: float        # the median of the values of the level before, and after
    after: float

    @property
    def change(self) -> float:
        """after / before - 1: negative when tokens/s fell, i.e. slower."""
        return self.after / self.before - 1


def _rss(logs: np.ndarray, ends: list[int]) -> float:
    starts = [0] + ends[:-1]
    return sum(float(((logs[a:b] - logs[a:b].mean()) ** 2).sum()) for a, b in zip(starts, ends))


def detect(values: list[float], rel_se: list[float] | None = None) -> list[Step]:
    """Steps in VALUES (positive, in commit order). rel_se: each value's relative standard error,
    where known (half its 95% interval / 1.96 / the value)."""
    import ruptures

    n = len(values)
    if n < 2 * MIN_SIZE or any(not (v > 0 and math.isfinite(v)) for v in values):
        return []
    logs = np.log(np.asarray(values, dtype=float)).reshape(-1, 1)
    known = [s for s in (rel_se or []) if s is not None and math.isfinite(s)]
    floor = statistics.median(known) ** 2 if known else 0.0
    floor = max(floor, 1e-12)
    algo = ruptures.Dynp(model="l2", min_size=MIN_SIZE, jump=1).fit(logs)
    best_score, best_ends = None, [n]
    for m in range(0, min(MAX_STEPS, n // MIN_SIZE - 1) + 1):
        ends = [n] if m == 0 else algo.predict(n_bkps=m)
        score = n * math.log(_rss(logs, ends) / n + floor) + PENALTY * m * math.log(n)
        if best_score is None or score < best_score:
            best_score, best_ends = score, ends
    starts = [0] + best_ends[:-1]
    levels = [statistics.median(values[a:b]) for a, b in zip(starts, best_ends)]
    return [Step(starts[i], levels[i - 1], levels[i]) for i in range(1, len(levels))]
