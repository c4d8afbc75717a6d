"""`ternbench kernels`: list the kernel variants, probe bandwidth, time the matmul kernels."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import runtime
from harness import inputs
from harness.cli.common import EXIT_OK, UsageError, print_json
from harness.inputs import parse_list, parse_shapes, parse_threads
from harness.measure import kernels, probe

HELP = """\
Time GEMV (one token) and GEMM (--n tokens) for each weight format x kernel variant x
thread count, on the BitNet b1.58 2B4T matrix shapes by default. Each call reads a
different copy of the weights (together %d x the last-level cache but at most 1 GiB, never below 4 x; at most a quarter of
the free memory), so the figures are memory figures, not cache figures; a GEMV row first
reads every copy once untimed, as a model reads its weights token after token (unless that
pass would outlast twice --budget: so slow a kernel does not wait for memory). weight GB/s is
packed weight bytes per second; 'of read' divides it by the plain sequential read
(one stream per thread, widest loads, no software prefetch) probed with the same threads
just before and just after that row (bandwidth on a shared machine drifts); 'best read'
is the fastest read pattern of the same probe. Each context runs with the GEMV tuning
the runtime chose for this CPU (see `ternbench tune`); every row records it. GOPS counts
a multiply-add as two operations.

--ceiling measures each format's compute ceiling instead: one matrix of each --shapes'
column count, with rows sized to fill half of every thread's L2, multiplied by one token
over and over, so its weights come from the L2 rather than memory. 'ceiling' is its weight
GB/s (median call), 'read' the plain sequential read from memory probed with the same
threads just before and after each variant's rows, and 'ratio' the two divided: below 1 a GEMV from memory is bound by
its instructions, not by the memory. The ceiling runs with the built-in GEMV settings (no
tuning). Force a variant (--variants avx2) to measure a narrower one on a wider CPU.""" % probe.LLC_MULTIPLE


def add_parser(sub):
    p = sub.add_parser("kernels", help="list kernel variants; benchmark the matmul kernels",
                       description=HELP, formatter_class=_Fmt)
    p.add_argument("--list", action="store_true", help="show which variants this machine can run and why not")
    p.add_argument("--bandwidth", action="store_true", help="only run the read-bandwidth probe")
    p.add_argument("--ceiling", action="store_true",
                   help="measure each format's compute ceiling (GEMV from L2) beside the read from memory")
    p.add_argument("--formats",
                   help="weight formats, comma-separated (from: %s; default %s, with --ceiling %s)"
                        % (", ".join(runtime.FORMATS), ",".join(kernels.DEFAULT_FORMATS),
                           ",".join(kernels.CEILING_FORMATS)))
    p.add_argument("--variants", default="all",
                   help="'all' (every variant this CPU runs), 'auto' (the best) or a comma-separated list")
    p.add_argument("--threads", default="1..max", help="thread counts: a list like 1,2 or a range like 1..max")
    p.add_argument("--shapes", default=",".join(f"{r}x{c}" for r, c in kernels.DEFAULT_SHAPES),
                   help="matrix shapes ROWSxCOLS (rows = output features)")
    p.add_argument("--ops", default="gemv,gemm", help="gemv, gemm or both")
    p.add_argument("--n", type=int, default=128, help="tokens per GEMM call")
    p.add_argument("--versus", metavar="FORMAT",
                   help="also compare every other format with this one (one of --formats) on each op, variant, "
                        "thread count and shape: its speed-up, its bytes advantage (FORMAT's bytes over its own) and "
                        "the fraction of that advantage it turns into speed")
    p.add_argument("--budget", type=float, default=0.5, metavar="SECONDS",
                   help="time spent timing each row (at least 5 calls are timed; 3 when one call takes longer)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--out", type=Path, help="also write the full results as JSON to this file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=run)


class _Fmt(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def resolve_variants(text: str) -> list[str]:
    infos = runtime.variants()
    runnable = [v.name for v in infos if v.supported]
    if text == "all":
        return runnable
    if text == "auto":
        return [runtime.best_variant()]
    chosen = parse_list(text, allowed=runtime.KNOWN_VARIANTS, what="variant")
    for name in chosen:
        info = next(v for v in infos if v.name == name)
        if not info.supported:
            raise UsageError(f"variant {name} cannot run here: {info.why}")
    return chosen


def list_variants(as_json: bool) -> int:
    infos = runtime.variants()
    if as_json:
        print_json({"best": runtime.best_variant(), "build": runtime.build_info(),
                    "variants": [dict(name=v.name, compiled=v.compiled, runnable=v.supported, why=v.why) for v in infos]})
        return EXIT_OK
    print(f"runtime build: {runtime.build_info()}")
    print(f"best variant here: {runtime.best_variant()}\n")
    for v in infos:
        state = "runs here" if v.supported else ("not runnable: " + v.why)
        print(f"  {v.name:<11} {state}")
    return EXIT_OK


def run(args) -> int:
    if args.list:
        return list_variants(args.json)
    default_formats = kernels.CEILING_FORMATS if args.ceiling else kernels.DEFAULT_FORMATS
    formats = parse_list(args.formats or ",".join(default_formats), allowed=runtime.FORMATS, what="format")
    ops = parse_list(args.ops, allowed=("gemv", "gemm"), what="op")
    threads = parse_threads(args.threads, runtime.usable_cpus())
    shapes = parse_shapes(args.shapes)
    variants = resolve_variants(args.variants)
    inputs.count(args.n, "--n", 1, inputs.MAX_TOKENS)
    if args.versus is not None and args.versus not in formats:
        raise UsageError(f"--versus {args.versus} must be one of the measured --formats ({', '.join(formats)})")
    if not 0 < args.budget <= 3600:
        raise UsageError(f"--budget must be between 0 and 3600 seconds (got {args.budget})")
    if args.ceiling and args.bandwidth:
        raise UsageError("--ceiling and --bandwidth are two different measurements: choose one")
    if args.ceiling and args.versus is not None:
        raise UsageError("--versus compares GEMV and GEMM from memory; it does not apply to --ceiling")
    llc, llc_src = runtime.cpu.last_level_cache_bytes()
    meta = {
        "cpu": runtime.cpu.identity()["model_name"], "usable_cpus": runtime.usable_cpus(),
        "llc_bytes": llc, "llc_source": llc_src, "working_set_bytes": probe.working_set_bytes(),
        "runtime_build": runtime.build_info(), "runtime_version": runtime.version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    progress = None if args.quiet or args.json else (lambda msg: print(f"  ... {msg}", file=sys.stderr, flush=True))
    if args.ceiling:
        return run_ceiling(args, formats, variants, threads, shapes, meta, progress)
    bandwidth, patterns, rows = {}, {}, []
    if args.bandwidth:
        for t in threads:
            found = probe.thread_bandwidth(t)
            bandwidth[t], patterns[t] = found.plain, found.medians()
            if not args.json:
                others = ", ".join(f"{k} {v:.1f}" for k, v in patterns[t].items() if k != probe.PLAIN)
                print(f"read bandwidth, {t} thread(s): {bandwidth[t]:.1f} GB/s plain sequential read "
                      f"(other patterns, GB/s: {others})")
    else:
        if not args.json:
            print(f"{meta['cpu']}; LLC {llc >> 20} MiB ({llc_src}); each row cycles {meta['working_set_bytes'] >> 20} MiB "
                  "of weights;\n'of read': weight GB/s over the plain sequential read probed around that row; 'best read': "
                  "the fastest read pattern of that probe; 'tuning': GEMV prefetch bytes / claim KiB")
            print(_header())
        for item in kernels.run(formats, variants, threads, shapes, ops, args.n, args.budget, progress):
            rows.append(item)
            if not args.json:
                print(_line(item), flush=True)
    for t in threads:  # per thread count: the median of the probes around its rows
        probes = [r.bandwidth_gbps for r in rows if r.threads == t]
        if probes:
            bandwidth[t] = statistics.median(probes)
    result = {"meta": meta, "bandwidth_reference": probe.REFERENCE,
              "bandwidth_gbps": {str(k): v for k, v in bandwidth.items()},
              "rows": [asdict(r) for r in rows]}
    if patterns:
        result["read_patterns_gbps"] = {str(k): v for k, v in patterns.items()}
    if args.versus and rows:
        result["versus"] = kernels.versus(rows, args.versus)
        if not args.json:
            print(f"\nversus {args.versus}: speed-up = its median time / this one's; bytes = its weight bytes / these; "
                  "'of bytes' = speed-up / bytes (1.0: the whole bytes advantage turned into speed)")
            print(f"{'op':<5}{'format':<7}{'variant':<11}{'thr':>4}{'shape':>11}{'speed-up':>10}{'bytes':>8}{'of bytes':>10}")
            for v in result["versus"]:
                shape = f"{v['rows']}x{v['cols']}"
                print(f"{v['op']:<5}{v['format']:<7}{v['variant']:<11}{v['threads']:>4}{shape:>11}"
                      f"{v['speedup']:>10.2f}{v['bytes_advantage']:>8.2f}{v['of_bytes_advantage']:>10.2f}")
    if args.json:
        print_json(result if args.bandwidth else result["rows"])
    if args.out:
        _write(args.out, result)
        if not args.json:
            print(f"results written to {args.out}")
    return EXIT_OK


def run_ceiling(args, formats, variants, threads, shapes, meta, progress) -> int:
    l2, l2_src = runtime.cpu.l2_cache_bytes()
    meta = {**meta, "l2_bytes": l2, "l2_source": l2_src, "l2_share": kernels.CEILING_L2_SHARE}
    cols_list = list(dict.fromkeys(c for _, c in shapes))
    if not args.json:
        print(f"{meta['cpu']}; L2 {l2 >> 10} KiB per core ({l2_src}); each matrix fills "
              f"{kernels.CEILING_L2_SHARE:.0%} of every thread's L2\n'ceiling': weight GB/s of a GEMV from L2 "
              "(median call); 'read': the plain sequential read from memory, same threads, probed around each "
              "variant's rows; 'ratio': ceiling / read")
        print(f"{'format':<7}{'variant':<11}{'thr':>4}{'shape':>11}{'median':>11}{'ceiling GB/s':>14}"
              f"{'peak GB/s':>11}{'read GB/s':>11}{'ratio':>7}")
    rows = []
    for r in kernels.ceiling(formats, variants, threads, cols_list, args.budget, l2, progress):
        rows.append(r)
        if not args.json:
            print(f"{r.format:<7}{r.variant:<11}{r.threads:>4}{f'{r.rows}x{r.cols}':>11}{r.median_s * 1e6:>8.1f} us"
                  f"{r.ceiling_gbps:>14.1f}{r.peak_gbps:>11.1f}{r.read_gbps:>11.1f}{r.ratio:>7.2f}", flush=True)
    result = {"meta": meta, "bandwidth_reference": probe.REFERENCE, "ceiling": [asdict(r) for r in rows]}
    if args.json:
        print_json(result)
    if args.out:
        _write(args.out, result)
        if not args.json:
            print(f"results written to {args.out}")
    return EXIT_OK


def _write(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(path)


def _header() -> str:
    return (f"{'op':<5}{'format':<7}{'variant':<11}{'thr':>4}{'shape':>11}{'n':>5}"
            f"{'median':>11}{'weight GB/s':>13}{'read GB/s':>10}{'of read':>8}{'best read':>22}{'GOPS':>9}{'tuning':>11}")


def _line(r) -> str:
    us = r.median_s * 1e6
    med = f"{us:.1f} us" if us < 100 else f"{us:.0f} us" if us < 1e5 else f"{us / 1e3:.0f} ms"
    return (f"{r.op:<5}{r.format:<7}{r.variant:<11}{r.threads:>4}{f'{r.rows}x{r.cols}':>11}{r.n:>5}"
            f"{med:>11}{r.weight_gbps:>13.1f}{r.bandwidth_gbps:>10.1f}{r.bandwidth_fraction:>8.0%}"
            f"{f'{r.best_read_gbps:.1f} {r.best_read_pattern}':>22}{r.gops:>9.1f}{f'{r.prefetch}/{r.claim >> 10}K':>11}"
            + ("  (cache-resident: too small to cycle past the LLC)" if r.from_cache else ""))
