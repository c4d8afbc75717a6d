"""`ternbench engines`: the programs a sweep can measure, and installing llama.cpp."""
from __future__ import annotations

import argparse
import sys

from harness.cli.common import EXIT_OK, UsageError, print_json

HELP = """\
List the engines a sweep can measure: ternbench's bundled runtime, llama.cpp and bitnet.cpp,
each with its version and build, the formats it runs, and, when it cannot run here, why and
how to fix it.

`ternbench engines install llamacpp` builds llama.cpp's llama-bench and llama-quantize from the
pinned llama-cpp-python sdist on PyPI (which vendors llama.cpp), natively for this CPU, into
the cache directory (~/.cache/ternbench/engines/llamacpp/VERSION, or $TERNBENCH_CACHE_DIR),
with cmake from PyPI when the machine has none. About 5 minutes on 2 cores. --llamacpp-bin and
--bitnetcpp-bin (or TERNBENCH_LLAMACPP_BIN / TERNBENCH_BITNETCPP_BIN) use your own builds instead;
bitnet.cpp cannot be installed from PyPI."""


def add_parser(sub):
    p = sub.add_parser("engines", help="list the engines (ternbench, llama.cpp, bitnet.cpp); install llama.cpp",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", choices=("list", "install"), default="list", help="list (default) or install")
    p.add_argument("engine", nargs="?", help="with install: llamacpp")
    p.add_argument("--force", action="store_true", help="with install: rebuild even when installed")
    p.add_argument("--llamacpp-bin", metavar="DIR", help="use this llama.cpp build's bin directory")
    p.add_argument("--bitnetcpp-bin", metavar="DIR", help="use this bitnet.cpp checkout's build/bin")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=run)


def run(args) -> int:
    from dataclasses import asdict

    from harness import engines
    from runtime.tuning import cache_dir

    if args.action == "install":
        if args.engine != "llamacpp":
            raise UsageError("ternbench installs llamacpp only (bitnet.cpp: give --bitnetcpp-bin DIR)"
                             if args.engine == "bitnetcpp" else
                             f"install what? `ternbench engines install llamacpp` (got {args.engine!r})")
        show = not (args.quiet or args.json)
        try:
            found = engines.llamacpp.install(cache_dir(), args.force,
                                             (lambda m: print(f"  ... {m}", file=sys.stderr, flush=True))
                                             if show else (lambda m: None))
        except engines.EngineError as e:
            raise UsageError(f"installing llamacpp: {e}") from None
        if args.json:
            print_json({"engine": "llamacpp", "bin": str(found.bin), "record": found.record})
        else:
            print(f"llamacpp: {found.describe()}\n  {found.bin}")
        return EXIT_OK
    if args.engine is not None:
        raise UsageError(f"`ternbench engines` lists every engine; {args.engine!r} goes with install")
    statuses = engines.status(cache_dir(), args.llamacpp_bin, args.bitnetcpp_bin)
    if args.json:
        print_json([asdict(s) for s in statuses])
        return EXIT_OK
    for s in statuses:
        print(f"{s.name:<10} {'ready' if s.ready else 'not ready'}: {s.detail}")
        print(f"{'':<10} formats: {', '.join(s.formats)}")
    return EXIT_OK
