"""RAPL energy through Linux powercap sysfs (/sys/class/powercap), per domain, with wraparound.

Layout (flattened under /sys/class/powercap, also nested under each package zone):
  intel-rapl:N      a top-level zone: `name` is package-N, or psys (whole platform), or dram
  intel-rapl:N:M    a subzone of package N: core, uncore, or dram
AMD Zen registers the same "intel-rapl" control type (Linux 5.11+); "amd-rapl" is accepted too in
case a kernel ever names it so. "intel-rapl-mmio" zones report the same package counters through
MMIO: they are used only when no MSR zones exist, never added to them.

The window's total is packages + DRAM zones, wherever the DRAM zone sits (subzone of a package or
top level); core/uncore are inside their package and psys contains packages and DRAM, so they are
recorded in Reading.domains but never added.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .base import EnergyReadError, EnergySettings, EnergyUnavailable, Meter, Reading
from .counter import MAX_PLAUSIBLE_WATTS, Accumulator, sample_interval

# Preference order when several control types expose zones: they measure the same hardware.
PROVIDERS = ("intel-rapl", "amd-rapl", "intel-rapl-mmio")
_ZONE_RE = re.compile(r"^(intel-rapl-mmio|intel-rapl|amd-rapl):(\d+)(?::(\d+))?$")

UNREADABLE_FIX = (
    "energy_uj is root-only (mode 0400) since the 2020 Platypus fix (CVE-2020-8694). Fix: run as "
    "root; or make it readable, e.g. a udev rule ACTION==\"add\", SUBSYSTEM==\"powercap\", "
    "RUN+=\"/bin/chmod o+r /sys%p/energy_uj\"; or use the perf backend "
    "(CAP_PERFMON, or sysctl kernel.perf_event_paranoid=0)")


@dataclass(frozen=True)
class Zone:
    zone_id: str  # e.g. intel-rapl:0:1
    path: Path
    name: str  # the `name` file: package-0, core, uncore, dram, psys
    key: str  # the label in Reading.domains: package-0, package-0/core, dram-0, psys
    counted: bool  # part of Reading.joules (packages and DRAM only)
    range_uj: int  # max_energy_range_uj

    @property
    def energy_file(self) -> Path:
        return self.path / "energy_uj"


def read_uj(path: Path) -> int:
    with open(path) as f:
        return int(f.read().strip())


def _zone_dirs(root: Path) -> dict[str, Path]:
    """Every zone directory by id, looking both at the flat class directory and inside zones
    and control types (fake trees and some setups only nest them)."""
    found: dict[str, Path] = {}

    def scan(d: Path, depth: int) -> None:
        try:
            entries = sorted(d.iterdir())
        except OSError:
            return
        for e in entries:
            m = _ZONE_RE.match(e.name)
            if m and e.is_dir():
                found.setdefault(e.name, e)
            if depth < 2 and e.is_dir() and (m or e.name in PROVIDERS):
                scan(e, depth + 1)

    scan(root, 0)
    return found


def _read_text(path: Path) -> str:
    with open(path) as f:
        return f.read().strip()


def find_zones(root: Path) -> tuple[list[Zone], str]:
    """The zones of the preferred control type, and a note on what else was seen and skipped.
    Raises EnergyUnavailable when there is no usable package zone."""
    if not root.is_dir():
        raise EnergyUnavailable(
            f"no RAPL zones: {root} does not exist (virtual machines usually expose none)")
    dirs = _zone_dirs(root)
    by_provider: dict[str, dict[str, Path]] = {}
    for zid, path in dirs.items():
        by_provider.setdefault(_ZONE_RE.match(zid).group(1), {})[zid] = path
    if not by_provider:
        raise EnergyUnavailable(
            f"no RAPL zones under {root} (virtual machines usually expose none; on bare metal "
            "try `modprobe intel_rapl_msr`)")

    provider = next((p for p in PROVIDERS if p in by_provider), None)
    skipped = [p for p in by_provider if p != provider]
    zones: list[Zone] = []
    keys: set[str] = set()
    top_drams = 0
    # Top-level zones first, so that subzones can name themselves after their package.
    ordered = sorted(by_provider[provider].items(),
                     key=lambda kv: (kv[0].count(":"), [int(x) for x in kv[0].split(":")[1:]]))
    package_of: dict[str, str] = {}
    for zid, path in ordered:
        parts = zid.split(":")
        try:
            name = _read_text(path / "name")
            range_uj = int(_read_text(path / "max_energy_range_uj"))
        except (OSError, ValueError) as e:
            raise EnergyUnavailable(f"cannot read zone {path}: {e}") from e
        if len(parts) == 2:
            if name.startswith("package"):
                key, counted = name, True
                package_of[parts[1]] = name
            elif name.startswith("dram"):
                key = name if re.search(r"\d$", name) else f"dram-{top_drams}"
                top_drams += 1
                counted = True
            else:  # psys and anything new: recorded, not added (psys holds packages + DRAM)
                key, counted = name, False
        else:
            parent = package_of.get(parts[1], f"{provider}:{parts[1]}")
            if name == "dram":
                # Named after its package (package-0 -> dram-0) so both layouts give dram-N.
                key, counted = "dram-" + parent.removeprefix("package-").split(":")[-1], True
            else:
                key, counted = f"{parent}/{name}", False
        if key in keys:
            key = f"{key}@{zid}"
        keys.add(key)
        zones.append(Zone(zid, path, name, key, counted, range_uj))

    if not any(z.counted and z.name.startswith("package") for z in zones):
        raise EnergyUnavailable(
            f"RAPL zones under {root} ({', '.join(z.zone_id + '=' + z.name for z in zones)}) "
            "include no package zone")
    note = (f"{', '.join(skipped)} zones ignored: same counters as {provider}" if skipped else "")
    return zones, note


def _check_readable(zones: list[Zone], reader: Callable[[Path], int]) -> None:
    for z in zones:
        try:
            reader(z.energy_file)
        except (OSError, ValueError) as e:
            why = getattr(e, "strerror", None) or str(e) or type(e).__name__
            raise EnergyUnavailable(f"cannot read {z.energy_file} ({why}): {UNREADABLE_FIX}") from e


def _fmt_interval(seconds: float) -> str:
    return f"{seconds:g} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


class PowercapMeter(Meter):
    """Reads every zone at start, then every `interval` seconds in a background thread (so that
    a long window cannot hide a second wraparound), and at stop."""

    name = "powercap"
    measured = True

    def __init__(self, zones: list[Zone], *, interval: float,
                 reader: Callable[[Path], int] = read_uj,
                 clock: Callable[[], float] = time.perf_counter,
                 max_watts: float = MAX_PLAUSIBLE_WATTS, note: str = "") -> None:
        super().__init__()
        self.zones = zones
        self.interval = interval
        self.max_watts = max_watts
        self._reader = reader
        self._clock = clock
        self._accs: list[Accumulator] = []
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._error: BaseException | None = None
        self._t0 = 0.0
        counted = [z.key for z in zones if z.counted]
        others = [z.key for z in zones if not z.counted]
        self.provenance = (f"measured: powercap {' + '.join(counted)}, "
                           f"sampled every {_fmt_interval(interval)}")
        if others:
            self.provenance += f" ({', '.join(others)} recorded, not added: they overlap those)"
        if note:
            self.provenance += f"; {note}"

    def _read_all(self) -> list[int]:
        values = []
        for z in self.zones:
            try:
                values.append(self._reader(z.energy_file))
            except (OSError, ValueError) as e:
                raise EnergyReadError(f"cannot read {z.energy_file} during the window: {e}") from e
        return values

    def _sample(self) -> float:
        t = self._clock()
        for acc, v in zip(self._accs, self._read_all()):
            acc.advance(v, t)
        return t

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self._sample()
            except BaseException as e:  # reported by stop(): a thread cannot raise to its caller
                self._error = e
                return

    def _start(self) -> None:
        self._t0 = self._clock()
        self._accs = [Accumulator(f"{z.key} ({z.energy_file})", z.range_uj, v, self._t0,
                                  self.max_watts)
                      for z, v in zip(self.zones, self._read_all())]
        self._error = None
        self._halt.clear()
        self._thread = threading.Thread(target=self._run, name="powercap-sampler", daemon=True)
        self._thread.start()

    def _halt_thread(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _stop(self) -> Reading:
        self._halt_thread()
        if self._error is not None:
            raise self._error
        t1 = self._sample()
        domains = {z.key: acc.total_uj / 1e6 for z, acc in zip(self.zones, self._accs)}
        joules = sum(domains[z.key] for z in self.zones if z.counted)
        return Reading(joules=joules, seconds=t1 - self._t0, domains=domains, measured=True,
                       provenance=self.provenance)

    def _abort(self) -> None:
        self._halt_thread()


def open_powercap(settings: EnergySettings, *, interval: float | None = None,
                  reader: Callable[[Path], int] = read_uj,
                  clock: Callable[[], float] = time.perf_counter) -> PowercapMeter:
    """Find the zones under settings.powercap_root and check that every energy_uj reads.
    `interval` overrides the sampling rule (tests); `reader` and `clock` are injectable too."""
    zones, note = find_zones(settings.powercap_root)
    _check_readable(zones, reader)
    if interval is None:
        interval = sample_interval(min(z.range_uj for z in zones))
    return PowercapMeter(zones, interval=interval, reader=reader, clock=clock, note=note)
