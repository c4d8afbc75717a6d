"""`ternbench bench`: one model x format x variant x threads point, llama-bench style."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import psutil

import runtime
from harness import inputs
from harness.cli.common import EXIT_OK, UsageError, print_json
from harness.measure import execute, probe
from harness.measure.point import Files, Point, Settings, cannot_run, resolve_variant, tune
from harness.models.presets import ModelSpecError
from harness.models.sizes import default_head_format
from harness.sweep.config import resolve_model

HELP = """\
Measure one point like llama-bench's pp/tg tests, exactly as a sweep measures each of its
points (the same worker, warm-up, statistics and probing: `ternbench run` and `bench` give
the same figures for the same point): prompt processing (--pp tokens as one batch) and
generation (--tg tokens one at a time, from an empty cache), each in a worker process under
pyperf, one warm-up then --reps timed runs; medians, standard deviations and 95% confidence
intervals of tokens/s. Synthetic weights (random ternary, seeded) are generated outside the
timed region. Also reports the weight bytes each generated token reads, the bandwidth that
implies, and its fraction of the plain sequential read probed with the same threads before
and after the timed runs (every read pattern of that probe is reported beside it). The GEMV
tuning the runtime ran with (see `ternbench tune`) is part of the result."""


def add_parser(sub):
    import argparse

    p = sub.add_parser("bench", help="benchmark one model point (prompt processing and generation)",
                       description=HELP, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True,
                   help="preset name (see `ternbench models`), a model YAML, a checkpoint directory or a GGUF file "
                        "(llama.cpp TQ1_0/TQ2_0, bitnet.cpp I2_S, F16/F32)")
    p.add_argument("--format", default="i2s", choices=runtime.LINEAR_FORMATS, help="weight format of the linears")
    p.add_argument("--head-format", choices=runtime.HEAD_FORMATS,
                   help="embedding / output head format (default: int8 for ternary formats, f16 for float ones)")
    p.add_argument("--kv-cache", default="f16", choices=runtime.KV_FORMATS, help="KV cache format")
    p.add_argument("--variant", default="auto", help="kernel variant (see `ternbench kernels --list`)")
    p.add_argument("--threads", type=int, default=runtime.usable_cpus(), help="threads")
    p.add_argument("--pp", type=int, default=512, help="prompt tokens (0 to skip)")
    p.add_argument("--tg", type=int, default=128, help="generated tokens (0 to skip)")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions after one warm-up")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic weights and prompt")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="keep each point's pyperf JSON, worker sidecar and log here (default: discarded)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=run)


def points(args) -> tuple[list[Point], object]:
    """The pp and tg points of the command line, checked as a sweep checks its points."""
    try:
        ref = resolve_model(args.model, Path.cwd())
    except (ModelSpecError, ValueError) as e:
        raise UsageError(str(e)) from None
    inputs.threads(args.threads)
    inputs.count(args.pp, "--pp", 0, inputs.MAX_TOKENS)
    inputs.count(args.tg, "--tg", 0, inputs.MAX_TOKENS)
    if args.pp + args.tg == 0:
        raise UsageError("--pp and --tg must not both be 0")
    inputs.count(args.reps, "--reps", 1, inputs.MAX_REPETITIONS)
    inputs.count(args.seed, "--seed", 0, inputs.MAX_SEED)
    if args.variant != "auto" and args.variant not in runtime.KNOWN_VARIANTS:
        raise UsageError(f"unknown variant {args.variant!r}; known: auto, {', '.join(runtime.KNOWN_VARIANTS)}")
    variant, why = resolve_variant(args.variant)
    if variant is None:
        raise UsageError(why)
    head = args.head_format or default_head_format(args.format)
    out = [Point(ref.label, args.format, head, variant, args.threads, workload, tokens, args.kv_cache)
           for workload, tokens in (("pp", args.pp), ("tg", args.tg)) if tokens]
    for p in out:
        # more threads than CPUs is allowed here (the runtime warns); a sweep would skip the point
        reason = cannot_run(p, ref.source, max(p.threads, runtime.usable_cpus()), psutil.virtual_memory().available)
        if reason:
            raise UsageError(f"{p.test}: {reason}")
    return out, ref.source


def run(args) -> int:
    todo, source = points(args)
    show = not (args.quiet or args.json)
    log = (lambda m: print(f"  ... {m}", file=sys.stderr, flush=True)) if show else (lambda m: None)
    tune(todo, log)
    settings = Settings(repetitions=args.reps, warmups=1, processes=1, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="ternbench-bench-") as tmp:
        root = args.out or Path(tmp)
        records = []
        for p in todo:
            log(f"{p.key}: 1 warm-up + {args.reps} timed runs in a worker process")
            r = execute.run(p, source, settings, Files.under(root, p))
            if r["status"] != "ok":
                print(f"ternbench bench: {p.test} failed: {r['reason']}\n{r['log_tail']}", file=sys.stderr)
                return 1
            records.append(r)
    result = summary(todo, records, args)
    if args.json:
        print_json(result)
    else:
        print_text(result, records)
    return EXIT_OK


def summary(todo: list[Point], records: list[dict], args) -> dict:
    """The point's figures under the names `bench` has always printed, and the full records."""
    by = {p.workload: r for p, r in zip(todo, records)}
    first = records[0]
    out = {"model": first["model"], "format": first["format"], "head_format": first["head_format"],
           "kv_cache": first["kv_cache"], "variant": first["variant"], "threads": first["threads"],
           "n_prompt": args.pp, "n_gen": args.tg, "reps": args.reps, "setup_s": first["setup_s"],
           "tuning": first["tuning"], "bandwidth_reference": probe.REFERENCE}
    for w in ("pp", "tg"):
        r = by.get(w)
        t = r["tokens_per_s"] if r else {}
        out[f"{w}_tps"] = t.get("median", 0.0)
        out[f"{w}_tps_stddev"] = t.get("stdev") or 0.0
        out[f"{w}_tps_ci95"] = [t.get("ci95_low"), t.get("ci95_high")] if r else None
        out[f"{w}_samples_s"] = [r["tokens"] / v for v in r["samples_tokens_per_s"]] if r else []
    tg = by.get("tg")
    out.update(bytes_per_token=first["bytes_per_token"],
               tg_bandwidth_gbps=tg["achieved_gbps"] if tg else 0.0,
               bandwidth_gbps=(tg or first)["probe_gbps"],
               bandwidth_fraction=tg["bandwidth_fraction"] if tg else 0.0,
               read_patterns_gbps=(tg or first)["read_patterns_gbps"],
               points=records)
    return out


def print_text(r: dict, records: list[dict]) -> None:
    print(f"{r['model']}: {r['format']} linears, {r['head_format']} head, {r['kv_cache']} KV cache; {r['variant']}, "
          f"{r['threads']} thread(s); set-up {r['setup_s']:.1f} s")
    for rec in records:
        t = rec["tokens_per_s"]
        ci = f", 95% CI {t['ci95_low']:.2f}-{t['ci95_high']:.2f}" if t["ci95_low"] is not None else ""
        print(f"  {rec['test']}: {t['median']:9.2f} tokens/s  (median of {t['n']}; sd {t['stdev'] or 0:.2f}{ci})")
    if r["n_gen"]:
        print(f"  {r['bytes_per_token'] / 1e6:.1f} MB of weights per token -> {r['tg_bandwidth_gbps']:.1f} GB/s, "
              f"{r['bandwidth_fraction']:.0%} of the {r['bandwidth_gbps']:.1f} GB/s plain sequential read probed "
              "alongside")
        others = ", ".join(f"{k} {v:.1f}" for k, v in r["read_patterns_gbps"].items() if k != probe.PLAIN)
        print(f"  (other read patterns of that probe, GB/s: {others})")
    print(f"  GEMV tuning (prefetch bytes / claim): {runtime.tuning.describe(r['tuning'])}")
