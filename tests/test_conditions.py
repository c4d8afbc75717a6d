"""What can spoil a point: steal time, load, the spread of its values and the drift of the
bandwidth probe, recorded with it and turned into an `unstable` flag with its reasons."""
import pytest

from harness.measure import conditions
from harness.measure.record import process_means


def proc(steal_before, steal_after, busy=1000, probe_before=(40.0,), probe_after=(40.0,), load=0.5):
    def ticks(steal, extra):
        return [100 + extra, 0, 50, 1000 + extra, 0, 0, 0, steal]

    return {"conditions_before": {"load1": load, "ticks": ticks(steal_before, 0), "mhz": 3000.0},
            "conditions_after": {"load1": load + 1, "ticks": ticks(steal_after, busy), "mhz": 3100.0},
            "probe_before_gbps": list(probe_before), "probe_after_gbps": list(probe_after)}


def test_a_quiet_point_is_stable():
    c = conditions.summary([proc(0, 10)], [100.0, 101.0, 99.0])
    assert c["unstable"] == [] and c["steal_fraction"] == pytest.approx(10 / 2010)
    assert c["load1"] == [0.5, 1.5] and c["cpu_mhz"] == [3000.0, 3100.0] and c["probe_drift"] == 0.0


@pytest.mark.parametrize("p, tps, words", [
    (proc(0, 600), [100.0, 101.0], "the hypervisor stole 23% of the CPU time (limit 10%)"),
    (proc(0, 0), [100.0, 140.0, 70.0], "tokens/s spread 34% of the mean (limit 10%)"),
    (proc(0, 0, probe_after=(30.0,)), [100.0, 100.0], "moved -25% between the probes"),
])
def test_each_limit_flags_the_point_with_its_reason(p, tps, words):
    why = conditions.summary([p], tps)["unstable"]
    assert len(why) == 1 and words in why[0]


def test_unreadable_counters_are_unknown_not_unstable(tmp_path):
    snap = conditions.snapshot(tmp_path)   # an empty /proc: nothing to read
    assert snap["ticks"] is None and snap["mhz"] is None
    c = conditions.summary([{"conditions_before": snap, "conditions_after": snap}], [1.0])
    assert c["steal_fraction"] is None and c["unstable"] == [] and c["spread"] is None


def test_the_live_machine_can_be_read():
    snap = conditions.snapshot()
    assert snap["load1"] is not None and len(snap["ticks"]) == 8


def test_process_means_group_values_by_worker():
    runs = [{"pid": 1}, {"pid": 1}, {"pid": 2}, {"pid": 2}]
    assert process_means(runs, [10.0, 12.0, 20.0, 22.0]) == [11.0, 21.0]
