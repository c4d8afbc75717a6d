"""A stand-in for llama.cpp's llama-bench and llama-quantize, for testing the engine adapter
without building an engine: `llama-bench` prints llama-bench's JSON (the fields ternbench reads,
as recorded from llama.cpp 0.3.36's) with samples it really timed (a sleep per token), and its
progress lines; `llama-quantize IN OUT TYPE` copies IN to OUT.

Behaviour by environment: FAKE_FORK=1 acts as bitnet.cpp's 2024 fork (--progress, no --no-warmup:
a warm-up run of its own); FAKE_OLD=1 as an older llama-bench still (neither); FAKE_FAIL=1 exits 1 after loading; FAKE_BAD_JSON=1 prints
output that is not JSON; FAKE_CRASH=1 dies of SIGSEGV after loading; FAKE_HANG=FILE starts a child
(`sleep`) that writes its pid to FILE, then hangs silently. FAKE_QUANTIZE_FAIL=1 makes
llama-quantize exit 1. FAKE_LOG=FILE appends each command line to FILE."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

OLD = os.environ.get("FAKE_OLD") == "1"
FORK = os.environ.get("FAKE_FORK") == "1"
SECONDS_PER_TOKEN = 0.002


def usage() -> str:
    lines = ["usage: llama-bench [options]", "  -r, --repetitions <n>", "  -o, --output <csv|json|jsonl|md|sql>"]
    if not OLD:
        lines += ["  --progress                                  print test progress indicators"]
    if not (OLD or FORK):
        lines += ["  --no-warmup                                 skip warmup runs before benchmarking"]
    return "\n".join(lines)


def bench(args: list[str]) -> int:
    opts, flags, i = {}, set(), 0
    while i < len(args):
        if args[i] in ("--progress", "--no-warmup"):
            if OLD or (FORK and args[i] == "--no-warmup"):
                print(f"error: invalid parameter for argument: {args[i]}", file=sys.stderr)
                return 1
            flags.add(args[i])
            i += 1
        else:
            opts[args[i]] = args[i + 1]
            i += 2
    reps, n_prompt, n_gen = int(opts.get("-r", 5)), int(opts.get("-p", 512)), int(opts.get("-n", 128))
    if not os.path.isfile(opts.get("-m", "")):
        print(f"error: failed to load model '{opts.get('-m')}'", file=sys.stderr)
        return 1
    if os.environ.get("FAKE_FAIL") == "1":
        print("llama_model_load: error loading model", file=sys.stderr)
        return 1
    if os.environ.get("FAKE_CRASH") == "1":
        print("llama_model_load: loaded", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
    if os.environ.get("FAKE_HANG"):
        child = subprocess.Popen(["sleep", "300"])
        with open(os.environ["FAKE_HANG"], "w") as f:
            f.write(str(child.pid))
        print("llama_model_load: loaded", file=sys.stderr, flush=True)
        time.sleep(300)
    tokens = n_prompt or n_gen
    if "--no-warmup" not in flags:
        time.sleep(SECONDS_PER_TOKEN)
    samples = []
    for r in range(reps):
        t0 = time.perf_counter_ns()
        if "--progress" in flags:
            kind = "prompt" if n_prompt else "generation"
            print(f"llama-bench: benchmark 1/1: {kind} run {r + 1}/{reps}", file=sys.stderr, flush=True)
        time.sleep(SECONDS_PER_TOKEN * tokens)
        samples.append(time.perf_counter_ns() - t0)
    if os.environ.get("FAKE_BAD_JSON") == "1":
        print("| model | size | params |")
        return 0
    avg = sum(samples) // len(samples)
    print(json.dumps([{
        "build_commit": "fake000", "build_number": 1, "cpu_info": "fake CPU", "model_filename": opts["-m"],
        "model_type": "bitnet ?B fake", "model_size": os.path.getsize(opts["-m"]), "model_n_params": 1,
        "n_batch": 2048, "n_ubatch": 512, "n_threads": int(opts.get("-t", 1)), "type_k": opts.get("-ctk", "f16"),
        "type_v": opts.get("-ctv", "f16"), "flash_attn": -1, "n_prompt": n_prompt, "n_gen": n_gen, "avg_ns": avg,
        "stddev_ns": 0, "avg_ts": tokens * 1e9 / avg, "samples_ns": samples,
        "samples_ts": [tokens * 1e9 / s for s in samples]}], indent=2))
    return 0


def main() -> int:
    program, args = os.path.basename(sys.argv[1]), sys.argv[2:]
    if os.environ.get("FAKE_LOG"):
        with open(os.environ["FAKE_LOG"], "a") as f:
            f.write(json.dumps([program, *args]) + "\n")
    if program == "llama-quantize":
        if os.environ.get("FAKE_QUANTIZE_FAIL") == "1":
            print(f"llama_model_quantize: failed to quantize: unknown model type {args[2]}", file=sys.stderr)
            return 1
        shutil.copyfile(args[0], args[1])
        return 0
    if args == ["--help"]:
        print(usage())
        return 0
    if args == ["--version"]:
        print("version: 4242 (fake000)\nbuilt with fake cc for x86_64", file=sys.stderr)
        return 0
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
