"""`ternbench fleet`: one sweep on each chosen node of a Ray cluster, into results/<name>/<machine-id>/."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path

from harness.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, print_json

HELP = """\
Run one sweep on each chosen node of a Ray cluster (pip install '.[fleet]'), for comparing CPUs.
Each node runs the sweep as `ternbench run` would there (its own plan: what its CPUs and memory
cannot run is skipped, with the reason), one node one sweep: the task holds all the node's CPUs
and all of its fleet resource, so Ray schedules nothing else there meanwhile. A node must run the
driver's ternbench (the same code and C sources), or it is refused, naming both versions.

Each finished point lands at once in OUT/<machine-id>/ on this machine, in the format of a local
run, with that node's fingerprint: `ternbench compare OUT` then sets the machines side by side.

  ternbench fleet nodes --address HEAD:6379                  which nodes would run, and their ids
  ternbench fleet run configs/vendor.yaml --address HEAD:6379
  ternbench fleet run configs/vendor.yaml --address HEAD:6379 --resume    only what is missing

Start a cluster: `ray start --head --resources='{"ternbench": 1}'` on one machine, then
`ray start --address=HEAD:6379 --resources='{"ternbench": 1}'` on each other one, every one
from a checkout of the same commit with `make setup` done (its .venv/bin/ray)."""

RUN_HELP = """\
Run the sweep CONFIG once on each chosen node of the Ray cluster. Every finished point is written
at once into OUT/<machine-id>/ (OUT: results/NAME by default), as `ternbench run` writes a results
directory; a machine's id is its Ray node label ternbench-machine, else its hostname (`ternbench
fleet nodes` lists them). The fleet: section of CONFIG (address, resource, labels, nodes) gives
defaults that the options override. Progress per node on stderr, then a summary per machine:
points finished, failed, skipped and missing, with reasons. Then: ternbench compare OUT.

exit status: 0 every node finished every runnable point; 1 a point failed, or a node was refused,
failed or lost; 2 bad configuration or arguments, no Ray, an unreachable cluster, no node that
qualifies, or every node refused; 130 interrupted (every finished point is kept)."""


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _nodes(text: str) -> int:
    from harness import inputs

    try:
        return inputs.count(int(text) if text.lstrip("-").isdigit() else text, "--nodes", 1, inputs.MAX_NODES)
    except inputs.InputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _selection(p) -> None:
    p.add_argument("--address", metavar="ADDR",
                   help="the cluster: HOST:PORT of the head node, or auto (default: fleet.address, else "
                        "$RAY_ADDRESS); run from a machine of the cluster: Ray Client (ray://) cannot stream results")
    p.add_argument("--resource", metavar="NAME",
                   help="take only nodes offering this Ray custom resource, and hold all of it while measuring "
                        "(default: fleet.resource, else 'ternbench'; none: every alive node)")
    p.add_argument("--label", type=_label, action="append", metavar="KEY=VALUE",
                   help="take only nodes with this Ray node label (repeatable; adds to fleet.labels)")
    p.add_argument("--nodes", type=_nodes, metavar="N", help="at most N nodes (default: fleet.nodes, else all)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def add_parser(sub):
    p = sub.add_parser("fleet", help="run a sweep on every node of a Ray cluster", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="fleet_command", metavar="ACTION")
    r = actions.add_parser("run", help="the sweep on each chosen node, results into OUT/<machine-id>/",
                           description=RUN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("config", type=Path, metavar="CONFIG.yaml", help="the sweep configuration")
    _selection(r)
    r.add_argument("--out", type=Path, metavar="DIR", help="the fleet directory (default: results/NAME)")
    r.add_argument("--resume", action="store_true",
                   help="run on each node only the points its directory in --out lacks (missing or failed)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    r.set_defaults(run=run)
    n = actions.add_parser("nodes", help="the cluster's nodes: which would run a sweep, their machine ids, why not",
                           description="List the nodes of the cluster, the ones a fleet run would take (with the "
                                       "machine id naming each one's results directory) and why the others not.")
    n.add_argument("config", type=Path, nargs="?", metavar="CONFIG.yaml", help="a sweep whose fleet: section to use")
    _selection(n)
    n.set_defaults(run=nodes)
    p.set_defaults(run=lambda args: p.print_help(sys.stderr) or EXIT_USAGE)


def _settings(args, config=None):
    from harness.sweep.config import FleetConfig

    base = config.fleet if config is not None else FleetConfig()
    changes = {}
    if args.address:
        changes["address"] = args.address
    if args.resource:
        changes["resource"] = None if args.resource.lower() == "none" else args.resource
    if args.label:
        changes["labels"] = base.labels + tuple(args.label)
    if args.nodes:
        changes["nodes"] = args.nodes
    return dataclasses.replace(base, **changes)


def _config(path: Path):
    from harness.sweep.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as e:
        raise UsageError(str(e)) from None


def _connect(settings):
    from harness.fleet import FleetError, nodes

    try:
        ray = nodes.connect(settings.address)
        chosen, others = nodes.survey(ray, settings)
    except FleetError as e:
        raise UsageError(str(e)) from None
    return ray, chosen, others


def nodes(args) -> int:
    from harness.fleet import nodes as fleet_nodes

    settings = _settings(args, _config(args.config) if args.config else None)
    with contextlib.redirect_stdout(sys.stderr):
        ray, chosen, others = _connect(settings)
        ray.shutdown()
    if args.json:
        print_json({"chosen": [{"machine_id": n.machine_id, "node_id": n.node_id, "hostname": n.hostname, "ip": n.ip,
                                "cpus": n.cpus, "labels": n.labels} for n in chosen],
                    "not_chosen": [{"node_id": n.get("NodeID"), "hostname": n.get("NodeManagerHostname"),
                                    "why": why} for n, why in others]})
    else:
        for n in chosen:
            print(f"  run   {n.machine_id:<28} {n.where()}, {n.cpus:g} CPU(s)")
        for n, why in others:
            print(f"  not   {(n.get('NodeManagerHostname') or '?'):<28} Ray node {str(n.get('NodeID'))[:8]}: {why}")
    if not chosen:
        raise UsageError(fleet_nodes.no_node_message(settings.address or "auto", settings, others))
    return EXIT_OK


def _request(config) -> dict:
    """What every node needs to run the sweep as the driver has it: the configuration, and the
    model files it names by a relative path (the node has no copy of the driver's directory)."""
    from harness.fleet import software

    files = {}
    for ref in config.models:
        rel = Path(ref.text)
        if ref.kind == "preset" and ref.path and not rel.is_absolute() and ".." not in rel.parts:
            files[rel.as_posix()] = Path(ref.path).read_bytes()
    return {"software": software.identity(), "config_text": config.text, "config_name": config.path.name,
            "config_dir": str(config.path.parent), "model_files": files}


def run(args) -> int:
    from harness.fleet import collect
    from harness.fleet.layout import machine_dirs
    from harness.sweep.results import ResultsDir

    config = _config(args.config)
    settings = _settings(args, config)
    out = args.out or Path("results") / config.name
    if ResultsDir(out).has_points():
        raise UsageError(f"{out} is one machine's results directory (of `ternbench run`); a fleet writes one per "
                         "machine under --out: choose another --out")
    if args.resume and not out.is_dir():
        raise UsageError(f"--resume: {out} does not exist")
    if machine_dirs(out) and not args.resume:
        raise UsageError(f"{out} already holds results; add --resume to finish that fleet run, or choose another --out")
    # Ray prints what it hears from the cluster (a raylet that died, say) on stdout: stderr is
    # where that belongs, and stdout stays the summary's (--json)
    with contextlib.redirect_stdout(sys.stderr):
        ray, chosen, others = _connect(settings)
        try:
            if not chosen:
                from harness.fleet.nodes import no_node_message

                raise UsageError(no_node_message(settings.address or "auto", settings, others))
            log = (lambda m: None) if args.quiet or args.json else (lambda m: print(m, file=sys.stderr, flush=True))
            runs = [collect.NodeRun(n, ResultsDir(out / n.machine_id)) for n in chosen]
            log(f"{config.name}: {len(runs)} node(s); results in {out}/<machine-id>/")
            completed = collect.run_all(ray, runs, _request(config), settings.resource, config.baseline, log)
        finally:
            ray.shutdown()
    return _report(args, settings, out, runs, completed, collect.stale_dirs(out, runs))


def _report(args, settings, out: Path, runs, completed: bool, stale) -> int:
    if not completed:
        status = 130
    elif all(r.status == "refused" for r in runs):
        status = EXIT_USAGE
    elif any(r.status != "done" or r.failed for r in runs):
        status = EXIT_FAILURE
    else:
        status = EXIT_OK
    again = f"ternbench fleet run {args.config} --address {settings.address or 'auto'} --out {out} --resume"
    unfinished = any(r.status not in ("done", "refused") or r.over_budget for r in runs)
    if args.json:
        print_json({"results": str(out), "machines": [r.summary() for r in runs],
                    "not_in_this_run": [str(d) for d in stale], "interrupted": not completed,
                    "resume": again if unfinished else None, "exit_status": status})
        return status
    print(f"{out}: {len(runs)} machine(s)")
    for r in runs:
        s = r.summary()
        print(f"  {r.node.machine_id} ({r.node.hostname}, {s['cpu_id'] or 'CPU unknown'}): {r.status}"
              + (f" ({r.reason})" if r.reason else "") + f"; {len(r.ok) + len(r.already)} point(s) finished"
              + (f" ({len(r.already)} before)" if r.already else "") + f", {len(r.failed)} failed, "
              f"{len(r.skipped)} skipped" + (f", {len(s['missing'])} missing" if s["missing"] else ""))
        for f in r.failed:
            print(f"    FAILED  {f['key']}: {f['reason']}")
        for sk in r.skipped:
            print(f"    skipped {sk['key']}: {sk['reason']}")
    for d in stale:
        print(f"  {d.name}: in {out} from an earlier run, but not among the nodes chosen now")
    if unfinished:
        print(f"to finish: {again}")
    print(f"compare the machines: ternbench compare {out}")
    return status
