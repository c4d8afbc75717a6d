"""Facts about this machine that measurements depend on (cache sizes, CPUs)."""
from __future__ import annotations

import platform
from pathlib import Path

from runtime import api as _runtime_api
from runtime.cpu import last_level_cache_bytes, parse_size  # noqa: F401  (one definition, re-exported)

# one definition: the runtime's warning about more threads than CPUs counts the same way
usable_cpus = _runtime_api.usable_cpus


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
