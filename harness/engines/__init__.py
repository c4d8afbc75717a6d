"""The programs a sweep can measure: ternbench's own runtime, llama.cpp (built by ternbench from a
pinned sdist, or the user's build) and bitnet.cpp (the user's build). Each says whether it can
run here, and why not."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import bitnetcpp, llamacpp
from .llamacpp import EngineError, Installation

NAMES = ("ternbench", "llamacpp", "bitnetcpp")


@dataclass(frozen=True)
class Status:
    name: str
    ready: bool
    detail: str           # what it is (version, where), or why it cannot run and the fix
    formats: tuple[str, ...]
    bin: str | None = None


def status(cache: Path, llamacpp_bin: str | None = None, bitnetcpp_bin: str | None = None) -> list[Status]:
    import runtime

    out = [Status("ternbench", True, f"bundled runtime {runtime.version()}, built with {runtime.build_info()}",
                  tuple(runtime.LINEAR_FORMATS))]
    for module, given in ((llamacpp, llamacpp_bin), (bitnetcpp, bitnetcpp_bin)):
        found, why = module.find(cache, given)
        out.append(Status(module.NAME, found is not None, found.describe() if found else why, module.FORMATS,
                          str(found.bin) if found else None))
    return out


__all__ = ["NAMES", "Status", "status", "EngineError", "Installation", "llamacpp", "bitnetcpp"]
