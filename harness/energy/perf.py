"""RAPL energy through `perf stat` and the kernel's `power` PMU.

Useful where energy_uj is root-only but perf is allowed (CAP_PERFMON or perf_event_paranoid <= 0).
start() launches `perf stat -a -x, -o FILE -e power/energy-pkg/,power/energy-ram/` (only the
events the PMU lists) with its counters disabled and a control FIFO (`--delay=-1 --control
fifo:CTL,ACK`, perf 5.11 and later), then enables them and returns on perf's acknowledgement;
stop() disables them the same way before it sends SIGINT, on which perf writes the totals
(already in joules, summed over sockets) and exits. So the energy window is the timed window,
to the FIFO's round trip, not perf's start-up and shutdown. A perf without --control counts
from when its counters open until SIGINT, and the provenance says so. perf itself handles the
counter's width and wraparound.
"""

from __future__ import annotations

import os
import select
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
WITHOUT_CONTROL = "; window from counter open to SIGINT (this perf has no --control)"


def _open_fifo(path: Path, flags: int, proc: subprocess.Popen) -> int:
    """Opens our end of a FIFO perf opens too, without blocking forever on a perf that exits
    first (one that does not know --control)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            return os.open(path, flags | os.O_NONBLOCK)
        except OSError:   # ENXIO: no reader yet on a write end
            if proc.poll() is not None or time.monotonic() > deadline:
                raise EnergyReadError("perf did not open its control FIFO") from None
            time.sleep(0.002)


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
        self._dir: Path | None = None
        self._ctl = self._ack = None      # the control FIFO's ends
        self.controlled: bool | None = None   # None: not tried yet; False: this perf has no --control
        self._t0 = 0.0
        keys = " + ".join(EVENTS[e] for e in events)
        self.provenance = f"measured: perf stat power/{'/,power/'.join(events)}/ ({keys})"

    def command(self, out: Path, control: tuple[Path, Path] | None = None) -> list[str]:
        cmd = [self.perf, "stat", "-a", "-x,", "-o", str(out), "-e", ",".join(f"power/{e}/" for e in self.events)]
        if control:
            cmd += ["--delay=-1", f"--control=fifo:{control[0]},{control[1]}"]
        return cmd

    def _start(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="ternbench-perf-"))
        self._out = self._dir / "perf.csv"
        if self.controlled is not False:
            ctl, ack = self._dir / "ctl", self._dir / "ack"
            os.mkfifo(ctl)
            os.mkfifo(ack)
            self._proc = subprocess.Popen(self.command(self._out, (ctl, ack)), stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          preexec_fn=_default_sigint)
            try:
                self._ctl = _open_fifo(ctl, os.O_WRONLY, self._proc)
                self._ack = _open_fifo(ack, os.O_RDONLY, self._proc)
            except EnergyReadError:
                if self.controlled:
                    raise EnergyReadError(f"perf stat stopped: {self._finish(kill=True)}") from None
                self._finish(kill=True)          # this perf has no --control: count without it
                self.controlled = False
                self.provenance += WITHOUT_CONTROL
            else:
                self.controlled = True
                self._command("enable")
                self._t0 = time.perf_counter()
                return
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

    def _command(self, word: str) -> None:
        """Sends enable or disable on the control FIFO and waits for perf's ack."""
        os.write(self._ctl, f"{word}\n".encode())
        deadline = time.monotonic() + READY_TIMEOUT
        got = b""
        while b"ack" not in got:
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise EnergyReadError(f"perf stat did not acknowledge {word!r}: {self._finish(kill=True) or 'timed out'}")
            ready, _, _ = select.select([self._ack], [], [], 0.05)
            try:
                data = os.read(self._ack, 64) if ready else b""
            except BlockingIOError:
                data = b""
            if ready and not data:   # perf has not opened its end yet: the FIFO reads as closed
                time.sleep(0.001)
            got += data

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
        if self.controlled:
            self._command("disable")
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
        for fd in (self._ctl, self._ack):
            if fd is not None:
                os.close(fd)
        self._ctl = self._ack = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = self._out = None

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
