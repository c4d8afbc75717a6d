"""Energy in a sweep. The backend is chosen once, before the first point, where idle power is
measured too; every worker opens that same backend (measure/energy_window.py)."""
from __future__ import annotations

import dataclasses

from harness import energy
from harness.measure.energy_window import reading_json

from .config import EnergyConfig


def settings(cfg: EnergyConfig, backend: str | None = None) -> energy.EnergySettings:
    numbers = {k: v for k, v in (("idle_seconds", cfg.idle_seconds), ("watts_per_core", cfg.watts_per_core),
                                  ("idle_watts", cfg.idle_watts), ("powercap_root", cfg.powercap_root))
               if v is not None}
    return energy.EnergySettings(backend=backend or cfg.backend, **numbers)


def prepare(cfg: EnergyConfig, log=lambda msg: None) -> dict:
    """Chooses the backend (raising energy.EnergyUnavailable when a named one cannot work) and
    measures idle power with it: what results/NAME/energy.json holds."""
    s = settings(cfg)
    meter, not_used = energy.open_meter(s)
    try:
        log(f"energy: {meter.name} ({'measured' if meter.measured else 'ESTIMATED'}); "
            + (f"idle power over {s.idle_seconds:g} s ..." if meter.measured else
               f"idle power: the estimate's assumed {s.idle_watts:g} W, not a measurement"))
        idle = energy.measure_idle(meter, s.idle_seconds)
    finally:
        meter.close()
    return {"backend": meter.name, "measured": meter.measured, "provenance": idle.provenance,
            "not_used": not_used, "idle": reading_json(idle),
            "settings": {k: str(v) if k == "powercap_root" else v for k, v in dataclasses.asdict(s).items()}}


