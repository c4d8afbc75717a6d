"""Energy meters (harness.energy): fake powercap trees (layouts, wraparound, the sampler, counter
reset, unreadable counters), the perf output parser and a fake perf, pyRAPL's gaps, the model's
arithmetic, `auto`'s choice and reasons, and what this machine offers. Every test is fast: the
sampler's interval, the clock and the counter reader are injected."""
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.energy import (EnergyReadError, EnergySettings, EnergyUnavailable, Meter, Reading,
                            backend_status, measure_idle, open_meter)
from harness.energy import choose, perf, powercap, pyrapl_meter
from harness.energy.counter import CounterReset, sample_interval
from harness.energy.model import ModelMeter, process_cpu_seconds
from harness.energy.powercap import open_powercap

J = 1_000_000  # µJ per joule
INTEL_RANGE = 262143328850  # max_energy_range_uj of a real Intel package zone


# ---------------------------------------------------------------- fake powercap trees

def zone(root: Path, zid: str, name: str, uj: int = 0, range_uj: int = INTEL_RANGE) -> Path:
    d = root / zid
    d.mkdir(parents=True)
    (d / "name").write_text(name + "\n")
    (d / "max_energy_range_uj").write_text(f"{range_uj}\n")
    (d / "energy_uj").write_text(f"{uj}\n")
    return d


def setuj(d: Path, uj: int) -> None:
    (d / "energy_uj").write_text(f"{uj}\n")


class Clock:
    """A clock the test sets by hand, or that steps forward by `step` at every call."""

    def __init__(self, step: float = 0.0) -> None:
        self.t = 0.0
        self.step = step
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        t = self.t
        self.t += self.step
        return t


def settings(root: Path, **kw) -> EnergySettings:
    return EnergySettings(powercap_root=root, **kw)


def window(meter: Meter, action=lambda: None) -> Reading:
    meter.start()
    action()
    return meter.stop()


def test_one_package(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 5 * J)
    clock = Clock()
    with open_powercap(settings(tmp_path), clock=clock) as m:
        def work():
            setuj(pkg, 17 * J + 500_000)
            clock.t = 2.0
        r = window(m, work)
    assert r.joules == pytest.approx(12.5)
    assert r.seconds == pytest.approx(2.0)
    assert r.watts == pytest.approx(6.25)
    assert r.domains == {"package-0": pytest.approx(12.5)}
    assert r.measured
    assert r.provenance == "measured: powercap package-0, sampled every 1 s"


def test_two_packages_with_core_and_uncore_not_added_again(tmp_path):
    p0 = zone(tmp_path, "intel-rapl:0", "package-0", 0)
    c0 = zone(tmp_path, "intel-rapl:0:0", "core", 0)
    u0 = zone(tmp_path, "intel-rapl:0:1", "uncore", 0)
    p1 = zone(tmp_path, "intel-rapl:1", "package-1", 0)
    c1 = zone(tmp_path, "intel-rapl:1:0", "core", 0)
    clock = Clock()
    with open_powercap(settings(tmp_path), clock=clock) as m:
        def work():
            for d, j in ((p0, 10), (c0, 6), (u0, 2), (p1, 20), (c1, 15)):
                setuj(d, j * J)
            clock.t = 1.0
        r = window(m, work)
    assert r.joules == pytest.approx(30.0)  # the packages only
    assert r.domains == {"package-0": 10.0, "package-1": 20.0, "package-0/core": 6.0,
                         "package-0/uncore": 2.0, "package-1/core": 15.0}
    assert "package-0 + package-1," in r.provenance
    assert "package-0/core" in r.provenance and "not added" in r.provenance


def test_dram_as_a_subzone_is_added_once(tmp_path):
    p0 = zone(tmp_path, "intel-rapl:0", "package-0")
    c0 = zone(tmp_path, "intel-rapl:0:0", "core")
    d0 = zone(tmp_path, "intel-rapl:0:2", "dram")
    clock = Clock()
    with open_powercap(settings(tmp_path), clock=clock) as m:
        def work():
            setuj(p0, 40 * J)
            setuj(c0, 30 * J)
            setuj(d0, 5 * J)
            clock.t = 1.0
        r = window(m, work)
    assert r.domains == {"package-0": 40.0, "package-0/core": 30.0, "dram-0": 5.0}
    assert r.joules == pytest.approx(45.0)
    assert "powercap package-0 + dram-0," in r.provenance


def test_dram_as_a_top_level_zone_and_psys_not_added(tmp_path):
    p0 = zone(tmp_path, "intel-rapl:0", "package-0")
    d = zone(tmp_path, "intel-rapl:1", "dram")
    ps = zone(tmp_path, "intel-rapl:2", "psys")
    clock = Clock()
    with open_powercap(settings(tmp_path), clock=clock) as m:
        def work():
            setuj(p0, 40 * J)
            setuj(d, 7 * J)
            setuj(ps, 60 * J)  # the whole platform: already holds package and DRAM
            clock.t = 1.0
        r = window(m, work)
    assert r.domains == {"package-0": 40.0, "dram-0": 7.0, "psys": 60.0}
    assert r.joules == pytest.approx(47.0)


def test_sysfs_layout_with_links_and_mmio_duplicate_counts_each_zone_once(tmp_path):
    # As the kernel lays it out: zones nested under the control type, and every zone also
    # linked flat into /sys/class/powercap; intel-rapl-mmio repeats the package counter.
    dev = tmp_path / "devices" / "intel-rapl"
    p0 = zone(dev, "intel-rapl:0", "package-0")
    d0 = zone(p0, "intel-rapl:0:0", "dram")
    mmio = zone(tmp_path / "devices" / "intel-rapl-mmio", "intel-rapl-mmio:0", "package-0")
    root = tmp_path / "class"
    root.mkdir()
    (root / "intel-rapl").symlink_to(dev)
    (root / "intel-rapl:0").symlink_to(p0)
    (root / "intel-rapl:0:0").symlink_to(d0)
    (root / "intel-rapl-mmio:0").symlink_to(mmio)
    clock = Clock()
    with open_powercap(settings(root), clock=clock) as m:
        def work():
            setuj(p0, 9 * J)
            setuj(d0, 1 * J)
            setuj(mmio, 9 * J)
            clock.t = 1.0
        r = window(m, work)
    assert r.domains == {"package-0": 9.0, "dram-0": 1.0}
    assert r.joules == pytest.approx(10.0)
    assert "intel-rapl-mmio zones ignored" in r.provenance


def test_nested_only_subzones_and_amd_naming(tmp_path):
    p0 = zone(tmp_path, "amd-rapl:0", "package-0")
    zone(p0, "amd-rapl:0:0", "core")
    zones, note = powercap.find_zones(tmp_path)
    assert [(z.key, z.counted) for z in zones] == [("package-0", True), ("package-0/core", False)]
    assert note == ""


def test_one_wraparound(tmp_path):
    rng = 1000 * J
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 990 * J, range_uj=rng)
    clock = Clock()
    with open_powercap(settings(tmp_path), clock=clock, interval=60) as m:
        def work():
            setuj(pkg, 10 * J)  # 990 J -> 1000 J, wrap, 0 -> 10 J: 20 J spent
            clock.t = 0.5
        r = window(m, work)
    assert r.joules == pytest.approx(20.0)


class Hardware:
    """A package drawing `watts`, its counter wrapping at `range_uj`, read at the fake clock's
    last time: the sampler sees the counter exactly as it would be at each of its samples."""

    def __init__(self, clock: Clock, watts: float, range_uj: int, start_uj: int = 0) -> None:
        self.clock, self.watts, self.range_uj, self.start_uj = clock, watts, range_uj, start_uj
        self.reads = 0

    def __call__(self, path: Path) -> int:
        self.reads += 1
        t = self.clock.t - self.clock.step  # the time the last clock() call returned
        return (self.start_uj + int(self.watts * t * J)) % self.range_uj


def test_sampler_catches_several_wraparounds_in_a_long_window(tmp_path):
    rng = 1000 * J
    zone(tmp_path, "intel-rapl:0", "package-0", range_uj=rng)
    clock = Clock(step=1.0)  # one fake second per sample: 400 J, less than one range each
    hw = Hardware(clock, watts=400.0, range_uj=rng, start_uj=700 * J)
    m = open_powercap(settings(tmp_path), interval=0.001, reader=hw, clock=clock)
    assert "sampled every 1 ms" in m.provenance
    m.start()
    deadline = time.monotonic() + 5
    while clock.calls < 15 and time.monotonic() < deadline:  # the sampler's own clock calls
        time.sleep(0.001)
    r = m.stop()
    assert clock.calls >= 15
    assert r.seconds >= 14  # fake seconds: 400 J x 14 s = 5600 J, more than five wraps
    assert r.joules == pytest.approx(400.0 * r.seconds)
    assert m._accs[0].wraps >= 5


def test_a_window_the_sampler_missed_raises_rather_than_guessing(tmp_path):
    rng = 1000 * J
    zone(tmp_path, "intel-rapl:0", "package-0", range_uj=rng)
    clock = Clock(step=5.0)  # 5 s between readings: 2500 J possible at 500 W, > one range
    hw = Hardware(clock, watts=400.0, range_uj=rng)
    m = open_powercap(settings(tmp_path), interval=60, reader=hw, clock=clock)
    m.start()
    with pytest.raises(EnergyReadError, match="fell behind"):
        m.stop()


def test_counter_reset_raises_and_meter_stays_usable(tmp_path):
    rng = 1000 * J
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 800 * J, range_uj=rng)
    clock = Clock()
    m = open_powercap(settings(tmp_path), clock=clock, interval=60)
    m.start()
    setuj(pkg, 100 * J)  # as a wrap: 300 J in 0.1 s = 3000 W, impossible
    clock.t = 0.1
    with pytest.raises(CounterReset, match="reset") as e:
        m.stop()
    assert isinstance(e.value, EnergyReadError)
    assert "intel-rapl:0/energy_uj" in str(e.value)
    # The next window starts from the new counter value.
    r = window(m, lambda: (setuj(pkg, 103 * J), setattr(clock, "t", 0.5)))
    assert r.joules == pytest.approx(3.0)


def test_sample_interval_rule():
    assert sample_interval(INTEL_RANGE) == 1.0  # 262 kJ at 500 W: 524 s per wrap, capped at 1 s
    assert sample_interval(1000 * J) == 1.0  # 2 s per wrap -> 1 s
    assert sample_interval(500 * J) == pytest.approx(0.5)  # 1 s per wrap -> every 0.5 s
    assert sample_interval(10) == 0.001  # floor


def test_sampler_thread_ends_on_close(tmp_path):
    zone(tmp_path, "intel-rapl:0", "package-0")
    with open_powercap(settings(tmp_path), interval=0.001) as m:
        m.start()
        assert m._thread.is_alive()
        thread = m._thread
    assert not thread.is_alive()


# ---------------------------------------------------------------- unreadable counters

def test_unreadable_energy_uj_names_the_file_and_the_fixes(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0")
    (pkg / "energy_uj").unlink()
    (pkg / "energy_uj").mkdir()  # we run as root: chmod would not stop us, a directory does
    with pytest.raises(EnergyUnavailable) as e:
        open_powercap(settings(tmp_path))
    msg = str(e.value)
    assert str(pkg / "energy_uj") in msg
    for fix in ("run as root", "udev", "chmod o+r", "perf", "CAP_PERFMON", "perf_event_paranoid"):
        assert fix in msg


def test_permission_denied_is_reported_with_its_cause(tmp_path):
    zone(tmp_path, "intel-rapl:0", "package-0")

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    with pytest.raises(EnergyUnavailable, match="Permission denied.*root-only"):
        open_powercap(settings(tmp_path), reader=denied)


class StubMeter(Meter):
    name = "perf"
    measured = True
    provenance = "measured: stub"

    def _start(self):
        pass

    def _stop(self):
        return Reading(1.0, 1.0, {}, True, self.provenance)


def test_auto_falls_back_past_unreadable_powercap_and_says_why(tmp_path, monkeypatch):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0")
    (pkg / "energy_uj").unlink()
    (pkg / "energy_uj").mkdir()
    monkeypatch.setitem(choose.OPENERS, "perf", lambda s: StubMeter())
    meter, why = open_meter(settings(tmp_path))
    assert meter.name == "perf"
    assert str(pkg / "energy_uj") in why["powercap"] and "udev" in why["powercap"]
    assert why["pyrapl"] == "not tried: perf already works"
    assert why["model"] == "not tried: perf already works"


# ---------------------------------------------------------------- choosing a backend

def test_auto_takes_powercap_when_it_works(tmp_path):
    zone(tmp_path, "intel-rapl:0", "package-0")
    meter, why = open_meter(settings(tmp_path))
    with meter:
        assert meter.name == "powercap" and meter.measured
    assert why == {b: "not tried: powercap already works" for b in ("perf", "pyrapl", "model")}


def test_auto_on_an_empty_root_falls_to_the_model_with_every_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(perf, "PMU_DIR", tmp_path / "no-power-pmu")
    meter, why = open_meter(settings(tmp_path))
    assert meter.name == "model" and not meter.measured
    assert set(why) == {"powercap", "perf", "pyrapl"}
    assert why["powercap"] == (f"no RAPL zones under {tmp_path} (virtual machines usually "
                               "expose none; on bare metal try `modprobe intel_rapl_msr`)")
    assert "no power PMU" in why["perf"] or "not installed" in why["perf"]
    assert "pyRAPL reads only /sys/class/powercap" in why["pyrapl"]


def test_a_named_backend_that_cannot_work_raises_with_its_reason(tmp_path):
    with pytest.raises(EnergyUnavailable, match=r"^powercap: no RAPL zones under"):
        open_meter(settings(tmp_path, backend="powercap"))
    with pytest.raises(EnergyUnavailable, match=r"^pyrapl: pyRAPL reads only"):
        open_meter(settings(tmp_path, backend="pyrapl"))


def test_a_named_backend_that_works_lists_the_others_as_not_tried(tmp_path):
    meter, why = open_meter(settings(tmp_path, backend="model"))
    assert meter.name == "model"
    assert why["powercap"] == "not tried: model was asked for"


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown energy backend 'rapl'"):
        EnergySettings(backend="rapl")


def _machine_has_rapl() -> bool:
    root = Path("/sys/class/powercap")
    return perf.PMU_DIR.exists() or (root.is_dir() and any(
        p.name.startswith(("intel-rapl", "amd-rapl")) for p in root.iterdir()))


@pytest.mark.skipif(_machine_has_rapl(), reason="this machine exposes RAPL")
def test_backend_status_on_a_machine_without_rapl():
    status = {s.name: s for s in backend_status(EnergySettings())}
    assert list(status) == ["powercap", "perf", "pyrapl", "model"]
    for name in ("powercap", "perf", "pyrapl"):
        s = status[name]
        assert not s.usable and s.measures, s
        assert len(s.reason) > 20, s
    assert "no RAPL zones" in status["powercap"].reason
    assert "PMU" in status["perf"].reason or "not installed" in status["perf"].reason
    assert "pyRAPL" in status["pyrapl"].reason
    assert status["model"].usable and not status["model"].measures
    assert status["model"].detail.startswith("estimated: cpu-time model")


# ---------------------------------------------------------------- the model

def test_model_arithmetic():
    cpu = iter([10.0, 14.0])
    clock = Clock()
    m = ModelMeter(6.0, 20.0, cpu_seconds=lambda: next(cpu), clock=clock)
    m.start()
    clock.t = 2.0
    r = m.stop()
    assert r.joules == pytest.approx(4 * 6.0 + 2 * 20.0)
    assert r.domains == {"cpu-time": 24.0, "idle": 40.0}
    assert r.seconds == 2.0 and r.watts == pytest.approx(32.0)
    assert not r.measured
    assert r.provenance == "estimated: cpu-time model, 6 W per busy core + 20 W idle"


def test_model_defaults_and_settings():
    s = EnergySettings()
    assert s.watts_per_core == pytest.approx((270 - 27) / 40)
    assert s.idle_watts == 27.0
    meter, _ = open_meter(EnergySettings(backend="model", watts_per_core=3.5, idle_watts=11))
    assert "3.5 W per busy core + 11 W idle" in meter.provenance


def test_process_cpu_time_counts_other_threads():
    before = process_cpu_seconds()

    def burn():
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass

    t = threading.Thread(target=burn)
    t.start()
    t.join()
    assert process_cpu_seconds() - before >= 0.04


def test_measure_idle_is_one_window():
    clock = Clock()
    cpu = iter([1.0, 1.0])
    m = ModelMeter(5.0, 10.0, cpu_seconds=lambda: next(cpu), clock=clock)
    r = measure_idle(m, 0.01)
    assert r.joules == 0.0 and r.seconds == 0.0  # the fake clock did not move
    r = measure_idle(ModelMeter(5.0, 10.0), 0.05)
    assert 0.05 <= r.seconds < 5 and r.joules >= 0.5


def test_stop_without_start_and_double_start():
    m = ModelMeter(1.0, 1.0)
    with pytest.raises(RuntimeError, match="without start"):
        m.stop()
    m.start()
    with pytest.raises(RuntimeError, match="twice"):
        m.start()


# ---------------------------------------------------------------- perf

PERF_OUT = """\
# started on Tue Nov 24 09:46:17 2026

52.17,Joules,power/energy-pkg/,5001234567,100.00,,
7.03,Joules,power/energy-ram/,5001234567,100.00,,
"""


def test_perf_parser():
    assert perf.parse_perf_csv(PERF_OUT) == {"energy-pkg": 52.17, "energy-ram": 7.03}
    # older perf: no metric columns, bare event names
    assert perf.parse_perf_csv("3.5,Joules,energy-pkg,100,100.00\n") == {"energy-pkg": 3.5}
    assert perf.parse_perf_csv("601.94,msec,task-clock,601942461,100.00,2.000,CPUs\n") == {}
    with pytest.raises(EnergyReadError, match="not supported"):
        perf.parse_perf_csv("<not supported>,Joules,power/energy-ram/,0,100.00,,\n")
    with pytest.raises(EnergyReadError, match="not Joules"):
        perf.parse_perf_csv("123,,power/energy-pkg/,0,100.00,,\n")


FAKE_PERF = """\
import os, signal, sys, time
out = sys.argv[sys.argv.index("-o") + 1]
log = os.environ.get("FAKE_PERF_LOG")
def note(what):
    if log:
        with open(log, "a") as f:
            f.write(f"{{what}} {{time.perf_counter()}}\\n")
if os.environ.get("FAKE_PERF_REFUSE"):
    sys.stderr.write("Error:\\nAccess to performance monitoring and observability operations is "
                     "limited.\\nperf_event_paranoid setting is 2\\n")
    sys.exit(255)
control = [a.split("fifo:", 1)[1].split(",") for a in sys.argv if a.startswith("--control=")]
if control and os.environ.get("FAKE_PERF_OLD"):
    sys.stderr.write("Error: unknown option `control'\\n")
    sys.exit(129)
def done(*_):
    note("sigint")
    with open(out, "w") as f:
        f.write({out!r})
    sys.exit(0)
signal.signal(signal.SIGINT, done)
if control:   # perf's protocol: counters start disabled; enable/disable on ctl, "ack" on ack
    ctl = os.open(control[0][0], os.O_RDWR | os.O_NONBLOCK)
    ack = os.open(control[0][1], os.O_WRONLY)
    while True:
        try:
            words = os.read(ctl, 64).decode().split()
        except BlockingIOError:
            words = []
        for w in words:
            note(w)
            os.write(ack, b"ack\\n")
        time.sleep(0.001)
open(os.environ["FAKE_PERF_READY"] + "." + str(os.getpid()), "w").close()
note("open")
while True:
    time.sleep(0.005)
"""


@pytest.fixture
def fake_perf(tmp_path, monkeypatch):
    script = tmp_path / "perf"
    script.write_text(f"#!{sys.executable}\n" + FAKE_PERF.format(out=PERF_OUT))
    script.chmod(0o755)
    ready = tmp_path / "ready"
    monkeypatch.setenv("FAKE_PERF_READY", str(ready))
    pmu = tmp_path / "pmu"
    (pmu / "events").mkdir(parents=True)
    for e in ("energy-pkg", "energy-ram", "energy-cores"):
        (pmu / "events" / e).write_text("event=0x02\n")
    # Ready once this very process has installed its SIGINT handler (as real perf has before
    # it opens its counters).
    monkeypatch.setattr(perf, "_perf_event_fds",
                        lambda pid: 9 if Path(f"{ready}.{pid}").exists() else 0)
    return script, pmu


def test_perf_meter_runs_perf_and_reads_its_totals(fake_perf, tmp_path, monkeypatch):
    script, pmu = fake_perf
    meter = perf.open_perf(perf=str(script), pmu_dir=pmu)  # includes one probe window
    assert meter.events == ["energy-pkg", "energy-ram"] and meter.controlled is True
    assert meter.command(Path("x"), (Path("c"), Path("a")))[1:] == [
        "stat", "-a", "-x,", "-o", "x", "-e", "power/energy-pkg/,power/energy-ram/", "--delay=-1",
        "--control=fifo:c,a"]
    log = tmp_path / "perf.log"
    monkeypatch.setenv("FAKE_PERF_LOG", str(log))
    r = window(meter)
    assert r.joules == pytest.approx(59.2)
    assert r.domains == {"package-all": 52.17, "dram-all": 7.03}
    assert r.measured and r.provenance.startswith("measured: perf stat power/energy-pkg/")
    assert "no --control" not in r.provenance
    # the counters were enabled before the window began and disabled before it ended: the energy
    # window is the timed window, not perf's start-up and shutdown
    events = dict(line.split() for line in log.read_text().splitlines())
    assert list(events) == ["enable", "disable", "sigint"]
    counted = float(events["disable"]) - float(events["enable"])
    assert counted == pytest.approx(r.seconds, abs=0.02)


def test_a_perf_without_control_still_counts_and_says_so(fake_perf, monkeypatch):
    script, pmu = fake_perf
    monkeypatch.setenv("FAKE_PERF_OLD", "1")
    meter = perf.open_perf(perf=str(script), pmu_dir=pmu)
    assert meter.controlled is False
    r = window(meter)
    assert r.joules == pytest.approx(59.2) and "window from counter open to SIGINT" in r.provenance


def test_perf_refusal_says_how_to_allow_it(fake_perf, monkeypatch):
    script, pmu = fake_perf
    monkeypatch.setenv("FAKE_PERF_REFUSE", "1")
    with pytest.raises(EnergyUnavailable, match="CAP_PERFMON.*perf_event_paranoid"):
        perf.open_perf(perf=str(script), pmu_dir=pmu)


def test_perf_missing_or_without_power_pmu(tmp_path, monkeypatch):
    monkeypatch.setattr(perf.shutil, "which", lambda name: None)
    with pytest.raises(EnergyUnavailable, match="perf is not installed"):
        perf.open_perf()
    with pytest.raises(EnergyUnavailable, match="no power PMU"):
        perf.open_perf(perf="/bin/true", pmu_dir=tmp_path / "none")
    (tmp_path / "pmu" / "events").mkdir(parents=True)
    with pytest.raises(EnergyUnavailable, match="lists neither energy-pkg nor energy-ram"):
        perf.open_perf(perf="/bin/true", pmu_dir=tmp_path / "pmu")


# ---------------------------------------------------------------- pyRAPL

class FakeResult:
    def __init__(self, pkg, dram):
        self.pkg, self.dram = pkg, dram


class FakePyRAPL:
    """pyRAPL's Measurement API with scripted results (µJ per socket, -1 = not read)."""

    def __init__(self, pkg, dram):
        outer = self

        class Measurement:
            def __init__(self, label):
                self.result = None

            def begin(self):
                pass

            def end(self):
                self.result = FakeResult(outer.pkg, outer.dram)

        self.Measurement = Measurement
        self.pkg, self.dram = pkg, dram


def test_pyrapl_meter_reads_packages_and_dram():
    m = pyrapl_meter.PyRaplMeter(FakePyRAPL([3 * J, 4 * J], [J, -1]))
    r = window(m)
    assert r.domains == {"package-0": 3.0, "package-1": 4.0, "dram-0": 1.0}
    assert r.joules == pytest.approx(8.0)
    assert "no wraparound handling" in r.provenance


def test_pyrapl_wraparound_is_an_error_not_a_negative_energy():
    m = pyrapl_meter.PyRaplMeter(FakePyRAPL([-250_000 * J], None))
    with pytest.raises(EnergyReadError, match="does not handle wraparound"):
        window(m)


def test_pyrapl_import_leaves_logging_alone():
    # pyRAPL logs a warning at import, which would configure the root logger of the program.
    code = ("import logging; from harness.energy.pyrapl_meter import _import_pyrapl; "
            "_import_pyrapl(); print(logging.getLogger().handlers)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]"
    assert "pymongo" not in out.stderr
