"""RAPL energy through the pyRAPL package, for people who already use it.

What pyRAPL lacks, and why powercap is preferred: it reads only
/sys/class/powercap/intel-rapl/intel-rapl:N (no other root, no psys, no top-level DRAM zone, no
amd-rapl / intel-rapl-mmio naming), it does not handle the counter's wraparound (a window across
a wrap gives a negative difference: we raise instead of reporting it), and it has been
unmaintained since 2019.
"""

from __future__ import annotations

import gc
import logging
import time
import warnings

from .base import EnergyReadError, EnergySettings, EnergyUnavailable, Meter, Reading
from .powercap import UNREADABLE_FIX

PYRAPL_ROOT = "/sys/class/powercap"


def _import_pyrapl():
    # pyRAPL's import logs a warning about pymongo through the root logger, which configures the
    # whole program's logging as a side effect: hold the root logger with a NullHandler meanwhile.
    root = logging.getLogger()
    guard = None if root.handlers else logging.NullHandler()
    if guard:
        root.addHandler(guard)
    try:
        import pyRAPL
    finally:
        if guard:
            root.removeHandler(guard)
    return pyRAPL


class PyRaplMeter(Meter):
    name = "pyrapl"
    measured = True

    def __init__(self, pyrapl) -> None:
        super().__init__()
        self._pyrapl = pyrapl
        self._m = None
        self._t0 = 0.0
        self.provenance = "measured: pyRAPL packages + dram (no wraparound handling)"

    def _start(self) -> None:
        self._m = self._pyrapl.Measurement("ternbench")
        self._t0 = time.perf_counter()
        self._m.begin()

    def _stop(self) -> Reading:
        self._m.end()
        t1 = time.perf_counter()
        result, self._m = self._m.result, None
        domains: dict[str, float] = {}
        for kind, values in (("package", result.pkg), ("dram", result.dram)):
            for socket, uj in enumerate(values or []):
                if uj == -1:  # pyRAPL's mark for a socket/device it does not read
                    continue
                if uj < 0:
                    raise EnergyReadError(
                        f"pyRAPL gave {uj / 1e6:.1f} J for {kind}-{socket}: the counter wrapped "
                        "during the window and pyRAPL does not handle wraparound; use the "
                        "powercap backend")
                domains[f"{kind}-{socket}"] = uj / 1e6
        if not domains:
            raise EnergyReadError("pyRAPL returned no package or dram energy")
        return Reading(joules=sum(domains.values()), seconds=t1 - self._t0, domains=domains,
                       measured=True, provenance=self.provenance)

    def _abort(self) -> None:
        self._m = None


def open_pyrapl(settings: EnergySettings) -> PyRaplMeter:
    if str(settings.powercap_root) != PYRAPL_ROOT:
        raise EnergyUnavailable(f"pyRAPL reads only {PYRAPL_ROOT}/intel-rapl, "
                                f"not {settings.powercap_root}")
    try:
        pyrapl = _import_pyrapl()
    except ImportError as e:
        raise EnergyUnavailable(f"pyRAPL is not installed ({e}): pip install pyRAPL") from e
    try:
        with warnings.catch_warnings():
            # pyRAPL opens sysfs files without closing them; that is its business, not the user's
            warnings.simplefilter("ignore", ResourceWarning)
            pyrapl.setup()
            gc.collect()
    except Exception as e:  # pyRAPL raises its own exceptions, OSError, ValueError...: report all
        what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        if isinstance(e, pyrapl.PyRAPLException):
            what += f" (no readable package zone under {PYRAPL_ROOT}/intel-rapl)"
        elif isinstance(e, PermissionError):
            what += f"; {UNREADABLE_FIX}"
        raise EnergyUnavailable(f"pyRAPL.setup() failed: {what}") from e
    return PyRaplMeter(pyrapl)
