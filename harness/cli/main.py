"""The `ternbench` command: one front door, one subcommand per job."""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from harness.inputs import InputError

from .common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError


def build_parser() -> argparse.ArgumentParser:
    from . import (bench, check, compare, engines, fleet, generate, history, kernels, lossless, models, report, run,
                   sysinfo, tune)

    p = argparse.ArgumentParser(
        prog="ternbench",
        description="Benchmark native 1.58-bit (ternary) LLM inference on this CPU against an FP16 baseline.",
    )
    p.add_argument("--version", action="store_true", help="print versions of ternbench and its runtime build")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    # in the order of the README: the sweep and its outputs first, then the runtime's own tools
    for module in (run, fleet, report, compare, check, history, sysinfo, engines, models, bench, kernels, tune, generate,
                   lossless):
        module.add_parser(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import runtime

        print(f"ternbench {runtime.version()}; runtime built with {runtime.build_info()}")
        return EXIT_OK
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    warnings.simplefilter("default")
    warnings.formatwarning = lambda msg, cat, *a, **k: f"ternbench: warning: {msg}\n"
    from runtime import RuntimeFailure, tuning

    try:
        try:
            tuning.mode()  # a bad TERNBENCH_TUNING is the user's to fix, before any context
        except ValueError as e:
            raise UsageError(str(e)) from None
        return args.run(args)
    except (UsageError, InputError) as e:
        print(f"ternbench {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeFailure as e:
        # the C runtime failed a call the arguments were fine for (memory it could not
        # allocate, say): the machine's limit, said in one line, not a traceback
        print(f"ternbench {args.command}: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"ternbench {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`ternbench models | head`): stop quietly, and point
        # stdout at /dev/null so that the interpreter's final flush does not fail too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


