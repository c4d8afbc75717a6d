"""`ternbench compare A B [...]`: one self-contained HTML page comparing machines."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import EXIT_OK, UsageError, print_json

HELP = """\
Write DIR/index.html (default reports/compare-<names>/): the same sweep on several machines,
side by side, for comparing CPUs. A fleet directory (`ternbench fleet run`: one results
directory per machine) stands for all of its machines. A header per machine (CPU, cores,
virtualisation, how energy was obtained, the claims judged on its points alone); then the points
every machine ran, matched on model, format, head format, threads and test (the kernel variant
is each machine's own, and shown), with tokens/s, its ratio to the first machine, tokens/s per
thread, speed-up over the baseline with its interval, J/token and the fraction of the machine's
read bandwidth; each machine at its highest thread count; plots per test; and the points only
one machine has. J/token ratios are taken only between two measurements, or two estimates made
with the same model: never measured against estimated.

exit status: 0 written; 2 fewer than two directories, one that is not a results directory,
or a bad option."""


def add_parser(sub):
    p = sub.add_parser("compare", help="self-contained HTML report comparing results directories of several machines",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, nargs="+", metavar="RESULTS_DIR",
                   help="two or more results directories, or fleet directories; ratios are against the first")
    p.add_argument("--claims", type=Path, metavar="FILE",
                   help="claims to judge on each machine (default: the same as `ternbench report`)")
    p.add_argument("--out", type=Path, metavar="DIR", help="where to write index.html (default: reports/compare-<names>/)")
    p.add_argument("--json", action="store_true", help="print a JSON summary (path, machines, counts)")
    p.set_defaults(run=run)


def run(args) -> int:
    from harness.cli.report import default_out, write_machines
    from harness.fleet.layout import machine_dirs

    if args.claims is not None and not args.claims.is_file():
        raise UsageError(f"--claims {args.claims}: no such file")
    paths = [d for p in args.results for d in (machine_dirs(p) or [p])]
    if len(paths) < 2:
        raise UsageError("needs at least two results directories to compare (for one, use `ternbench report`)")
    path, summary = write_machines(paths, args.out or default_out(*args.results, prefix="compare-"), args.claims)
    if args.json:
        print_json(summary)
    else:
        print(path)
    return EXIT_OK
