"""`ternbench sysinfo`: the machine fingerprint every result depends on, and its read bandwidth."""
from __future__ import annotations

import argparse
import sys

import runtime
from harness.cli.common import EXIT_OK, print_json
from harness.inputs import parse_threads
from harness.measure import fingerprint, probe
from harness.report import provenance

HELP = """\
Describe this machine as far as a benchmark result depends on it: CPU model and ids, the
instruction-set extensions the kernels use, logical CPUs / physical cores / sockets and the
CPUs this process may use, every cache level, memory and NUMA nodes, transparent huge pages,
the frequency governor, limits and turbo state, whether it is a virtual machine or a
container (and the evidence), the OS, the runtime build and its usable kernel variants, and
the ternbench version and git commit. What cannot be read is shown as unknown (null in JSON)
with a note saying why: VMs and containers often hide cpufreq and DMI.

Then, unless --no-bandwidth, measure the read bandwidth for each thread count with the probe
of `ternbench kernels --bandwidth`: the median of %d passes over %d x the last-level cache (at most 1 GiB, at least 4 x), for
each read pattern; "plain" (one sequential stream per thread) is the yardstick of every
bandwidth fraction. The probe takes a few seconds per thread count.""" % (probe.BANDWIDTH_PASSES,
                                                                       probe.LLC_MULTIPLE)


def add_parser(sub):
    p = sub.add_parser("sysinfo", help="fingerprint this machine (CPU, caches, memory, frequency, VM) and its bandwidth",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print the fingerprint as JSON")
    p.add_argument("--no-bandwidth", action="store_true", help="skip the read-bandwidth probe (fast)")
    p.add_argument("--threads", default="1..max",
                   help="thread counts to probe: a list like 1,2 or a range like 1..max (default: %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=run)


def run(args) -> int:
    threads = parse_threads(args.threads, runtime.usable_cpus())  # bad input fails even with --no-bandwidth
    quiet = args.json or args.quiet
    text = not args.json

    _progress(quiet, "reading the machine fingerprint")
    info = fingerprint.fingerprint()
    if text:
        print("\n".join(provenance.summary_lines(info)), flush=True)

    info["energy_backends"] = _energy(text)

    info["read_bandwidth_gbps"], info["read_patterns_gbps"] = ((None, None) if args.no_bandwidth
                                                               else _bandwidth(threads, quiet, text))
    if args.json:
        print_json(info)
    return EXIT_OK


def _energy(text: bool) -> list[dict]:
    """Which energy backends work here, and why the others do not."""
    from harness.energy import EnergySettings, backend_status

    statuses = backend_status(EnergySettings())
    if text:
        print("\nenergy backends")
        for b in statuses:
            state = ("measures" if b.measures else "estimates") if b.usable else "not usable"
            print(f"  {b.name:<9} {state}: {b.detail}")
        if not any(b.usable and b.measures for b in statuses):
            print("  no measuring backend works here: sweeps record energy as labelled estimates (model)")
    return [{"name": b.name, "usable": b.usable, "measures": b.measures, "detail": b.detail} for b in statuses]


def _progress(quiet: bool, msg: str) -> None:
    if not quiet:
        print(f"  ... {msg}", file=sys.stderr, flush=True)


def _bandwidth(threads: list[int], quiet: bool, text: bool) -> tuple[dict[str, float], dict[str, dict]]:
    """Probes one thread count at a time, so the table grows as it is measured: the plain
    sequential read (the yardstick), and every read pattern beside it."""
    import runtime

    if text:
        print(f"\nread bandwidth, GB/s (median of {probe.BANDWIDTH_PASSES} passes over "
              f"{probe.working_set_bytes() >> 20} MiB; plain: one sequential stream per thread)\n"
              f"{'threads':>8}" + "".join(f"{p:>14}" for p in runtime.READ_PATTERNS), flush=True)
    plain, patterns = {}, {}
    for t in threads:
        _progress(quiet, f"read bandwidth, {t} thread(s)")
        found = probe.thread_bandwidth(t)
        plain[str(t)], patterns[str(t)] = found.plain, found.medians()
        if text:
            print(f"{t:>8}" + "".join(f"{v:>14.1f}" for v in patterns[str(t)].values()), flush=True)
    return plain, patterns
