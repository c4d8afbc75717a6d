"""Energy inside a timed point: a worker opens the backend the sweep chose and reads it around each
timed pass, so the energy window is the timing window (MLPerf's rule); the point's figures are
derived from those readings."""
from __future__ import annotations

import dataclasses
import statistics

from harness import energy


def reading_json(r: energy.Reading) -> dict:
    return {**dataclasses.asdict(r), "watts": r.watts}


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
