"""Energy in a sweep. The backend is chosen once, before the first point, where idle power is
measured too; every worker opens that same backend and reads it around each timed pass, so the
energy window is the timing window (MLPerf's rule), not a separate pass."""
from __future__ import annotations

import dataclasses
import statistics

from . import energy
from .sweep_config import EnergyConfig


def settings(cfg: EnergyConfig, backend: str | None = None) -> energy.EnergySettings:
    numbers = {k: v for k, v in (("idle_seconds", cfg.idle_seconds), ("watts_per_core", cfg.watts_per_core),
                                  ("idle_watts", cfg.idle_watts)) if v is not None}
    return energy.EnergySettings(backend=backend or cfg.backend, **numbers)


def reading_json(r: energy.Reading) -> dict:
    return {**dataclasses.asdict(r), "watts": r.watts}


def prepare(cfg: EnergyConfig, log=lambda msg: None) -> dict:
    """Chooses the backend (raising energy.EnergyUnavailable when a named one cannot work) and
    measures idle power with it: what results/NAME/energy.json holds."""
    s = settings(cfg)
    meter, not_used = energy.open_meter(s)
    try:
        log(f"energy: {meter.name} ({'measured' if meter.measured else 'ESTIMATED'}); "
            f"idle power over {s.idle_seconds:g} s ...")
        idle = energy.measure_idle(meter, s.idle_seconds)
    finally:
        meter.close()
    return {"backend": meter.name, "measured": meter.measured, "provenance": idle.provenance,
            "not_used": not_used, "idle": reading_json(idle),
            "settings": {k: str(v) if k == "powercap_root" else v for k, v in dataclasses.asdict(s).items()}}


def worker_settings(chosen: dict) -> dict:
    """What a worker needs to open the backend `prepare` chose (passed as JSON)."""
    return {**chosen["settings"], "backend": chosen["backend"]}


def open_for_worker(d: dict) -> energy.Meter:
    from pathlib import Path

    fields = {f.name for f in dataclasses.fields(energy.EnergySettings)}
    s = energy.EnergySettings(**{k: Path(v) if k == "powercap_root" else v for k, v in d.items() if k in fields})
    meter, _ = energy.open_meter(s)
    return meter


def point_energy(runs: list[dict], idle_watts: float | None) -> dict | None:
    """Per-point figures from the timed runs' readings: joules per token (total, and above idle
    power when it was measured), tokens per joule, average watts, and how they were obtained."""
    readings = [r["energy"] for r in runs if r.get("energy")]
    if not readings:
        return None
    if len(readings) != len(runs):
        errors = [r["energy_error"] for r in runs if r.get("energy_error")]
        return {"error": f"{len(runs) - len(readings)} of {len(runs)} runs have no energy reading: "
                         f"{errors[0] if errors else 'unknown'}"}
    per_token = [e["joules"] / r["tokens"] for e, r in zip(readings, runs)]
    watts = [e["joules"] / e["seconds"] for e in readings]
    out = {"measured": readings[0]["measured"], "provenance": readings[0]["provenance"],
           "j_per_token": statistics.median(per_token), "j_per_token_samples": per_token,
           "tokens_per_j": 1.0 / statistics.median(per_token), "watts": statistics.median(watts),
           "j_per_token_above_idle": None}
    if idle_watts is not None:
        above = [(e["joules"] - idle_watts * e["seconds"]) / r["tokens"] for e, r in zip(readings, runs)]
        out["j_per_token_above_idle"] = statistics.median(above)
    return out
