"""`ternbench bench`: one model x format x variant x threads point, llama-bench style."""
from __future__ import annotations

import sys
from dataclasses import asdict

import runtime

from . import kernel_bench, machine, model_bench
from .cli import EXIT_OK, UsageError, print_json
from .models import ModelSpecError, find_model

HELP = """\
Measure one point like llama-bench's pp/tg tests: prompt processing (--pp tokens as one
batch) and generation (--tg tokens one at a time, from an empty cache), --reps repetitions
after one warm-up; medians and standard deviations of tokens/s. Synthetic weights (random
ternary, seeded) are generated outside the timed region. Also reports the weight bytes
each generated token reads, the bandwidth that implies, and its fraction of the plain
sequential read probed with the same threads around the timed runs (every read pattern
of that probe is reported beside it). The GEMV tuning the runtime ran with (see
`ternbench tune`) is part of the result."""


def add_parser(sub):
    import argparse

    p = sub.add_parser("bench", help="benchmark one model point (prompt processing and generation)",
                       description=HELP, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="preset name (see `ternbench models`) or a model YAML")
    p.add_argument("--format", default="i2s", choices=("i2s", "tq1", "f16"), help="weight format of the linears")
    p.add_argument("--head-format", choices=("int8", "f16"),
                   help="embedding / output head format (default: int8 for ternary formats, f16 for f16)")
    p.add_argument("--kv-cache", default="f16", choices=runtime.KV_FORMATS, help="KV cache format")
    p.add_argument("--variant", default="auto", help="kernel variant (see `ternbench kernels --list`)")
    p.add_argument("--threads", type=int, default=machine.usable_cpus(), help="threads")
    p.add_argument("--pp", type=int, default=512, help="prompt tokens (0 to skip)")
    p.add_argument("--tg", type=int, default=128, help="generated tokens (0 to skip)")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions after one warm-up")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic weights and prompt")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=run)


def run(args) -> int:
    try:
        spec = find_model(args.model)
    except ModelSpecError as e:
        raise UsageError(str(e)) from None
    if args.threads <= 0:
        raise UsageError(f"--threads must be at least 1 (got {args.threads})")
    if args.pp < 0 or args.tg < 0 or args.pp + args.tg == 0:
        raise UsageError("--pp and --tg must be >= 0 and not both 0")
    if args.reps <= 0:
        raise UsageError(f"--reps must be at least 1 (got {args.reps})")
    if args.variant != "auto" and args.variant not in runtime.KNOWN_VARIANTS:
        raise UsageError(f"unknown variant {args.variant!r}; known: auto, {', '.join(runtime.KNOWN_VARIANTS)}")
    progress = None if args.quiet or args.json else (lambda m: print(f"  ... {m}", file=sys.stderr, flush=True))
    try:
        head = args.head_format or ("f16" if args.format == "f16" else "int8")
        r = model_bench.run_point(spec, args.format, head, args.variant, args.threads, args.pp, args.tg,
                                  args.reps, args.seed, progress, args.kv_cache)
    except model_bench.DoesNotFit as e:
        raise UsageError(str(e)) from None
    except runtime.UnsupportedVariant as e:
        raise UsageError(str(e)) from None
    if args.json:
        print_json(asdict(r))
        return EXIT_OK
    print(f"{r.model}: {r.format} linears, {r.head_format} head, {r.kv_cache} KV cache; {r.variant}, "
          f"{r.threads} thread(s); set-up {r.setup_s:.1f} s")
    if r.n_prompt:
        print(f"  pp{r.n_prompt}: {r.pp_tps:9.2f} tokens/s  (sd {r.pp_tps_stddev:.2f}, {r.reps} reps)")
    if r.n_gen:
        print(f"  tg{r.n_gen}: {r.tg_tps:9.2f} tokens/s  (sd {r.tg_tps_stddev:.2f}, {r.reps} reps)")
        print(f"  {r.bytes_per_token / 1e6:.1f} MB of weights per token -> {r.tg_bandwidth_gbps:.1f} GB/s, "
              f"{r.bandwidth_fraction:.0%} of the {r.bandwidth_gbps:.1f} GB/s plain sequential read probed alongside")
        others = ", ".join(f"{k} {v:.1f}" for k, v in r.read_patterns_gbps.items() if k != kernel_bench.PLAIN)
        print(f"  (other read patterns of that probe, GB/s: {others})")
    print(f"  GEMV tuning (prefetch bytes / claim): {runtime.tuning.describe(r.tuning)}")
    return EXIT_OK
