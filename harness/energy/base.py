"""What every energy backend shares: the reading, the settings, the errors and the meter shape."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# The default power figures of the `model` backend. Both come from one CPU so that they fit
# together: the Intel Xeon Platinum 8380 (Ice Lake SP, 40 cores, 270 W TDP: Intel ARK), whose
# package draws about 27 W per socket at idle (AnandTech, "Intel 3rd Gen Xeon Scalable (Ice Lake
# SP) Review", 2021, page "Power & Efficiency - 10nm Gains":
# https://www.anandtech.com/show/16594/intel-3rd-gen-xeon-scalable-review/5).
# Per busy core we take what is left of the TDP once idle is paid: (270 - 27) / 40 = 6.075 W, so
# that idle + all cores busy = TDP. A rough assumption, not a measurement: see model.py.
XEON_8380_TDP_WATTS = 270.0
XEON_8380_CORES = 40
XEON_8380_IDLE_WATTS = 27.0
DEFAULT_IDLE_WATTS = XEON_8380_IDLE_WATTS
DEFAULT_WATTS_PER_CORE = (XEON_8380_TDP_WATTS - XEON_8380_IDLE_WATTS) / XEON_8380_CORES
LIVE_POWERCAP_ROOT = "/sys/class/powercap"
POWERCAP_ROOT_ENV = "TERNBENCH_POWERCAP_ROOT"

BACKENDS = ("powercap", "perf", "pyrapl", "model")


@dataclass(frozen=True)
class Reading:
    """The energy of one window.

    `joules` is packages + DRAM only: core/uncore subzones are inside their package and psys
    contains both, so adding them again would double count. `domains` keeps every zone read.
    """

    joules: float
    seconds: float
    domains: dict[str, float]
    measured: bool
    provenance: str

    @property
    def watts(self) -> float:
        return self.joules / self.seconds if self.seconds > 0 else 0.0


class EnergyUnavailable(Exception):
    """A backend cannot work here. The message says why and how to fix it, in a line or two."""


class EnergyReadError(RuntimeError):
    """A window was measured but its energy cannot be known (counter reset, sampler too late,
    perf died). Raised rather than returning a number that would be silently wrong."""


@dataclass(frozen=True)
class EnergySettings:
    backend: str = "auto"  # auto | powercap | perf | pyrapl | model
    # where the powercap tree is read: a captured or simulated copy for tests ($TERNBENCH_POWERCAP_ROOT)
    powercap_root: Path = field(default_factory=lambda: Path(os.environ.get(POWERCAP_ROOT_ENV) or LIVE_POWERCAP_ROOT))
    watts_per_core: float = DEFAULT_WATTS_PER_CORE  # source: see the top of this module
    idle_watts: float = DEFAULT_IDLE_WATTS  # source: see the top of this module
    idle_seconds: float = 5.0  # length of the idle-power measurement

    def __post_init__(self) -> None:
        if self.backend not in ("auto",) + BACKENDS:
            raise ValueError(f"unknown energy backend {self.backend!r}: "
                             f"choose one of auto, {', '.join(BACKENDS)}")
        # Accept a str from a CLI or a YAML file: the dataclass is frozen, hence object.__setattr__.
        object.__setattr__(self, "powercap_root", Path(self.powercap_root))


@dataclass(frozen=True)
class BackendStatus:
    """One line of `ternbench sysinfo`: can this backend run here, and does it measure?"""

    name: str
    usable: bool
    measures: bool  # True for the RAPL backends, False for the model estimate
    detail: str  # why it is unusable, or what it would read

    @property
    def reason(self) -> str:
        return self.detail


class Meter:
    """An opened backend: start() a window, stop() it to get its Reading. Reusable."""

    name: str = "?"
    measured: bool = False

    def __init__(self) -> None:
        self._started = False

    def start(self) -> None:
        if self._started:
            raise RuntimeError(f"{self.name} meter: start() called twice without stop()")
        self._start()
        self._started = True

    def stop(self) -> Reading:
        if not self._started:
            raise RuntimeError(f"{self.name} meter: stop() without start()")
        # A failed stop still ends the window: the next start() must not be refused.
        self._started = False
        return self._stop()

    def follow(self, pid: int) -> None:
        """The work to meter runs in process PID (an external engine), not in this one. Counters
        of the whole package or machine see it anyway; a meter that counts this process's work
        (the model's CPU time) counts PID's instead."""

    def close(self) -> None:
        if self._started:
            self._started = False
            self._abort()

    def __enter__(self) -> "Meter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # What a backend implements.
    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self) -> Reading:
        raise NotImplementedError

    def _abort(self) -> None:
        """Drop a window left open (close() during a window): stop threads and processes."""
