"""The cluster as the driver sees it: connecting to it, the nodes that qualify for the sweep, and
the machine id that names each one's results directory."""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field

from harness.sweep.config import FleetConfig

from . import FleetError, import_ray
from .layout import safe_id

MACHINE_LABEL = "ternbench-machine"   # a node label that names the machine (ray start --labels)
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Node:
    node_id: str
    hostname: str
    ip: str
    cpus: float
    resource: float | None          # how much of the fleet's custom resource the node offers
    labels: dict = field(default_factory=dict)
    machine_id: str = ""

    def where(self) -> str:
        return f"{self.hostname} ({self.ip}, Ray node {self.node_id[:8]})"


def _check_reachable(address: str) -> None:
    """Ray waits minutes on an address where no cluster answers, printing C++ log lines meanwhile:
    a plain TCP connection first turns that into one line."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise FleetError(f"--address {address!r}: expected HOST:PORT (the head node's GCS, 6379 by default) "
                         "or auto (the cluster this machine belongs to)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise FleetError(f"cannot reach a Ray cluster at {address}: {e.strerror or e} (is `ray start --head` "
                         "running there, and the port open?)") from None


def connect(address: str | None):
    """ray, connected as a driver to the cluster at `address`; never a new local cluster."""
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise FleetError("no Ray cluster given: add --address HOST:PORT (or auto), set fleet.address in the "
                         "configuration, or RAY_ADDRESS; start a cluster with `ray start --head`")
    ray = import_ray()
    if address.startswith("ray://"):
        # Ray Client cannot carry streaming generator tasks, which bring each point back as it lands
        raise FleetError(f"--address {address}: Ray Client (ray://) cannot stream results back; run ternbench "
                         "fleet on a machine of the cluster (the head node, say) with --address HOST:PORT")
    if address != "auto":
        _check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as e:
        hint = " (start one with `ray start --head`)" if address == "auto" else ""
        raise FleetError(f"cannot connect to the Ray cluster at {address}: {str(e).splitlines()[0]}{hint}") from None
    return ray


def _qualifies(n: dict, settings: FleetConfig) -> str | None:
    """Why a node does not take part, or None."""
    if not n.get("Alive"):
        return "not alive"
    resources = n.get("Resources") or {}
    if settings.resource and resources.get(settings.resource, 0) <= 0:
        return f"has no {settings.resource!r} resource"
    if resources.get("CPU", 0) <= 0:
        return "has no CPU resource"
    labels = n.get("Labels") or {}
    for k, v in settings.labels:
        if labels.get(k) != v:
            return f"label {k}={labels.get(k)!r}, not {v!r}"
    return None


def machine_ids(nodes: list[Node]) -> list[Node]:
    """Each node named for its results directory: its ternbench-machine label, else its hostname;
    names that would collide (identical VM images, several Ray nodes on one host) get the IP, then
    the Ray node id, so no two nodes share a directory. The name is not the CPU's: a machine whose
    CPU changed must find its directory again, for --resume to refuse it."""
    def base(n):
        return safe_id(n.labels.get(MACHINE_LABEL) or n.hostname or n.ip)

    names = [base(n) for n in nodes]
    for extra in (lambda n: n.ip, lambda n: n.node_id[:8]):
        dup = {x for x in names if names.count(x) > 1}
        names = [safe_id(f"{name}-{extra(n)}") if name in dup else name for name, n in zip(names, nodes)]
    return [Node(**{**n.__dict__, "machine_id": name}) for n, name in zip(nodes, names)]


def survey(ray, settings: FleetConfig) -> tuple[list[Node], list[tuple[dict, str]]]:
    """(the nodes that take part, at most settings.nodes of them; every other node with why not)."""
    chosen, others = [], []
    for n in sorted(ray.nodes(), key=lambda n: (n.get("NodeManagerHostname") or "", n.get("NodeID"))):
        why = _qualifies(n, settings)
        if why is None and settings.nodes is not None and len(chosen) >= settings.nodes:
            why = f"beyond the {settings.nodes} node(s) asked for"
        if why:
            others.append((n, why))
            continue
        res = n["Resources"]
        chosen.append(Node(n["NodeID"], n.get("NodeManagerHostname") or "", n.get("NodeManagerAddress") or "",
                           res.get("CPU", 0), res.get(settings.resource) if settings.resource else None,
                           dict(n.get("Labels") or {})))
    return machine_ids(chosen), others


def no_node_message(address: str, settings: FleetConfig, others) -> str:
    why = "; ".join(sorted({w for _, w in others})) or "the cluster has no nodes"
    hint = (f" (give nodes the resource: ray start ... --resources='{{\"{settings.resource}\": 1}}', or set "
            "fleet.resource: null to take every node)" if settings.resource else "")
    return f"no node of the Ray cluster at {address} qualifies: {why}{hint}"
