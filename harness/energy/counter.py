"""Turning successive readings of a wrapping RAPL energy counter into the energy in between.

The counter (energy_uj) counts up to max_energy_range_uj and starts again from 0. Between two
readings taken dt seconds apart it can have wrapped at most once only if the zone cannot spend
a whole range in dt; we bound a zone's power by MAX_PLAUSIBLE_WATTS and sample often enough
(see sample_interval) that this always holds. Then "lower than before" means exactly one wrap,
unless the energy that wrap implies is more than the zone could have spent in dt: then the
counter was reset (driver reload, CPU hotplug, suspend), and we raise rather than guess.
"""

from __future__ import annotations

from .base import EnergyReadError

# The most a single RAPL zone (one package, or one DRAM domain) is assumed to draw. The biggest
# server packages today are rated at 350-500 W; anything above this between two readings is not
# energy but a broken counter.
MAX_PLAUSIBLE_WATTS = 500.0

# Allowance for the counter's own update step (about 1 ms) and for reading several files one
# after the other: without it a tiny dt would make a genuine small wrap look implausible.
SLACK_SECONDS = 0.01

# Sampling every second is cheap (a few small sysfs reads) and keeps the sampler well inside the
# wrap period of every known counter (about 260 s on Intel at 500 W); more often is not needed.
MAX_INTERVAL_SECONDS = 1.0
MIN_INTERVAL_SECONDS = 0.001


class CounterReset(EnergyReadError):
    """The counter went down by more than one plausible wraparound."""


def sample_interval(range_uj: int, max_watts: float = MAX_PLAUSIBLE_WATTS) -> float:
    """Seconds between samples: half the time the zone needs at max_watts to run through its
    whole range (so at most one wrap fits between samples even if the sampler runs late by as
    much again), and never longer than MAX_INTERVAL_SECONDS."""
    wrap_seconds = range_uj / 1e6 / max_watts
    return max(MIN_INTERVAL_SECONDS, min(MAX_INTERVAL_SECONDS, wrap_seconds / 2))


class Accumulator:
    """The energy a zone spent since the first reading, through wraparounds."""

    def __init__(self, label: str, range_uj: int, first_uj: int, first_t: float,
                 max_watts: float = MAX_PLAUSIBLE_WATTS) -> None:
        self.label = label
        self.range_uj = range_uj
        self.max_watts = max_watts
        self.last_uj = first_uj
        self.last_t = first_t
        self.total_uj = 0
        self.wraps = 0

    def advance(self, value_uj: int, t: float) -> None:
        dt = max(0.0, t - self.last_t)
        most_uj = self.max_watts * (dt + SLACK_SECONDS) * 1e6
        if most_uj >= self.range_uj:
            # The zone could have gone once round the whole range and more without a trace:
            # whatever we add would be a guess.
            raise EnergyReadError(
                f"{self.label}: {dt:.3f} s between two readings, long enough at "
                f"{self.max_watts:.0f} W to wrap the counter (range {self.range_uj / 1e6:.0f} J) "
                f"more than once; the sampler fell behind, the window's energy is unknown")
        if value_uj >= self.last_uj:
            delta = value_uj - self.last_uj
        else:
            delta = self.range_uj - self.last_uj + value_uj
            if delta > most_uj:
                raise CounterReset(
                    f"{self.label}: energy_uj fell from {self.last_uj} to {value_uj} in "
                    f"{dt:.3f} s; as a wraparound that is {delta / 1e6:.1f} J, more than "
                    f"{self.max_watts:.0f} W allows, so the counter was reset (driver reload, "
                    f"CPU hotplug, suspend?): the window's energy is unknown, measure it again")
            self.wraps += 1
        self.total_uj += delta
        self.last_uj = value_uj
        self.last_t = t
