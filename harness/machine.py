"""Facts about this machine that measurements depend on (cache sizes, CPUs)."""
from __future__ import annotations

import platform
from pathlib import Path

from runtime import api as _runtime_api

# one definition: the runtime's warning about more threads than CPUs counts the same way
usable_cpus = _runtime_api.usable_cpus

DEFAULT_LLC_BYTES = 32 << 20


def _parse_size(text: str) -> int:
    text = text.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * mult


def last_level_cache_bytes(sysfs: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> tuple[int, str]:
    """Size of the largest cache level and where the figure came from."""
    best = (0, 0)
    for index in sysfs.glob("index*"):
        try:
            level = int((index / "level").read_text())
            if (index / "type").read_text().strip() == "Instruction":
                continue
            best = max(best, (level, _parse_size((index / "size").read_text())))
        except (OSError, ValueError):
            continue
    if best[1]:
        return best[1], f"L{best[0]} from {sysfs}"
    return DEFAULT_LLC_BYTES, "not readable; assumed 32 MiB"




def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
