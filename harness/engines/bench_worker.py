"""One engine point (llama.cpp or bitnet.cpp), measured like ternbench's own points:
`python -m harness.engines.bench_worker --point JSON --gguf FILE --bin DIR ...`.

Each invocation is one worker process of the point. It pins itself (llama-bench inherits the
affinity), probes the read bandwidth with the point's threads, then runs the engine's
llama-bench once with its own warm-up switched off and `warmups + values` repetitions, so the
model is loaded once per process and warm-ups mean what they mean for ternbench: whole untimed
passes before the timed ones. The timed values are llama-bench's own per-repetition samples
(`samples_ns` of `-o json`), written as pyperf runs (appended to --append) so the statistics,
intervals and the gate treat every engine alike.

The energy window is each repetition: llama-bench's `--progress` prints a line right after it
starts a repetition's clock, so the meter starts on that line and stops on the next one (or on
the JSON that follows the last). bitnet.cpp's 2024 fork has `--progress` but no `--no-warmup`
(its own untimed warm-up run stays). A llama-bench without `--progress` (older still) cannot be
bracketed: its points carry timings and no energy figure, with the reason.

llama-bench runs in a process group of its own, so whatever ends it (a stall past STALL_S with
no output, an error, the sweep's Ctrl-C) ends the programs it started too. When the point
fails, the cause (llama-bench's exit status or signal and its last words, unusable output, a
stall) is written to the sidecar for the point's `reason`."""
from __future__ import annotations

if __name__ == "__main__":
    from harness.measure.worker import _die_with_parent

    _die_with_parent()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import selectors  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

REPETITION = re.compile(rb"llama-bench: benchmark \d+/\d+: (?:prompt|generation) run (\d+)/(\d+)")
PROGRESS = re.compile(rb"llama-bench: benchmark \d+/\d+: ")
# llama-bench's names for the KV cache formats ternbench runs
KV_TYPES = {"f16": "f16", "f32": "f32"}
# A llama-bench silent this long is hung: every repetition prints a progress line, and loading
# the largest model ternbench writes (100B) takes minutes, not this.
STALL_S = float(os.environ.get("TERNBENCH_ENGINE_STALL_S", 900))


class BenchFailed(Exception):
    """llama-bench could not measure the point; the message says why."""


def features(bench: str) -> dict:
    """What this llama-bench offers: --progress (bitnet.cpp's 2024 fork has it) and --no-warmup
    (it has not)."""
    try:
        text = subprocess.run([bench, "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchFailed(f"{bench} --help: {e}") from None
    usage = text.stdout + text.stderr
    return {"progress": "--progress" in usage, "no_warmup": "--no-warmup" in usage}


def command(bench: str, point: dict, gguf: str, repetitions: int, offers: dict) -> list[str]:
    tokens = str(point["tokens"])
    cmd = [bench, "-m", gguf, "-t", str(point["threads"]), "-r", str(repetitions), "-o", "json",
           "-p", tokens if point["workload"] == "pp" else "0", "-n", tokens if point["workload"] == "tg" else "0",
           "-ctk", KV_TYPES[point.get("kv_cache", "f16")], "-ctv", KV_TYPES[point.get("kv_cache", "f16")]]
    if offers["no_warmup"]:
        cmd.append("--no-warmup")
    if offers["progress"]:
        cmd.append("--progress")
    return cmd


def _own_group_dying_with_parent() -> None:
    """In llama-bench's child before exec: a process group of its own (so it and what it starts
    are killed together), and SIGKILL when this worker dies, whatever kills it."""
    os.setpgid(0, 0)
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _exit_cause(code: int, last_words: str) -> str:
    if code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with status {code}"
    return f"llama-bench {how}" + (f": {last_words}" if last_words else "")


def run_bench(cmd: list[str], meter, log, stall_s: float = STALL_S) -> tuple[dict, list[dict]]:
    """Runs llama-bench; returns its test's JSON and, per repetition the progress lines bracketed,
    {seconds, energy, energy_error} of that window. BenchFailed says why it could not."""
    from harness.energy import EnergyReadError
    from harness.measure.energy_window import reading_json

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            preexec_fn=_own_group_dying_with_parent)
    if meter:
        meter.follow(proc.pid)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    sel.register(proc.stderr, selectors.EVENT_READ)
    out, err, windows, opened, last_words = bytearray(), bytearray(), [], None, ""

    def close(now):
        nonlocal opened
        if opened is None:
            return
        window = {"seconds": now - opened, "energy": None, "energy_error": None}
        if meter:
            try:
                window["energy"] = reading_json(meter.stop())
            except EnergyReadError as e:
                window["energy_error"] = str(e)
        windows.append(window)
        opened = None

    try:
        while sel.get_map():
            ready = sel.select(stall_s)
            if not ready:
                _kill_group(proc)
                raise BenchFailed(f"llama-bench hung: no output for {stall_s:g} s; it and its children were killed"
                                  + (f" (its last line: {last_words})" if last_words else ""))
            for key, _ in ready:
                data = os.read(key.fileobj.fileno(), 1 << 16)
                now = time.perf_counter()
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                if key.fileobj is proc.stdout:
                    close(now)      # the JSON comes after the last repetition
                    out += data
                    continue
                err += data
                *lines, rest = bytes(err).split(b"\n")
                err[:] = rest
                for line in lines:
                    if PROGRESS.match(line):
                        close(now)
                        if REPETITION.match(line):
                            if meter:
                                meter.start()
                            opened = time.perf_counter()
                    text = line.decode(errors="replace")
                    if text.strip():
                        last_words = text.strip()[:300]
                    log(text)
        proc.wait()
        close(time.perf_counter())
    except BaseException:
        _kill_group(proc)
        raise
    if proc.returncode != 0:
        raise BenchFailed(_exit_cause(proc.returncode, last_words))
    try:
        tests = json.loads(out.decode(errors="replace"))
        test = tests[0]
        samples = [int(v) for v in test["samples_ns"]]
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise BenchFailed(f"llama-bench's JSON output is unusable ({type(e).__name__}: {e}): "
                          f"{out[:200].decode(errors='replace')!r}") from None
    test["samples_ns"] = samples
    return test, windows


def _fail(side, point: dict, cause: str) -> int:
    """The point's failure: its cause in the sidecar (the point's reason) and on stderr (its log)."""
    side.write("failure", reason=cause)
    print(f"ternbench: {point['engine']} point failed: {cause}", file=sys.stderr)
    return 3


def main(argv=None) -> int:
    import pyperf

    from harness.engines import gguf_model
    from harness.engines.llamacpp import version_line
    from harness.models.gguf_file import ACTIVATION_KEY, ARCHS, GgufFile
    from harness.measure import conditions, probe
    from harness.measure.point import Point
    from harness.measure.worker import Sidecar
    from runtime import Context

    p = argparse.ArgumentParser(prog="python -m harness.engines.bench_worker")
    p.add_argument("--point", required=True)
    p.add_argument("--gguf", required=True)
    p.add_argument("--bin", required=True, help="the engine's bin directory (its llama-bench)")
    p.add_argument("--engine-record", default="{}", help="the engine's install record as JSON")
    p.add_argument("--sidecar", required=True)
    p.add_argument("--pin", default="")
    p.add_argument("--energy", default="")
    p.add_argument("--values", type=int, required=True)
    p.add_argument("--warmups", type=int, required=True)
    p.add_argument("--append", required=True, help="pyperf JSON file the runs are appended to")
    args = p.parse_args(argv)
    point = json.loads(args.point)
    side = Sidecar(args.sidecar)
    bench = os.path.join(args.bin, "llama-bench")
    if args.pin:
        os.sched_setaffinity(0, [int(c) for c in args.pin.split(",")])
    meter = None
    if args.energy:
        from harness.measure.energy_window import open_for_worker

        meter = open_for_worker(json.loads(args.energy))
    try:
        offers = features(bench)
        if not offers["progress"]:
            meter = None    # no window to bracket: see the module's docstring
        cmd = command(bench, point, args.gguf, args.warmups + args.values, offers)
        model = GgufFile(args.gguf)
        head = gguf_model.head_type(model)
        with Context(point["threads"], tuning="off") as ctx:
            before = probe.measure_bandwidth(ctx, 3)
            side.write("process", started=time.time(), conditions_before=conditions.snapshot(), runtime_build=None,
                       variant=point["variant"], threads=point["threads"], affinity=sorted(os.sched_getaffinity(0)),
                       pinned=bool(args.pin), setup_s=None, weight_bytes=gguf_model.weight_bytes(model),
                       bytes_per_token=gguf_model.bytes_per_token(model),
                       probe_before_gbps=before.passes[probe.PLAIN], probe_before_patterns=before.passes,
                       tuning=None, kv_cache=point.get("kv_cache", "f16"), energy=meter.name if meter else None,
                       engine={"name": point["engine"], "version": version_line(bench), "bin": args.bin,
                               "command": cmd, "install": json.loads(args.engine_record), "head_type": head,
                               # a relu2 model runs as the `bitnet` architecture's SiLU: not the same function
                               "function": gguf_model.engine_activation(
                                   point["engine"], model.meta.get(ACTIVATION_KEY, ARCHS.get(model.meta.get(
                                       "general.architecture"), "silu"))),
                               "energy_window": "each repetition, bracketed by --progress" if meter else
                               "none: this llama-bench has no --progress" if not offers["progress"] else None})
            t0 = time.perf_counter()
            test, windows = run_bench(cmd, meter, lambda line: print(line, file=sys.stderr))
            wall = time.perf_counter() - t0
            after = probe.measure_bandwidth(ctx, 3)
    except (BenchFailed, gguf_model.GgufError, OSError) as e:
        return _fail(side, point, str(e))
    samples = test["samples_ns"]
    if len(samples) != args.warmups + args.values:
        return _fail(side, point, f"llama-bench gave {len(samples)} samples, {args.warmups + args.values} were asked for")
    if windows and len(windows) != len(samples):
        print(f"ternbench: {len(windows)} progress windows for {len(samples)} samples; energy left out",
              file=sys.stderr)
        windows = []
    tokens = point["tokens"]
    for i, ns in enumerate(samples):
        w = windows[i] if windows else {"seconds": ns / 1e9, "energy": None, "energy_error": None}
        # `seconds` is the energy window's (J/token and watts come from it); the timed value is
        # llama-bench's own sample, which `runtime_seconds` carries as ternbench's C timing does
        side.write("run", seconds=w["seconds"], runtime_seconds=ns / 1e9, tokens=tokens,
                   warmup=i < args.warmups, energy=w["energy"], energy_error=w["energy_error"])
    side.write("engine_test", setup_s=wall - sum(samples) / 1e9,
               **{k: test.get(k) for k in ("build_commit", "build_number", "cpu_info", "model_type", "model_size",
                                          "model_n_params", "n_batch", "n_ubatch", "n_threads", "type_k", "type_v",
                                          "flash_attn", "n_prompt", "n_gen")})
    side.write("probe_after", gbps=after.passes[probe.PLAIN], patterns=after.passes,
               conditions_after=conditions.snapshot())
    per_token = [ns / 1e9 / tokens for ns in samples]
    name = Point(**point).key
    run = pyperf.Run(per_token[args.warmups:], warmups=[(1, v) for v in per_token[:args.warmups]],
                     metadata={"name": name, "loops": 1, "inner_loops": tokens, "ternbench_engine": point["engine"]},
                     collect_metadata=False)
    pyperf.add_runs(args.append, pyperf.Benchmark([run]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
