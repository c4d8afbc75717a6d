"""Choosing a backend: `auto` takes the first that works in the order powercap, perf, pyrapl,
model, and says for every other one why it was not used."""

from __future__ import annotations

import time
from typing import Callable

from . import model, perf, powercap, pyrapl_meter
from .base import BACKENDS, BackendStatus, EnergySettings, EnergyUnavailable, Meter, Reading

# name -> opener; looked up at call time so that tests can replace one.
OPENERS: dict[str, Callable[[EnergySettings], Meter]] = {
    "powercap": lambda s: powercap.open_powercap(s),
    "perf": lambda s: perf.open_perf(),
    "pyrapl": lambda s: pyrapl_meter.open_pyrapl(s),
    "model": lambda s: model.open_model(s),
}


def _try(name: str, settings: EnergySettings) -> tuple[Meter | None, str]:
    try:
        return OPENERS[name](settings), ""
    except EnergyUnavailable as e:
        return None, str(e)
    except OSError as e:  # odd sysfs or process trouble: a reason to move on, not a crash
        return None, f"{type(e).__name__}: {e}"


def open_meter(settings: EnergySettings) -> tuple[Meter, dict[str, str]]:
    """The meter to use, and for every other backend why it was not used.

    A named backend that cannot work raises EnergyUnavailable("NAME: why, and the fix").
    `auto` tries powercap, perf, pyrapl, then model, which always works: so it never settles for
    the estimate where a measuring backend works."""
    if settings.backend != "auto":
        meter, why = _try(settings.backend, settings)
        if meter is None:
            raise EnergyUnavailable(f"{settings.backend}: {why}")
        return meter, {b: f"not tried: {settings.backend} was asked for"
                       for b in BACKENDS if b != settings.backend}
    reasons: dict[str, str] = {}
    for i, name in enumerate(BACKENDS):
        meter, why = _try(name, settings)
        if meter is None:
            reasons[name] = why
            continue
        for later in BACKENDS[i + 1:]:
            reasons[later] = f"not tried: {name} already works"
        return meter, reasons
    raise EnergyUnavailable("no energy backend works: " +
                            "; ".join(f"{k}: {v}" for k, v in reasons.items()))


def backend_status(settings: EnergySettings) -> list[BackendStatus]:
    """Every backend, whether it works here (each is opened and closed), and why not."""
    out = []
    for name in BACKENDS:
        meter, why = _try(name, settings)
        if meter is None:
            out.append(BackendStatus(name, False, name != "model", why))
        else:
            meter.close()
            out.append(BackendStatus(name, True, meter.measured, meter.provenance))
    return out


def measure_idle(meter: Meter, seconds: float) -> Reading:
    """The energy of `seconds` of doing nothing, in one window: the baseline to subtract or to
    report beside a run's energy."""
    meter.start()
    try:
        time.sleep(seconds)
    except BaseException:
        meter.close()
        raise
    return meter.stop()
