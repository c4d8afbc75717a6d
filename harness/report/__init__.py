"""Self-contained HTML reports of results directories: `ternbench report` (one sweep, with the
claim verdicts) and `ternbench compare` (several machines side by side).

Data preparation (points, machine, single, compare) is kept apart from drawing (plots) and
from markup (render and the jinja2 templates), so each can be tested and changed alone."""
from __future__ import annotations

from .render import write_compare, write_single

__all__ = ["write_single", "write_compare"]
