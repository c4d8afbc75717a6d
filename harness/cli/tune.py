"""`ternbench tune`: measure (or show) the runtime's GEMV tuning for this CPU."""
from __future__ import annotations

import argparse
import sys

import runtime
from harness.cli.common import EXIT_OK, UsageError, print_json
from harness.cli.kernels import resolve_variants
from harness.inputs import parse_threads
from runtime import cpu, tuning

HELP = """\
The runtime chooses, per weight format, how far ahead its GEMV software-prefetches (none
included) and how large the row claims are that threads share work in, by measuring every
candidate on this CPU: alternating rounds of GEMVs cycling %d x the last-level cache (at most 1 GiB, at least 4 x). It
keeps the fastest and caches it per CPU identity, runtime build, variant and thread count
(%s). A context measures once when it finds nothing cached; this command shows the cached
choice, or measures it now (--force measures again). The results of the kernels never
depend on it, only their speed.

TERNBENCH_TUNING=auto|cache|off sets what contexts do (auto: measure when not cached;
cache: cached or built-in defaults; off: built-in defaults); TERNBENCH_CACHE_DIR moves the
cache.""" % (tuning.LLC_MULTIPLE, tuning.cache_dir() / "tuning")


def add_parser(sub):
    p = sub.add_parser("tune", help="measure or show the kernels' tuning for this CPU", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default="auto",
                   help="'auto' (the best this CPU runs; the default), 'all', or a comma-separated list")
    p.add_argument("--threads", default="1..max", help="thread counts: a list like 1,2 or a range like 1..max")
    p.add_argument("--force", action="store_true", help="measure again even when a tuning is cached")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=run)


def run(args) -> int:
    threads = parse_threads(args.threads, runtime.usable_cpus())
    variants = [v for v in resolve_variants(args.variants) if v != "scalar"]
    if not variants:
        raise UsageError("the scalar reference has nothing to tune; choose a SIMD variant")
    ident = cpu.identity()
    show = not (args.quiet or args.json)
    if not args.json:
        isa = " ".join(ident["isa"]) or "no SIMD extensions the kernels use"
        print(f"CPU: {ident['model_name']} ({_ids(ident)}; {isa})\ncache: {tuning.cache_file(ident)}")
    results = []
    for variant in variants:
        for t in threads:
            progress = (lambda m, v=variant, t=t: print(f"  ... {v}, {t} thread(s): {m}", file=sys.stderr,
                                                        flush=True)) if show else (lambda m: None)
            with runtime.Context(t, variant, tuning="off") as ctx:
                try:
                    result = tuning.apply(ctx, "auto", force=args.force, progress=progress, strict=True)
                except tuning.TuningError as e:
                    raise UsageError(str(e)) from None
            results.append(result)
            if not args.json:
                _print(result)
    if args.json:
        print_json({"cpu": ident, "cache_file": str(tuning.cache_file(ident)),
                    "results": [{**r.to_json(), "measured": r.measured} for r in results]})
    return EXIT_OK


def _ids(ident: dict) -> str:
    if "vendor_id" in ident:
        return (f"{ident['vendor_id']} family {ident['cpu family']} model {ident['model']} "
                f"stepping {ident['stepping']}")
    return ", ".join(f"{k} {v}" for k, v in ident.items() if k.startswith("CPU "))


def _print(r: tuning.Tuning) -> None:
    how = {"measured": "measured now", "cache": "from the cache"}.get(r.source, r.source)
    print(f"\n{r.variant}, {r.threads} thread(s): {how}" + (f" ({r.detail})" if r.detail else ""))
    print(f"  {'format':<7}{'prefetch':>9}{'claim':>8}   candidates, GB/s (prefetch bytes / claim KiB)")
    for fmt, (pf, claim) in r.settings.items():
        cands = r.measured.get(fmt, [])
        best = max((c["gbps"] for c in cands), default=None)
        text = ", ".join(f"{c['prefetch']}/{c['claim'] >> 10}K {c['gbps']:.1f}" + ("*" if c["gbps"] == best else "")
                         for c in cands) or "-"
        print(f"  {fmt:<7}{pf:>9}{f'{claim >> 10}K':>8}   {text}")
