"""One point, timed by pyperf: `python -m harness.measure.worker --point JSON ... -o FILE`.

pyperf's manager process runs this module again as each worker process (--worker). A worker
builds the model (outside the timed region), then pyperf calls `run(loops)` for its warm-ups
and values. One call is one pass of the workload: the prompt as one batch (pp) or `tokens`
generated one at a time from an empty cache (tg); `inner_loops` = tokens, so pyperf's values
are seconds per token.

Beside pyperf's JSON, each worker appends JSON lines to a sidecar file: what it set up (variant,
affinity, bytes per token, a read-bandwidth probe before and after its runs) and, per call, the
wall seconds, the runtime's own seconds timed in C, and the energy of the same window."""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time


def _die_with_parent() -> None:
    """If the sweep is killed (even with SIGKILL), its workers must not run on unseen. Set
    before the slow imports below, and checked after: a parent that died in between has left
    this process to init."""
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


if __name__ == "__main__":
    _die_with_parent()

import numpy as np  # noqa: E402
import pyperf  # noqa: E402

FAULT_ENV = "TERNBENCH_FAULT_INJECT"   # "KEY_SUBSTRING:SIGNAL": tests make a point's workers crash


def _add_args(parser) -> None:
    parser.add_argument("--point", required=True, help="the point as JSON")
    parser.add_argument("--model-source", required=True, help="preset name, model YAML, checkpoint directory or GGUF")
    parser.add_argument("--model-kind", choices=("preset", "checkpoint", "gguf"), required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sidecar", required=True, help="file the workers append their JSON lines to")
    parser.add_argument("--pin", default="", help="comma-separated CPUs to pin to (empty: no pinning)")
    parser.add_argument("--energy", default="", help="energy settings as JSON (empty: no energy)")
    parser.add_argument("--fault", default="", help=argparse.SUPPRESS)


def _pass_args(cmd, args) -> None:
    cmd.extend(["--point", args.point, "--model-source", args.model_source, "--model-kind", args.model_kind,
                "--seed", str(args.seed), "--sidecar", args.sidecar, "--pin", args.pin, "--energy", args.energy,
                "--fault", args.fault])


def _build_model(args, point, ctx):
    from harness.models.presets import find_model
    from runtime import Model

    kv = point.get("kv_cache", "f16")
    if args.model_kind == "checkpoint":
        from harness.models.checkpoint import load_checkpoint

        return load_checkpoint(args.model_source, point["format"], point["head_format"],
                               max_ctx=point["tokens"] + 1, kv_format=kv)
    if args.model_kind == "gguf":
        from harness.models.gguf_file import load_gguf

        return load_gguf(args.model_source, point["format"], point["head_format"], max_ctx=point["tokens"] + 1,
                         kv_format=kv)
    spec = find_model(args.model_source)
    model = Model(spec.shape, point["format"], point["head_format"], max_ctx=point["tokens"] + 1, kv_format=kv)
    model.init_random(ctx, args.seed)
    return model


class Sidecar:
    def __init__(self, path: str):
        self.path = path

    def write(self, kind: str, **fields) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"type": kind, "pid": os.getpid(), **fields}) + "\n")


def worker_setup(args, runner):
    """Everything outside the timed region: pinning, the model, the prompt, the energy meter."""
    from harness.measure import conditions, probe
    from runtime import Context

    point = json.loads(args.point)
    side = Sidecar(args.sidecar)
    if args.pin:
        os.sched_setaffinity(0, [int(c) for c in args.pin.split(",")])
    ctx = Context(point["threads"], point["variant"])
    t0 = time.perf_counter()
    model = _build_model(args, point, ctx)
    setup = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    vocab = model.shape.vocab
    prompt = rng.integers(0, vocab, size=point["tokens"] if point["workload"] == "pp" else 1).astype(np.int32)
    meter = None
    if args.energy:
        from harness.measure.energy_window import open_for_worker

        meter = open_for_worker(json.loads(args.energy))
    before = probe.measure_bandwidth(ctx, 3)
    import runtime

    side.write("process", started=time.time(), conditions_before=conditions.snapshot(),
               runtime_build=runtime.build_info(), variant=ctx.variant, threads=ctx.threads, affinity=sorted(os.sched_getaffinity(0)),
               pinned=bool(args.pin), setup_s=setup, weight_bytes=model.weight_bytes,
               bytes_per_token=model.bytes_per_token, probe_before_gbps=before.passes[probe.PLAIN],
               probe_before_patterns=before.passes, tuning=ctx.tuning.to_json(), kv_cache=model.kv_format,
               energy=meter.name if meter else None)
    if args.fault:
        os.kill(os.getpid(), getattr(signal, args.fault))
    return point, side, ctx, model, prompt, meter


def make_run(args, runner, point, side, ctx, model, prompt, meter):
    from harness.energy import EnergyReadError
    from harness.measure import conditions, probe
    from harness.measure.energy_window import reading_json

    calls = runner.args.warmups + runner.args.values
    done = 0
    tokens = point["tokens"]

    def one_pass():
        model.reset()
        if point["workload"] == "pp":
            model.forward(ctx, prompt)
        else:
            tok = int(prompt[0])
            for _ in range(tokens):
                tok = model.forward(ctx, [tok])

    def run(loops):
        nonlocal done
        total = 0.0
        for _ in range(loops):
            busy = model.busy_seconds
            if meter:
                meter.start()
            t0 = time.perf_counter()
            one_pass()
            dt = time.perf_counter() - t0
            reading, energy_error = None, None
            if meter:
                try:
                    reading = reading_json(meter.stop())
                except EnergyReadError as e:   # a counter reset: no number rather than a wrong one
                    energy_error = str(e)
            total += dt
            side.write("run", seconds=dt, runtime_seconds=model.busy_seconds - busy, tokens=tokens,
                       warmup=done < runner.args.warmups, energy=reading, energy_error=energy_error)
            done += 1
        if done >= calls:
            state = conditions.snapshot()
            after = probe.measure_bandwidth(ctx, 3)
            side.write("probe_after", gbps=after.passes[probe.PLAIN], patterns=after.passes, conditions_after=state)
        return total

    return run


def main() -> int:
    runner = pyperf.Runner(loops=1, program_args=("-m", "harness.measure.worker"), add_cmdline_args=_pass_args)
    _add_args(runner.argparser)
    args = runner.parse_args()
    # pyperf starts its timed workers with a filtered environment: the runtime's own settings
    # (TERNBENCH_TUNING, TERNBENCH_CACHE_DIR, ...) must reach them, or they tune and cache elsewhere
    own = {k for k in os.environ if k.startswith("TERNBENCH_")}
    args.inherit_environ = sorted(set(args.inherit_environ or ()) | own)
    point = json.loads(args.point)
    from harness.measure.point import Point

    name = Point(**point).key
    for key in ("model", "format", "head_format", "variant", "threads", "workload", "tokens"):
        runner.metadata[f"ternbench_{key}"] = point[key]
    if args.worker:
        state = worker_setup(args, runner)
        runner.bench_time_func(name, make_run(args, runner, *state), inner_loops=point["tokens"])
    else:
        fault = os.environ.get(FAULT_ENV, "")
        if fault:
            sub, _, sig = fault.rpartition(":")
            args.fault = sig if sub and sub in Point(**point).key else ""
        try:
            runner.bench_time_func(name, lambda loops: 0.0, inner_loops=point["tokens"])
        except RuntimeError as e:   # pyperf: "... failed with exit code N"
            m = re.search(r"exit code (-?\d+)", str(e))
            if not m:
                raise
            Sidecar(args.sidecar).write("worker_failed", exit_code=int(m.group(1)))
            print(f"ternbench: a worker process failed: {e}", file=sys.stderr)
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
