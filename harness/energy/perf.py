"""RAPL energy through `perf stat` and the kernel's `power` PMU.

Useful where energy_uj is root-only but perf is allowed (CAP_PERFMON or perf_event_paranoid <= 0).
start() launches `perf stat -a -x, -o FILE -e power/energy-pkg/,power/energy-ram/` (only the
events the PMU lists) and returns once perf has opened its counters; stop() sends SIGINT, on
which perf writes the totals (already in joules, summed over sockets) and exits. perf itself
handles the counter's width and wraparound.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from .base import EnergyReadError, EnergyUnavailable, Meter, Reading

PMU_DIR = Path("/sys/bus/event_source/devices/power")
# perf event -> Reading.domains key. perf sums each event over the sockets.
EVENTS = {"energy-pkg": "package-all", "energy-ram": "dram-all"}
READY_TIMEOUT = 5.0


def available_events(pmu_dir: Path) -> list[str]:
    return [e for e in EVENTS if (pmu_dir / "events" / e).exists()]


def parse_perf_csv(text: str) -> dict[str, float]:
    """Joules per event from `perf stat -x,` output: lines `value,unit,event,run time,pct,...`.
    Comments (#) and blank lines are skipped; a counted event that perf could not read raises."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(",")
        if len(fields) < 3:
            continue
        value, unit, event = fields[0], fields[1], fields[2]
        ev = next((e for e in EVENTS if e in event), None)
        if ev is None:
            continue
        if value.startswith("<"):  # <not counted>, <not supported>
            raise EnergyReadError(f"perf reported {value} for {event}")
        if unit != "Joules":
            raise EnergyReadError(f"perf reported {event} in {unit!r}, not Joules: {line}")
        out[ev] = out.get(ev, 0.0) + float(value)
    return out


def _perf_event_fds(pid: int) -> int:
    try:
        return sum(1 for fd in os.listdir(f"/proc/{pid}/fd")
                   if "perf_event" in os.readlink(f"/proc/{pid}/fd/{fd}"))
    except OSError:
        return 0


def _default_sigint() -> None:
    # A process started in the background by a shell inherits SIGINT ignored, and perf then
    # would not stop on it: give perf the default disposition so that its own handler installs.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class PerfMeter(Meter):
    name = "perf"
    measured = True

    def __init__(self, perf: str, events: list[str],
                 ready: Callable[[subprocess.Popen, int], bool] | None = None) -> None:
        super().__init__()
        self.perf = perf
        self.events = events
        # Ready once perf holds a counter per event (one per socket, in fact): counting has begun.
        self._ready = ready or (lambda proc, n: _perf_event_fds(proc.pid) >= n)
        self._proc: subprocess.Popen | None = None
        self._out: Path | None = None
        self._t0 = 0.0
        keys = " + ".join(EVENTS[e] for e in events)
        self.provenance = f"measured: perf stat power/{'/,power/'.join(events)}/ ({keys})"

    def command(self, out: Path) -> list[str]:
        return [self.perf, "stat", "-a", "-x,", "-o", str(out),
                "-e", ",".join(f"power/{e}/" for e in self.events)]

    def _start(self) -> None:
        fd, name = tempfile.mkstemp(prefix="ternbench-perf-", suffix=".csv")
        os.close(fd)
        self._out = Path(name)
        self._proc = subprocess.Popen(self.command(self._out), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      preexec_fn=_default_sigint)
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._ready(self._proc, len(self.events)):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                err = self._finish(kill=True)
                raise EnergyReadError(f"perf stat did not start counting: {err or 'timed out'}")
            time.sleep(0.002)
        self._t0 = time.perf_counter()

    def _finish(self, kill: bool = False) -> str:
        """End perf (SIGINT: it prints its totals; SIGKILL when aborting) and return stderr."""
        proc, self._proc = self._proc, None
        if proc is None:
            return ""
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        return err.decode(errors="replace").strip()

    def _stop(self) -> Reading:
        t1 = time.perf_counter()
        err = self._finish()
        try:
            text = self._out.read_text() if self._out else ""
        finally:
            self._cleanup()
        values = parse_perf_csv(text)
        missing = [e for e in self.events if e not in values]
        if missing:
            raise EnergyReadError(f"perf stat gave no value for {', '.join(missing)}: "
                                  f"{err or text.strip() or 'no output'}")
        domains = {EVENTS[e]: values[e] for e in self.events}
        return Reading(joules=sum(domains.values()), seconds=t1 - self._t0, domains=domains,
                       measured=True, provenance=self.provenance)

    def _cleanup(self) -> None:
        if self._out is not None:
            self._out.unlink(missing_ok=True)
            self._out = None

    def _abort(self) -> None:
        self._finish(kill=True)
        self._cleanup()


def _probe(meter: PerfMeter) -> None:
    """One short real window: perf may exist and the PMU be listed, yet perf refuse."""
    try:
        meter.start()
        meter.stop()
    except EnergyReadError as e:
        msg = str(e)
        if "paranoid" in msg or "ermission" in msg or "not permitted" in msg:
            raise EnergyUnavailable(
                "perf may not read the power PMU: run as root, grant CAP_PERFMON, or set "
                "sysctl kernel.perf_event_paranoid=0") from e
        raise EnergyUnavailable(f"perf stat failed: {' '.join(msg.split())[:300]}") from e


def open_perf(*, perf: str | None = None, pmu_dir: Path | None = None,
              probe: bool = True) -> PerfMeter:
    pmu_dir = pmu_dir or PMU_DIR  # looked up now, so that tests can point it elsewhere
    path = perf or shutil.which("perf")
    if path is None:
        raise EnergyUnavailable("perf is not installed (Debian/Ubuntu: apt-get install "
                                "linux-perf, or linux-tools-$(uname -r))")
    if not pmu_dir.is_dir():
        raise EnergyUnavailable(f"no power PMU ({pmu_dir} is absent): this CPU or its hypervisor "
                                "exposes no RAPL events (virtual machines usually do not)")
    events = available_events(pmu_dir)
    if not events:
        raise EnergyUnavailable(f"the power PMU lists neither {' nor '.join(EVENTS)} "
                                f"under {pmu_dir / 'events'}")
    meter = PerfMeter(path, events)
    if probe:
        _probe(meter)
    return meter
