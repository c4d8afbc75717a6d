"""External engines in a sweep, through a fake llama-bench (tests/fake_llama_bench.py): each engine
point measured like ternbench's own (llama-bench's samples as pyperf values, the energy window
bracketed per repetition, probes, worker processes), skipped with the reason when the engine
cannot run, failed (not crashed) when it breaks; baselines within an engine or against one;
bitnet.cpp's old llama-bench without --progress. The real llama.cpp runs in test_engines.py."""
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from clirun import ternbench

from test_engines import TINY

FAKE = Path(__file__).with_name("fake_llama_bench.py")


def fake_engine(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for program in ("llama-bench", "llama-quantize"):
        (d / program).write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" {program} "$@"\n')
        (d / program).chmod(0o755)
    return d


def sweep(tmp_path, engines: str, extra: str = "", reps: int = 2, processes: int = 2) -> Path:
    (tmp_path / "tiny.yaml").write_text(TINY)
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(f"models: [tiny.yaml]\nengines: {engines}\nthreads: [1]\nworkloads: {{generation: [4]}}\n"
                   f"repetitions: {reps}\nwarmups: 1\nprocesses: {processes}\nenergy: model\n{extra}")
    return cfg


def run(cfg, tmp_path, *args, check=True, env=None):
    env = {"TERNBENCH_CACHE_DIR": str(tmp_path / "cache"), "FAKE_LOG": str(tmp_path / "calls.jsonl"), **(env or {})}
    return ternbench("run", str(cfg), "--out", str(tmp_path / "out"), "-q", *args, check=check, env=env)


def records(tmp_path) -> dict:
    lines = (tmp_path / "out" / "points.jsonl").read_text().splitlines()
    return {r["key"]: r for r in map(json.loads, lines)}


@pytest.mark.slow
def test_llamacpp_points_are_measured_like_ternbench_points(tmp_path):
    bin_dir = fake_engine(tmp_path / "llama" / "bin")
    cfg = sweep(tmp_path, "{ternbench: [i2s, f16], llamacpp: [tq2_0, f16]}")
    run(cfg, tmp_path, "--llamacpp-bin", str(bin_dir))
    recs = records(tmp_path)
    key = "llamacpp:tiny-gguf/tq2_0+q6_k/native/t1/tg4"
    assert sorted(k.split("/")[0] + "/" + k.split("/")[1] for k in recs) == [
        "llamacpp:tiny-gguf/f16+f16", "llamacpp:tiny-gguf/tq2_0+q6_k", "tiny-gguf/f16+f16", "tiny-gguf/i2s+int8"]
    r = recs[key]
    assert r["status"] == "ok" and r["engine"] == "llamacpp" and r["format"] == "tq2_0"
    # two worker processes of one warm-up and two values each, llama-bench's own warm-up off
    assert r["processes"] == 2 and r["values"] == 4 and r["warmups"] == 1
    calls = [json.loads(x) for x in (tmp_path / "calls.jsonl").read_text().splitlines()]
    benches = [c for c in calls if c[0] == "llama-bench" and "-m" in c and "tq2_0" in c[c.index("-m") + 1]]
    assert len(benches) == 2
    for c in benches:
        assert c[c.index("-r") + 1] == "3" and c[c.index("-n") + 1] == "4" and c[c.index("-p") + 1] == "0"
        assert "--no-warmup" in c and "--progress" in c and c[c.index("-t") + 1] == "1"
    # the timed values are llama-bench's samples (the fake sleeps at least 2 ms per token)
    assert all(0 < v < 500 for v in r["samples_tokens_per_s"])
    assert r["timing_vs_runtime"] == pytest.approx(1.0)
    # the energy window is each repetition, bracketed by the progress lines
    assert r["energy"]["provenance"].startswith("estimated") and r["energy"]["j_per_token"] > 0
    raw = [json.loads(x) for x in (tmp_path / "out" / r["raw"]).read_text().splitlines()]
    runs = [x for x in raw if x["type"] == "run" and not x["warmup"]]
    assert sorted(r["samples_tokens_per_s"]) == pytest.approx(sorted(4 / x["runtime_seconds"] for x in runs))
    assert all(abs(x["seconds"] - x["runtime_seconds"]) < max(0.02, 0.2 * x["runtime_seconds"]) for x in runs)
    build = r["engine_build"]
    assert build["version"].startswith("version: 4242") and build["build_commit"] == "fake000"
    assert build["energy_window"].startswith("each repetition") and build["head_type"] == "f16"
    assert r["bytes_per_token"] > 0 and r["probe_gbps"] > 0 and r["bandwidth_fraction"] > 0
    # each engine against its own f16 (baseline: f16, the default); the table names the engine
    frame = pd.read_csv(tmp_path / "out" / "points.csv").set_index("key")
    assert frame.loc[key, "engine"] == "llamacpp" and frame.loc[key, "engine_version"].startswith("version")
    ours = frame.loc[key, "tps_gmean"] / frame.loc["llamacpp:tiny-gguf/f16+f16/native/t1/tg4", "tps_gmean"]
    assert frame.loc[key, "speedup"] == pytest.approx(ours)
    # ternbench's f16 against llama.cpp's F16 on the same shape: the fairness figure
    i2s = next(k for k in recs if k.startswith("tiny-gguf/i2s"))
    f16 = next(k for k in recs if k.startswith("tiny-gguf/f16"))
    assert frame.loc[i2s, "baseline_vs_llamacpp"] == pytest.approx(
        frame.loc[f16, "tps_median"] / frame.loc["llamacpp:tiny-gguf/f16+f16/native/t1/tg4", "tps_median"])
    # the report shows them side by side
    out = ternbench("report", str(tmp_path / "out"), "--out", str(tmp_path / "rep"), check=False,
                    env={"TERNBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert out.returncode in (0, 1) and "Traceback" not in out.stderr
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "llama.cpp" in html and "Baseline fairness" in html


@pytest.mark.slow
def test_a_baseline_of_another_engine(tmp_path):
    """baseline: {engine: llamacpp, format: f16}: every point against llama.cpp's F16, the paper's way."""
    bin_dir = fake_engine(tmp_path / "llama" / "bin")
    cfg = sweep(tmp_path, "{ternbench: [i2s], llamacpp: [tq2_0, f16]}",
                "baseline: {engine: llamacpp, format: f16}\n", reps=1, processes=1)
    run(cfg, tmp_path, "--llamacpp-bin", str(bin_dir))
    frame = pd.read_csv(tmp_path / "out" / "points.csv")
    base = frame[(frame.engine == "llamacpp") & (frame.format == "f16")].tps_median.iloc[0]
    i2s = frame[frame.format == "i2s"].iloc[0]
    assert i2s.speedup == pytest.approx(i2s.tps_median / base) and i2s.baseline == "llamacpp:f16"
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plan["baseline"] == "llamacpp:f16"


@pytest.mark.slow
def test_an_engine_that_cannot_run_is_skipped_with_the_reason(tmp_path):
    cfg = sweep(tmp_path, "{ternbench: [i2s], llamacpp: [f16]}", reps=1, processes=1)
    proc = run(cfg, tmp_path, "--dry-run")
    assert "skip  llamacpp:tiny-gguf/f16+f16/native/t1/tg4" in proc.stdout
    assert "ternbench engines install llamacpp" in proc.stdout
    run(cfg, tmp_path)
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert [s["engine"] for s in plan["skipped"]] == ["llamacpp"] and "not installed" in plan["skipped"][0]["reason"]


@pytest.mark.parametrize("env, words", [
    ({"FAKE_FAIL": "1"}, "llama-bench exited with status 1: llama_model_load: error loading model"),
    ({"FAKE_BAD_JSON": "1"}, "llama-bench's JSON output is unusable"),
    ({"FAKE_CRASH": "1"}, "llama-bench was killed by SIGSEGV")])
@pytest.mark.slow
def test_a_broken_engine_fails_its_points_not_the_sweep(tmp_path, env, words):
    """The cause, not the worker's exit status, is the point's reason and is on the terminal."""
    bin_dir = fake_engine(tmp_path / "llama" / "bin")
    cfg = sweep(tmp_path, "{ternbench: [i2s], llamacpp: [f16]}", reps=1, processes=1)
    proc = ternbench("run", str(cfg), "--out", str(tmp_path / "out"), "--llamacpp-bin", str(bin_dir), check=False,
                     env={"TERNBENCH_CACHE_DIR": str(tmp_path / "cache"), **env})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    recs = records(tmp_path)
    bad = recs["llamacpp:tiny-gguf/f16+f16/native/t1/tg4"]
    assert bad["status"] == "failed" and bad["reason"].startswith(words), bad["reason"]
    assert words in proc.stderr + proc.stdout
    assert "llama-bench" in bad["log_tail"]
    assert [r["status"] for k, r in recs.items() if not k.startswith("llamacpp")] == ["ok"]


@pytest.mark.slow
def test_a_gguf_that_cannot_be_made_fails_its_point_not_the_sweep(tmp_path):
    """The engine's converter or quantiser failing (here llama-quantize exits 1; once, bitnet.cpp's
    TL2 converter) records the point failed with the cause and measures the others."""
    bin_dir = fake_engine(tmp_path / "llama" / "bin")
    cfg = sweep(tmp_path, "{ternbench: [i2s], llamacpp: [tq2_0]}", "baseline: i2s\n", reps=1, processes=1)
    proc = run(cfg, tmp_path, "--llamacpp-bin", str(bin_dir), check=False, env={"FAKE_QUANTIZE_FAIL": "1"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    recs = records(tmp_path)
    bad = recs["llamacpp:tiny-gguf/tq2_0+q6_k/native/t1/tg4"]
    assert bad["status"] == "failed" and bad["reason"].startswith("llamacpp: no tq2_0 GGUF of tiny"), bad["reason"]
    assert [r["status"] for k, r in recs.items() if not k.startswith("llamacpp")] == ["ok"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_a_hung_engine_is_killed_with_its_children(tmp_path):
    """A llama-bench silent past the stall limit is killed with what it started (a fake that
    forks a sleep), and the point says it hung."""
    bin_dir = fake_engine(tmp_path / "llama" / "bin")
    cfg = sweep(tmp_path, "{llamacpp: [f16]}", "baseline: null\n", reps=1, processes=1)
    child = tmp_path / "child.pid"
    proc = run(cfg, tmp_path, "--llamacpp-bin", str(bin_dir), check=False,
               env={"FAKE_HANG": str(child), "TERNBENCH_ENGINE_STALL_S": "3"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    bad = records(tmp_path)["llamacpp:tiny-gguf/f16+f16/native/t1/tg4"]
    assert bad["status"] == "failed" and bad["reason"].startswith("llama-bench hung: no output for 3 s"), bad["reason"]
    pid = int(child.read_text())
    assert not _alive(pid), f"llama-bench's child {pid} outlived it"


@pytest.mark.slow
def test_bitnetcpp_points_are_measured_like_llamacpp_points(tmp_path):
    """bitnet.cpp's 2024 fork has --progress (each repetition its energy window) but no
    --no-warmup (its own warm-up stays, untimed); a relu2 model runs there as the `bitnet`
    architecture's SiLU, and the point's record says so."""
    bin_dir = fake_engine(tmp_path / "BitNet" / "build" / "bin")
    cfg = sweep(tmp_path, "{bitnetcpp: [i2_s]}", "baseline: null\n", reps=2, processes=1)
    run(cfg, tmp_path, "--bitnetcpp-bin", str(bin_dir), env={"FAKE_FORK": "1"})
    (r,) = records(tmp_path).values()
    assert r["status"] == "ok" and r["engine"] == "bitnetcpp" and r["values"] == 2 and r["warmups"] == 1
    assert r["energy"] is not None and r["engine_build"]["energy_window"].startswith("each repetition")
    assert "silu FFN where the model has relu2" in r["engine_build"]["function"]
    calls = [json.loads(x) for x in (tmp_path / "calls.jsonl").read_text().splitlines()]
    benches = [c for c in calls if c[0] == "llama-bench" and "-m" in c]
    assert benches and all("--progress" in c and "--no-warmup" not in c for c in benches)


@pytest.mark.slow
def test_an_old_llama_bench_has_timings_and_no_energy_window(tmp_path):
    """A llama-bench without --progress (older than bitnet.cpp's fork): samples still time the
    point; no energy figure, with the reason."""
    bin_dir = fake_engine(tmp_path / "BitNet" / "build" / "bin")
    cfg = sweep(tmp_path, "{bitnetcpp: [i2_s]}", "baseline: null\n", reps=2, processes=1)
    run(cfg, tmp_path, "--bitnetcpp-bin", str(bin_dir), env={"FAKE_OLD": "1"})
    (r,) = records(tmp_path).values()
    assert r["status"] == "ok" and r["engine"] == "bitnetcpp" and r["values"] == 2
    assert r["energy"] is None and r["engine_build"]["energy_window"].startswith("none: this llama-bench")
    calls = [json.loads(x) for x in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert any(c[0] == "llama-quantize" and c[3:] == ["I2_S", "1"] for c in calls)   # I2_S on one thread
    assert not any("--progress" in c or "--no-warmup" in c for c in calls)


def test_a_tl2_point_without_kernels_is_planned_as_skipped(tmp_path):
    """bitnet.cpp's TL2 kernels take one model's matrices: a model of other shapes gets a
    skipped TL2 point naming them and the build's (from its checkout's kernel_config.ini), and
    its I2_S point runs."""
    from test_engines import _fake_checkout

    bin_dir = fake_engine(tmp_path / "BitNet" / "build" / "bin")
    _fake_checkout(tmp_path / "BitNet", [(1536, 4096), (1536, 1536), (4096, 1536)])
    cfg = sweep(tmp_path, "{bitnetcpp: [i2_s, tl2]}", "baseline: null\n", reps=1, processes=1)
    plan = json.loads(run(cfg, tmp_path, "--dry-run", "--json", "--bitnetcpp-bin", str(bin_dir)).stdout)
    assert [p["format"] for p in plan["points"]] == ["i2_s"]
    (skipped,) = plan["skipped"]
    assert skipped["format"] == "tl2" and skipped["reason"].startswith(
        "bitnetcpp: no TL2 kernels for tiny-gguf's 128x256, 256x256, 256x512, 512x256 matrices: this build's TL2 "
        "kernels were generated for its checkout's model (1536x4096, 1536x1536, 4096x1536)")


@pytest.mark.parametrize("engines, extra, words", [
    ("[ternbench, llamacp]", "formats: [i2s]\n", "unknown engine 'llamacp' (did you mean 'llamacpp'?)"),
    ("{llamacpp: [tq2]}", "", "unknown format 'tq2' (did you mean 'tq2_0'?); this engine runs tq1_0, tq2_0, f16"),
    ("{llamacpp: [f16]}", "formats: [i2s]\n", "`engines` does not list ternbench"),
    ("{ternbench: [i2s]}", "baseline: {engine: llamacpp, format: f16}\n", "engine 'llamacpp' is not among"),
    ("{llamacpp: {formats: [f16], bin: 3}}", "", "must be a directory path"),
    ("{llamacpp: {formats: [f16], where: x}}", "", "engines.llamacpp.where"),
])
def test_engine_configuration_errors(tmp_path, engines, extra, words):
    cfg = sweep(tmp_path, engines, extra)
    proc = run(cfg, tmp_path, "--dry-run", check=False)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_baseline_alternatives_say_which_stood_in(tmp_path):
    """baseline: [{engine: llamacpp, format: f16}, f16]: llama.cpp's F16 where it ran, else ternbench's
    own, and each point's table row names the one it was divided by."""
    from harness.sweep import tables

    rows = [{"key": k, "status": "ok", "engine": e, "model": "m", "format": f, "head_format": "f16",
             "variant": v, "threads": t, "workload": "tg", "tokens": 8, "test": "tg8",
             "tokens_per_s": {"n": 1, "mean": tps, "median": tps, "stdev": 0, "ci95_low": tps, "ci95_high": tps},
             "seconds_per_token": {"median": 1 / tps}, "runtime_tokens_per_s": tps}
            for k, e, f, v, t, tps in [("a", "ternbench", "i2s", "x", 1, 40.0), ("b", "ternbench", "f16", "x", 1, 10.0),
                                       ("c", "llamacpp", "f16", "native", 1, 8.0),
                                       ("d", "ternbench", "i2s", "x", 2, 60.0), ("e", "ternbench", "f16", "x", 2, 20.0)]]
    rows[0]["head_format"] = rows[3]["head_format"] = "int8"
    frame = tables.points_frame(rows, "llamacpp:f16,f16").set_index("key")
    assert frame.loc["a", "speedup"] == 5.0 and frame.loc["a", "baseline"] == "llamacpp:f16"
    # ternbench's f16 against llama.cpp's is its speed-up here; against llama.cpp no fairness figure is due
    assert frame.loc["b", "speedup"] == 1.25 and pd.isna(frame.loc["a", "baseline_vs_llamacpp"])
    # at 2 threads llama.cpp did not run: ternbench's own f16 stood in, and the row says so
    assert frame.loc["d", "speedup"] == 3.0 and frame.loc["d", "baseline"] == "f16"


def test_a_baseline_list_in_the_configuration(tmp_path):
    from harness.sweep.config import load_config

    cfg = sweep(tmp_path, "{ternbench: [i2s, f16], llamacpp: [f16]}", "baseline: [{engine: llamacpp, format: f16}, f16]\n")
    assert load_config(cfg).baseline == "llamacpp:f16,f16"
    cfg.write_text(cfg.read_text().replace("baseline: [{engine: llamacpp, format: f16}, f16]", "baseline: [f16, f16]"))
    proc = run(cfg, tmp_path, "--dry-run", check=False)
    assert proc.returncode == 2 and "lists one baseline twice" in proc.stderr


@pytest.mark.slow
def test_a_checkpoint_directory_is_converted_for_an_engine(tmp_path):
    """A checkpoint in a sweep with llama.cpp: converted once into its GGUF (cached by content),
    with the checkpoint's ternary values and scales, and read back by ternbench as the same model."""
    import numpy as np

    from test_checkpoint import make_checkpoint
    from test_model import SHAPES

    from harness.models.gguf_file import LINEARS
    from harness.models.checkpoint import Checkpoint
    from harness.models.gguf_file import GgufModel

    ckpt_dir = tmp_path / "ckpt"
    make_checkpoint(ckpt_dir, SHAPES["bitnet-gqa"], scale_dtype="f32")
    bin_dir = fake_engine(tmp_path / "llama" / "bin")
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text("models: [ckpt]\nengines: {llamacpp: [f16]}\nthreads: [1]\nworkloads: {generation: [4]}\n"
                   "repetitions: 1\nprocesses: 1\nbaseline: null\nenergy: model\n")
    run(cfg, tmp_path, "--llamacpp-bin", str(bin_dir))
    (r,) = records(tmp_path).values()
    assert r["status"] == "ok" and r["engine"] == "llamacpp"
    (written,) = (tmp_path / "cache" / "gguf").glob("ckpt-*-f16.gguf")
    g, ckpt = GgufModel(written), Checkpoint(ckpt_dir)
    for spec in ckpt.linears[:3]:
        w, scale = ckpt.ternary(spec)
        got, got_scale, _ = g.ternary(f"blk.{spec.layer}.{LINEARS[spec.which]}.weight")
        assert np.array_equal(got, w) and got_scale == float(np.float16(scale))


@pytest.mark.slow
def test_a_checkpoint_keeps_its_function_in_its_gguf(tmp_path, shape="bitnet-gqa"):
    """A relu2 checkpoint written to GGUF and read back by `ternbench generate` is the same model: the same greedy tokens as the checkpoint directory (the scales are powers of
    two, so f16 holds them exactly). The file says its activation for ternbench, and every
    engine loads its vocabulary."""
    import gguf

    from test_checkpoint import make_checkpoint
    from test_model import SHAPES

    from harness.engines import gguf_model
    from harness.sweep.config import resolve_model

    ckpt_dir = tmp_path / "ckpt"
    make_checkpoint(ckpt_dir, SHAPES[shape], scale_dtype="f32")
    ref = resolve_model(str(ckpt_dir), tmp_path)
    path = gguf_model.write_checkpoint_f16(ref.spec, tmp_path / "ckpt.gguf")
    fields = gguf.GGUFReader(str(path)).fields
    assert fields["ternbench.activation"].contents() == SHAPES[shape].activation
    assert fields["tokenizer.ggml.model"].contents() == "llama"
    assert len(fields["tokenizer.ggml.tokens"].contents()) == SHAPES[shape].vocab

    def greedy(source):
        out = ternbench("generate", str(source), "--tokens", "3,17,42,7", "-n", "12", "--format", "i2s",
                        "--head-format", "f32", "--threads", "1", "--json")
        return json.loads(out.stdout)["tokens"]

    assert greedy(path) == greedy(ckpt_dir)
    said = ternbench("generate", str(path), "--tokens", "3", "-n", "1", "--threads", "1").stderr
    assert "converted: ckpt.gguf: bitnet, relu2 FFN (ternbench.activation)" in said
