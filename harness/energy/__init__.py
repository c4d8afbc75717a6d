"""Energy meters: RAPL through powercap, perf or pyRAPL, or a CPU-time estimate.

    meter, why_not_others = open_meter(EnergySettings())
    with meter:
        meter.start(); run(); reading = meter.stop()   # reading.joules, .seconds, .provenance
"""

from .base import BackendStatus, EnergyReadError, EnergySettings, EnergyUnavailable, Meter, Reading
from .choose import backend_status, measure_idle, open_meter

__all__ = ["BackendStatus", "EnergyReadError", "EnergySettings", "EnergyUnavailable", "Meter",
           "Reading", "backend_status", "measure_idle", "open_meter"]
