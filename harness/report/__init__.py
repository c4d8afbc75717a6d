"""Self-contained HTML reports of results directories: `ternbench report` (one sweep, with the
claim verdicts) and `ternbench compare` (several machines side by side).

Data preparation (points, machine, single, compare) is kept apart from drawing (plots) and
from markup (render and the jinja2 templates), so each can be tested and changed alone."""
from __future__ import annotations

__all__ = ["write_single", "write_compare"]


def __getattr__(name: str):
    # Loaded on first use: rendering pulls in matplotlib and jinja2, which every `ternbench`
    # command would otherwise pay for at start-up (its provenance helpers are needed by sysinfo).
    if name in __all__:
        from . import render

        return getattr(render, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
