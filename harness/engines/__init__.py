"""The programs a sweep can measure: ternbench's own runtime, llama.cpp (built by ternbench from a
pinned sdist, or the user's build) and bitnet.cpp (the user's build). Each says whether it can
run here, and why not."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import bitnetcpp, llamacpp
from .llamacpp import EngineError, Installation

NAMES = ("ternbench", "llamacpp", "bitnetcpp")
MODULES = {m.NAME: m for m in (llamacpp, bitnetcpp)}
# Each external engine's format, for planning: the output head's type as the engine's quantiser
# leaves it (llama.cpp keeps a TQ model's embedding, the tied head, in Q6_K; the worker records
# the file's actual type), and the ternbench format of about the same bits per weight, for
# memory and duration estimates.
HEAD_FORMAT = {"f16": "f16", "tq1_0": "q6_k", "tq2_0": "q6_k", "i2_s": "f16", "tl1": "f16", "tl2": "f16"}
LIKE = {"f16": "f16", "tq1_0": "tq1", "tq2_0": "i2s", "i2_s": "i2s", "tl1": "i2s", "tl2": "tq1"}


@dataclass(frozen=True)
class Status:
    name: str
    ready: bool
    detail: str           # what it is (version, where), or why it cannot run and the fix
    formats: tuple[str, ...]
    bin: str | None = None


def find(name: str, given: str | None = None, cache: Path | None = None) -> tuple[Installation | None, str]:
    """An external engine's installation and "", or None and why it cannot run here (with the fix)."""
    if cache is None:
        from runtime.tuning import cache_dir

        cache = cache_dir()
    return MODULES[name].find(cache, given)


def cannot_write(name: str, fmt: str, spec, installation: Installation | None) -> str:
    """Why engine NAME (found as INSTALLATION) cannot run the model SPEC in FMT, or "": bitnet.cpp's
    TL2 kernels exist for one model's shapes per build."""
    check = getattr(MODULES[name], "cannot_write", None)
    return check(fmt, spec, installation) if check else ""


def status(cache: Path, llamacpp_bin: str | None = None, bitnetcpp_bin: str | None = None) -> list[Status]:
    import runtime

    out = [Status("ternbench", True, f"bundled runtime {runtime.version()}, built with {runtime.build_info()}",
                  tuple(runtime.LINEAR_FORMATS))]
    for module, given in ((llamacpp, llamacpp_bin), (bitnetcpp, bitnetcpp_bin)):
        found, why = module.find(cache, given)
        out.append(Status(module.NAME, found is not None, found.describe() if found else why, module.FORMATS,
                          str(found.bin) if found else None))
    return out


__all__ = ["NAMES", "MODULES", "HEAD_FORMAT", "LIKE", "Status", "find", "status", "cannot_write", "EngineError", "Installation", "llamacpp", "bitnetcpp"]
