"""An energy estimate where nothing measures: CPU time x watts per busy core + idle watts x wall time.

    joules = (user + system CPU seconds of this process, all threads) x watts_per_core
             (of the engine's process instead, for an external engine's point)
           + idle_watts x wall seconds

The defaults (EnergySettings) come from one public server CPU, the Intel Xeon Platinum 8380
(40 cores, 270 W TDP per Intel ARK; about 27 W package power at idle per AnandTech's Ice Lake SP
review, 2021): idle_watts = 27 W and watts_per_core = (270 - 27) / 40 = 6.075 W, so that idle
plus every core busy is the TDP. This is a rough assumption, not a measurement: real power
depends on the CPU, its frequency, the instruction mix (AVX-512 draws more) and memory traffic
(DRAM is not modelled). CPU time is counted per logical CPU, so with both SMT siblings of a
core busy the model counts two cores and overestimates. For comparison, CodeCarbon, without
RAPL, assumes 50 % of the TDP.
Readings are never `measured`; compare them with each other only, never with a measurement.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from .base import EnergySettings, Meter, Reading


def process_cpu_seconds() -> float:
    """User + system CPU time of this process, summed over all its threads. The process CPU
    clock counts in nanoseconds; psutil's cpu_times() counts in 10 ms ticks, which reads as zero
    for a window of a few milliseconds."""
    return time.process_time()


def threads_cpu_seconds(pid: int) -> float:
    """CPU time of every thread of process PID, in nanoseconds from the scheduler (schedstat),
    so that a window of milliseconds does not read as zero ticks. 0 once the process is gone."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue    # a thread that ended between the listing and the read
    return total / 1e9


class ModelMeter(Meter):
    name = "model"
    measured = False

    def __init__(self, watts_per_core: float, idle_watts: float, *,
                 cpu_seconds: Callable[[], float] = process_cpu_seconds,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__()
        if watts_per_core < 0 or idle_watts < 0:
            raise ValueError("model watts must not be negative")
        self.watts_per_core = watts_per_core
        self.idle_watts = idle_watts
        self._cpu_seconds = cpu_seconds
        self._clock = clock
        self._cpu0 = self._t0 = 0.0
        self.provenance = (f"estimated: cpu-time model, {watts_per_core:g} W per busy core + "
                           f"{idle_watts:g} W idle")

    def follow(self, pid: int) -> None:
        self._cpu_seconds = lambda: threads_cpu_seconds(pid)

    def _start(self) -> None:
        self._t0 = self._clock()
        self._cpu0 = self._cpu_seconds()

    def _stop(self) -> Reading:
        cpu = max(0.0, self._cpu_seconds() - self._cpu0)
        wall = self._clock() - self._t0
        domains = {"cpu-time": cpu * self.watts_per_core, "idle": wall * self.idle_watts}
        return Reading(joules=sum(domains.values()), seconds=wall, domains=domains,
                       measured=False, provenance=self.provenance)

    def _abort(self) -> None:
        pass


def open_model(settings: EnergySettings) -> ModelMeter:
    return ModelMeter(settings.watts_per_core, settings.idle_watts)
