"""What users write on a command line or in a config, parsed and bounded before anything is
built from it: lists, thread counts, matrix shapes. Errors are InputError, one line naming the
value; the CLI reports them as usage errors, the config reader names the file and line."""
from __future__ import annotations


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


def parse_threads(text: str, max_threads: int) -> list[int]:
    """'1,2,4', '1..max' or '2..8' -> sorted thread counts."""
    out = set()
    for part in parse_list(text, what="threads"):
        try:
            if ".." in part:
                lo, hi = part.split("..", 1)
                lo_i = int(lo)
                hi_i = max_threads if hi.strip() == "max" else int(hi)
                out.update(range(lo_i, hi_i + 1))
            else:
                out.add(max_threads if part == "max" else int(part))
        except ValueError:
            raise InputError(f"threads: {part!r} is not a number, a list like 1,2,4 or a range like 1..max") from None
    if not out or min(out) <= 0:
        raise InputError(f"threads must be at least 1 (got {text!r})")
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
        shapes.append((rows, cols))
    return shapes
