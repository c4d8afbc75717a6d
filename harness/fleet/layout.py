"""A fleet directory, results/<name>/: one ordinary results directory per machine, named by its
machine id, and nothing else, so that `ternbench compare results/<name>/*` takes every machine.
A Slurm array or a Kubernetes Job that runs `ternbench run --out results/<name>/<id>` per
machine writes the same layout."""
from __future__ import annotations

import re
from pathlib import Path

from harness.sweep.results import POINTS


def safe_id(text: str) -> str:
    """A machine id usable as a directory name, whatever a hostname or label holds."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-.") or "machine"


def machine_dirs(fleet_dir: Path) -> list[Path]:
    """The results directories directly under a fleet directory (empty for anything else)."""
    if not fleet_dir.is_dir() or (fleet_dir / POINTS).is_file():
        return []
    return sorted(d for d in fleet_dir.iterdir() if d.is_dir() and (d / POINTS).is_file())
