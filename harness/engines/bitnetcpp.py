"""bitnet.cpp as an engine: a checkout's `build/bin` (its llama-bench and llama-quantize), given by
the user (`--bitnetcpp-bin DIR`, or TERNBENCH_BITNETCPP_BIN). bitnet.cpp cannot be built from
PyPI: its kernels are generated per model by its own setup script, so ternbench does not install it."""
from __future__ import annotations

import os
from pathlib import Path

from harness.inputs import user_path

from .llamacpp import PROGRAMS, Installation

NAME = "bitnetcpp"
BIN_ENV = "TERNBENCH_BITNETCPP_BIN"
FORMATS = ("i2_s", "tl1", "tl2")


def find(cache: Path, given: str | None = None) -> tuple[Installation | None, str]:
    given = given or os.environ.get(BIN_ENV)
    if not given:
        return None, (f"not given: point --bitnetcpp-bin (or {BIN_ENV}) at a bitnet.cpp checkout's build/bin "
                      "(microsoft/BitNet, built with its setup_env.py); it cannot be installed from PyPI")
    d = user_path(given)
    missing = [p for p in PROGRAMS if not os.access(d / p, os.X_OK)]
    if missing:
        return None, f"{d}: no executable {', '.join(missing)} (bitnet.cpp's build/bin holds both)"
    return Installation(d, "given by the user", {}), ""
