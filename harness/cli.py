"""The `ternbench` command: one front door, one subcommand per job."""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


def parse_list(text: str, allowed=None, what="value") -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UsageError(f"empty {what} list")
    if allowed is not None:
        for t in items:
            if t not in allowed:
                raise UsageError(f"unknown {what} {t!r}; choose from {', '.join(allowed)}")
    return items


def parse_threads(text: str, max_threads: int) -> list[int]:
    """'1,2,4', '1..max' or '2..8' -> sorted thread counts."""
    out = set()
    for part in parse_list(text, what="threads"):
        try:
            if ".." in part:
                lo, hi = part.split("..", 1)
                lo_i = int(lo)
                hi_i = max_threads if hi.strip() == "max" else int(hi)
                out.update(range(lo_i, hi_i + 1))
            else:
                out.add(max_threads if part == "max" else int(part))
        except ValueError:
            raise UsageError(f"threads: {part!r} is not a number, a list like 1,2,4 or a range like 1..max") from None
    if not out or min(out) <= 0:
        raise UsageError(f"threads must be at least 1 (got {text!r})")
    return sorted(out)


def parse_shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for part in parse_list(text, what="shape"):
        try:
            rows, cols = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise UsageError(f"shape {part!r} is not ROWSxCOLS, e.g. 2560x6912") from None
        if rows <= 0 or cols <= 0:
            raise UsageError(f"shape {part!r} must have positive rows and columns")
        shapes.append((rows, cols))
    return shapes


def build_parser() -> argparse.ArgumentParser:
    from . import (bench_cmd, check_cmd, compare_cmd, generate_cmd, kernels_cmd, lossless_cmd, models_cmd,
                   report_cmd, run_cmd, sysinfo_cmd, tune_cmd)

    p = argparse.ArgumentParser(
        prog="ternbench",
        description="Benchmark native 1.58-bit (ternary) LLM inference on this CPU against an FP16 baseline.",
    )
    p.add_argument("--version", action="store_true", help="print versions of ternbench and its runtime build")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    # in the order of the README: the sweep and its outputs first, then the runtime's own tools
    for module in (run_cmd, report_cmd, compare_cmd, check_cmd, sysinfo_cmd,
                   models_cmd, bench_cmd, kernels_cmd, tune_cmd, generate_cmd, lossless_cmd):
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
    try:
        from runtime import tuning

        try:
            tuning.mode()  # a bad TERNBENCH_TUNING is the user's to fix, before any context
        except ValueError as e:
            raise UsageError(str(e)) from None
        return args.run(args)
    except UsageError as e:
        print(f"ternbench {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"ternbench {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`ternbench models | head`): stop quietly, and point
        # stdout at /dev/null so that the interpreter's final flush does not fail too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")

