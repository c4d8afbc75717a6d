"""What can spoil a point, recorded beside it: the load on the machine, the time a hypervisor
stole from its CPUs, the CPU clock where the kernel shows it, and how far the read bandwidth
drifted between the probes before and after the timed runs. A point is flagged unstable, with
the reasons, when any of them passes a stated limit (pyperf's check warns past a 10% spread
too); verdicts leave unstable points out and say so."""
from __future__ import annotations

import math
import os
import statistics
from pathlib import Path

# limits past which a point is unstable
MAX_SPREAD = 0.10          # sample standard deviation / mean of tokens/s (pyperf warns at 10%)
MAX_STEAL = 0.10           # share of CPU time the hypervisor gave to other guests during the runs
MAX_PROBE_DRIFT = 0.15     # |bandwidth after / bandwidth before - 1|


def snapshot(proc: Path = Path("/proc")) -> dict:
    """Load average, the CPU time counters (for steal) and the mean CPU clock, as readable now."""
    out: dict = {"load1": None, "ticks": None, "mhz": None}
    try:
        out["load1"] = os.getloadavg()[0]
    except OSError:
        pass
    try:
        fields = (proc / "stat").read_text().splitlines()[0].split()
        if fields[0] == "cpu":
            out["ticks"] = [int(v) for v in fields[1:9]]   # user nice system idle iowait irq softirq steal
    except (OSError, ValueError, IndexError):
        pass
    try:
        mhz = [float(line.split(":")[1]) for line in (proc / "cpuinfo").read_text().splitlines()
               if line.startswith("cpu MHz")]
        out["mhz"] = statistics.fmean(mhz) if mhz else None
    except (OSError, ValueError, IndexError):
        pass
    return out


def steal_fraction(before: dict, after: dict) -> float | None:
    a, b = before.get("ticks"), after.get("ticks")
    if not a or not b or len(a) < 8 or len(b) < 8:
        return None
    total = sum(b) - sum(a)
    return (b[7] - a[7]) / total if total > 0 else None


def summary(processes: list[dict], tps: list[float]) -> dict:
    """The conditions of a point from its worker processes' snapshots (before and after the
    timed runs, and the probes around them), and whether they make it unstable."""
    steals = [s for s in (steal_fraction(p.get("conditions_before") or {}, p.get("conditions_after") or {})
                          for p in processes) if s is not None]
    loads = [p[k]["load1"] for p in processes for k in ("conditions_before", "conditions_after")
             if (p.get(k) or {}).get("load1") is not None]
    mhz = [p[k]["mhz"] for p in processes for k in ("conditions_before", "conditions_after")
           if (p.get(k) or {}).get("mhz") is not None]
    drifts = []
    for p in processes:
        before, after = p.get("probe_before_gbps") or [], p.get("probe_after_gbps") or []
        if before and after and statistics.median(before) > 0:
            drifts.append(statistics.median(after) / statistics.median(before) - 1)
    spread = statistics.stdev(tps) / statistics.fmean(tps) if len(tps) > 1 else None
    out = {"spread": spread, "steal_fraction": max(steals) if steals else None,
           "load1": [min(loads), max(loads)] if loads else None,
           "cpu_mhz": [min(mhz), max(mhz)] if mhz else None,
           "probe_drift": max(drifts, key=abs) if drifts else None}
    why = []
    if spread is not None and spread > MAX_SPREAD:
        why.append(f"tokens/s spread {spread:.0%} of the mean (limit {MAX_SPREAD:.0%})")
    if out["steal_fraction"] is not None and out["steal_fraction"] > MAX_STEAL:
        why.append(f"the hypervisor stole {out['steal_fraction']:.0%} of the CPU time (limit {MAX_STEAL:.0%})")
    if out["probe_drift"] is not None and abs(out["probe_drift"]) > MAX_PROBE_DRIFT:
        why.append(f"the read bandwidth moved {out['probe_drift']:+.0%} between the probes before and after "
                   f"(limit {MAX_PROBE_DRIFT:.0%})")
    out["unstable"] = why
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}
