"""harness.measure.stats: intervals that cannot be impossible, and paired against unpaired ratios."""
import math
import random

import pytest

from harness.measure import stats


def test_a_log_scale_interval_is_positive_where_students_t_was_not():
    values = [281.0, 8.0]      # the shape of the issue's `136.5 (-8.13-281.2)`: two processes
    assert stats.log_interval(values) is None          # too few for any interval
    wild = [281.0, 8.0, 120.0]
    lo, hi = stats.log_interval(wild)
    mean, sd = sum(wild) / 3, (sum((v - sum(wild) / 3) ** 2 for v in wild) / 2) ** 0.5
    assert mean - 4.303 * sd / math.sqrt(3) < 0        # Student's t on the values would go below zero
    assert 0 < lo < stats.gmean(wild) < hi


def test_the_summary_says_why_it_has_no_interval():
    s = stats.summary([10.0, 11.0])
    assert s["ci95_low"] is None and s["interval"] == "n too small for an interval (2 values; an interval needs 3)"
    s = stats.summary([10.0, 11.0, 10.5])
    assert 0 < s["ci95_low"] < s["gmean"] < s["ci95_high"] and s["median"] == 10.5


def test_pairing_cancels_what_the_host_does_to_both_sides():
    rng = random.Random(1)
    host = [rng.uniform(0.6, 1.0) for _ in range(6)]       # each round's share of the machine
    base = [20.0 * h for h in host]
    fast = [100.0 * h * rng.uniform(0.98, 1.02) for h in host]
    paired, unpaired = stats.paired_ratio(fast, base), stats.unpaired_ratio(fast, base)
    assert paired.method == "paired" and unpaired.method == "unpaired" and paired.n == 6
    assert paired.value == pytest.approx(unpaired.value)   # the same figure: a ratio of geometric means
    assert 4.85 < paired.low < 5.0 < paired.high < 5.15
    assert unpaired.high / unpaired.low > 1.4 > 1.05 > paired.high / paired.low


def test_ratios_need_equal_positive_rounds_and_enough_of_them():
    r = stats.paired_ratio([2.0, 2.2], [1.0, 1.0])
    assert r.low is None and r.value == pytest.approx(math.sqrt(2.0 * 2.2)) and "2 rounds" in r.note
    with pytest.raises(ValueError):
        stats.paired_ratio([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        stats.unpaired_ratio([0.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    flat = stats.unpaired_ratio([2.0] * 3, [1.0] * 3)
    assert (flat.low, flat.value, flat.high) == (2.0, 2.0, 2.0)


def test_a_reduction_is_one_minus_the_ratio_with_its_ends_swapped():
    r = stats.paired_ratio([1.0, 1.1, 0.9, 1.0], [4.0, 4.1, 3.9, 4.0]).inverse_complement()
    assert r.low < r.value < r.high and r.value == pytest.approx(0.75, abs=0.01)
