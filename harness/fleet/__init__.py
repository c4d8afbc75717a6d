"""`ternbench fleet`: one sweep on each chosen node of a Ray cluster, each finished point streamed
back into results/<name>/<machine-id>/ on the driver, in the format of a local run.

    layout.py    the fleet directory: one results directory per machine (needs no Ray)
    software.py  the code a node runs, compared with the driver's
    nodes.py     the cluster: connecting, choosing nodes, naming machines     (driver)
    task.py      the local sweep on one node, its records yielded as they land  (node)
    collect.py   the nodes' streams written with the results directory's writers (driver)

Ray is optional (`pip install '.[fleet]'`): nothing here imports it at module level, and
import_ray() turns its absence into one line saying how to install it."""
from __future__ import annotations

INSTALL = "pip install 'ternbench[fleet]' (in a checkout: pip install -e '.[fleet]')"


class FleetError(Exception):
    """A fleet the user must fix (no Ray, an unreachable cluster, no node that qualifies): one
    line, exit status 2."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise FleetError(f"the fleet runs on Ray, which is not installed here: {INSTALL}") from None
    return ray
