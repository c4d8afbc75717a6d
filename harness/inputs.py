"""What users write on a command line or in a config, parsed and bounded before anything is
built from it: lists, thread counts, matrix shapes. Errors are InputError, one line naming the
value; the CLI reports them as usage errors, the config reader names the file and line."""
from __future__ import annotations

from pathlib import Path

import runtime

# Stated limits of what a user may ask for; past them a request is a mistake, not a benchmark.
MAX_SHAPE_WEIGHTS = 1 << 31   # one benchmarked matrix: 2 GB as int8 before packing
MAX_REPETITIONS = 10_000      # timed values per worker process
MAX_WARMUPS = 1_000
MAX_PROCESSES = 100           # worker processes per point
MAX_TOKENS = 1 << 20          # prompt or generation length (a model's own context is checked too)
MAX_SEED = 2 ** 63 - 1
MAX_NODES = 10_000            # machines of one fleet run


class InputError(ValueError):
    """A value a user wrote that cannot be used."""


def parse_list(text: str, allowed=None, what="value") -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise InputError(f"empty {what} list")
    if allowed is not None:
        for t in items:
            if t not in allowed:
                raise InputError(f"unknown {what} {t!r}; choose from {', '.join(allowed)}")
    return items


def count(value, what: str, lo: int = 1, hi: int | None = None) -> int:
    """An integer in [lo, hi], or InputError naming `what`, the bounds and the value."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{what} must be a whole number, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise InputError(f"{what} must be {bounds}, got {value}")
    return value


def threads(value, what: str = "--threads") -> int:
    """One validation of a thread count, before anything is allocated: 1..the runtime's limit."""
    return count(value, what, 1, runtime.MAX_THREADS)


def parse_threads(text: str, max_threads: int) -> list[int]:
    """'1,2,4', '1..max' or '2..8' -> sorted thread counts, each within 1..the runtime's limit
    (checked on the bounds, before any range is built)."""
    out = set()
    for part in parse_list(text, what="threads"):
        try:
            if ".." in part:
                lo, hi = part.split("..", 1)
                lo_i = max_threads if lo.strip() == "max" else int(lo)
                hi_i = max_threads if hi.strip() == "max" else int(hi)
            else:
                lo_i = hi_i = max_threads if part == "max" else int(part)
        except ValueError:
            raise InputError(f"threads: {part!r} is not a number, a list like 1,2,4 or a range like 1..max") from None
        if lo_i > hi_i:
            raise InputError(f"threads: {part!r} is an empty range ({lo_i} is above {hi_i})")
        for end in (lo_i, hi_i):
            threads(end, f"threads ({part!r})")
        out.update(range(lo_i, hi_i + 1))
    return sorted(out)


def parse_shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for part in parse_list(text, what="shape"):
        try:
            rows, cols = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise InputError(f"shape {part!r} is not ROWSxCOLS, e.g. 2560x6912") from None
        if rows <= 0 or cols <= 0:
            raise InputError(f"shape {part!r} must have positive rows and columns")
        if rows * cols > MAX_SHAPE_WEIGHTS:
            raise InputError(f"shape {part!r} has {rows * cols:,} weights; at most {MAX_SHAPE_WEIGHTS:,} (2^31)")
        shapes.append((rows, cols))
    return shapes


def user_path(text) -> Path:
    """A path as a user wrote it, with ~ expanded where it names a home directory: `~0` or
    `~nobody-here` stays as written (a name, not a home) instead of raising."""
    path = Path(text)
    try:
        return path.expanduser()
    except RuntimeError:   # "Could not determine home directory"
        return path
