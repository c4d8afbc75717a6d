"""`ternbench kernels` from the command line: listing, a tiny benchmark, bad input."""
import json
import os
import subprocess
import sys

import pytest

import runtime
from clirun import ternbench

REQUIRED_ROW_FIELDS = {"op", "format", "variant", "threads", "rows", "cols", "n", "median_s",
                       "weight_gbps", "bandwidth_fraction"}




def test_list_json_names_every_variant_with_reasons():
    data = json.loads(ternbench("kernels", "--list", "--json").stdout)
    names = {v["name"]: v for v in data["variants"]}
    assert set(names) == set(runtime.KNOWN_VARIANTS)
    assert names["scalar"]["runnable"]
    assert data["best"] in names and names[data["best"]]["runnable"]
    assert all(v["why"] for v in names.values() if not v["runnable"])


def test_list_human_readable():
    out = ternbench("kernels", "--list").stdout
    assert "best variant here" in out and "scalar" in out


@pytest.mark.slow
def test_tiny_benchmark_json_rows(tmp_path):
    out_file = tmp_path / "k.json"
    proc = ternbench("kernels", "--json", "--variants", "scalar", "--formats", "i2s,f16",
                     "--shapes", "64x256", "--threads", "1", "--budget", "0.01", "--n", "8", "--out", str(out_file))
    rows = json.loads(proc.stdout)
    assert len(rows) == 4  # 2 formats x (gemv, gemm)
    for r in rows:
        assert REQUIRED_ROW_FIELDS <= set(r)
        assert r["median_s"] > 0 and r["weight_gbps"] > 0 and r["bandwidth_fraction"] > 0
        assert r["n"] == (1 if r["op"] == "gemv" else 8)
    saved = json.loads(out_file.read_text())
    assert saved["rows"] == rows and saved["meta"]["runtime_build"]
    assert set(saved["bandwidth_gbps"]) == {"1"}
    # 64x256 matrices cannot be cycled past the cache within MAX_COPIES: say so
    assert all(r["from_cache"] for r in rows)


@pytest.mark.slow
def test_versus_compares_each_format_with_the_baseline(tmp_path):
    out_file = tmp_path / "k.json"
    out = ternbench("kernels", "--variants", "scalar", "--formats", "i2s,tl2,tl1", "--shapes", "64x240", "--ops", "gemv",
                    "--threads", "1", "--budget", "0.01", "--versus", "i2s", "--out", str(out_file), "-q").stdout
    assert "versus i2s" in out and "of bytes" in out
    saved = json.loads(out_file.read_text())
    by_fmt = {v["format"]: v for v in saved["versus"]}
    assert set(by_fmt) == {"tl1", "tl2"}
    rows = {r["format"]: r for r in saved["rows"]}
    for f, v in by_fmt.items():
        assert v["speedup"] == pytest.approx(rows["i2s"]["median_s"] / rows[f]["median_s"])
        assert v["bytes_advantage"] == pytest.approx(rows["i2s"]["weight_bytes"] / rows[f]["weight_bytes"])
        assert v["of_bytes_advantage"] == pytest.approx(v["speedup"] / v["bytes_advantage"])
    # 240 columns: tl2 packs them in 5 bits per 3 weights, i2s pads to 256 at 2 bits
    assert by_fmt["tl2"]["bytes_advantage"] == pytest.approx(256 * 2 / (240 * 5 / 3))


@pytest.mark.slow
def test_table_output_and_bandwidth_only():
    out = ternbench("kernels", "--variants", "auto", "--formats", "tq1", "--shapes", "32x320", "--ops", "gemv",
                    "--threads", "1", "--budget", "0.01", "-q").stdout
    assert "weight GB/s" in out and "tq1" in out
    bw = json.loads(ternbench("kernels", "--bandwidth", "--threads", "1", "--json").stdout)
    assert bw["bandwidth_gbps"]["1"] > 0


@pytest.mark.slow
def test_ceiling_json_gives_each_format_its_l2_ceiling_beside_the_read(tmp_path):
    out_file = tmp_path / "c.json"
    variant = "avx2" if "avx2" in [v.name for v in runtime.variants() if v.supported] else "scalar"
    proc = ternbench("kernels", "--ceiling", "--json", "--variants", variant, "--formats", "i2s,tl2",
                     "--shapes", "64x2560", "--threads", "1", "--budget", "0.01", "--out", str(out_file))
    data = json.loads(proc.stdout)
    assert data["meta"]["l2_bytes"] > 0 and data["meta"]["l2_source"]
    rows = data["ceiling"]
    assert [(r["format"], r["variant"], r["threads"], r["cols"]) for r in rows] == [
        ("i2s", variant, 1, 2560), ("tl2", variant, 1, 2560)]
    for r in rows:
        # rows sized to half the L2, in 64-row blocks; the shape's own row count is not used
        assert r["rows"] % 64 == 0 and r["weight_bytes"] <= data["meta"]["l2_bytes"] * 0.5 + 64 * 2560
        assert r["weight_bytes"] == runtime.matrix_bytes(r["format"], r["rows"], r["cols"])
        assert r["calls"] >= 50 and 0 < r["min_s"] <= r["median_s"]
        assert r["ceiling_gbps"] == pytest.approx(r["weight_bytes"] / r["median_s"] / 1e9)
        assert r["peak_gbps"] == pytest.approx(r["weight_bytes"] / r["min_s"] / 1e9)
        assert r["read_gbps"] > 0 and r["ratio"] == pytest.approx(r["ceiling_gbps"] / r["read_gbps"])
    assert rows[0]["read_gbps"] == rows[1]["read_gbps"]  # one probe around each variant's rows
    assert json.loads(out_file.read_text()) == data


@pytest.mark.slow
def test_ceiling_table_defaults_to_every_ternary_format_and_f16():
    out = ternbench("kernels", "--ceiling", "--variants", "scalar", "--shapes", "64x256", "--threads", "1",
                    "--budget", "0.01", "-q").stdout
    assert "ceiling GB/s" in out and "ratio" in out
    lines = [line.split() for line in out.splitlines() if line.split()[:2][-1:] == ["scalar"]]
    assert [line[0] for line in lines] == ["i2s", "tq1", "tl1", "tl2", "f16"]


def test_ceiling_l2_size_from_sysfs_or_a_stated_default(tmp_path):
    idx = tmp_path / "index2"
    idx.mkdir()
    (idx / "level").write_text("2\n")
    (idx / "type").write_text("Unified\n")
    (idx / "size").write_text("1280K\n")
    assert runtime.cpu.l2_cache_bytes(tmp_path) == (1280 << 10, f"L2 from {tmp_path}")
    size, source = runtime.cpu.l2_cache_bytes(tmp_path / "missing")
    assert size == runtime.cpu.DEFAULT_L2_BYTES and "assumed" in source


@pytest.mark.parametrize("args,message", [
    (["--ceiling", "--bandwidth"], "--ceiling and --bandwidth are two different measurements"),
    (["--ceiling", "--formats", "i2s", "--versus", "i2s"], "does not apply to --ceiling"),
    (["--ceiling", "--formats", "tq2"], "unknown format 'tq2'"),
    (["--ceiling", "--budget", "0"], "--budget must be between 0 and 3600"),
    (["--formats", "q4_0"], "unknown format 'q4_0'"),
    (["--threads", "0"], "must be between 1 and 1024"),
    (["--threads", "two"], "is not a number"),
    (["--shapes", "12by5"], "is not ROWSxCOLS"),
    (["--variants", "sse9"], "unknown variant 'sse9'"),
    (["--n", "0"], "--n must be between 1 and"),
    (["--ops", "conv"], "unknown op 'conv'"),
    (["--formats", "i2s", "--versus", "tq1"], "--versus tq1 must be one of the measured --formats"),
])
def test_bad_arguments_exit_2_with_a_message(args, message):
    proc = ternbench("kernels", *args, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_variant_this_cpu_cannot_run_exits_2():
    lacking = [v.name for v in runtime.variants() if not v.supported]
    proc = ternbench("kernels", "--variants", lacking[0], check=False)
    assert proc.returncode == 2 and "cannot run here" in proc.stderr


def test_help_describes_the_method():
    out = ternbench("kernels", "--help").stdout
    assert "last-level cache" in out and "--bandwidth" in out
    top = ternbench("--help").stdout
    assert "kernels" in top


def test_harness_keeps_numpy_blas_single_threaded():
    # idle BLAS spinner threads would compete with the runtime inside timed regions
    code = "import os, harness; print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['OMP_NUM_THREADS'])"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(runtime.__file__)))
    assert out.stdout.split() == ["1", "1"], out.stderr


def test_output_into_a_closed_pipe_is_not_an_error():
    import fcntl

    root = os.path.dirname(os.path.dirname(runtime.__file__))
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, 1031, 4096)  # F_SETPIPE_SZ: one page, less than the output
    proc = subprocess.Popen([sys.executable, "-m", "harness", "models", "--json"], stdout=write_end,
                            stderr=subprocess.PIPE, cwd=root, env=dict(os.environ, PYTHONPATH=root))
    os.close(write_end)
    os.read(read_end, 100)
    os.close(read_end)  # as `| head -c 100` does: the rest of the output meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and "Traceback" not in err, err


class _RecordingContext:
    """Stands in for a runtime Context: records which matrices each bench_matmul reads."""

    def __init__(self):
        self.calls = []

    def bench_matmul(self, mats, n, calls):
        self.calls.append(([mats[i % len(mats)] for i in range(calls)], n))
        return [1e-3] * calls


@pytest.mark.parametrize("n,budget,cycle", [(1, 0.004, True), (4, 0.004, False), (1, 0.003, False)])
def test_a_gemv_reads_every_copy_once_before_it_is_timed(n, budget, cycle):
    # the first pass over the copies after the bandwidth probe runs slower than a model's
    # steady state on some VMs: a GEMV is timed after one, unless the pass would outlast
    # twice the budget (7 copies x 1 ms against 2 x 3 ms); a GEMM needs none
    from harness.measure.kernels import time_op

    ctx, mats = _RecordingContext(), [f"copy{i}" for i in range(7)]
    secs = time_op(ctx, mats, n, budget_s=budget)
    timed = ctx.calls[-1][0]
    assert ctx.calls[0][0] == mats[:1]  # the warm call, which sizes the timed calls
    assert [c[0] for c in ctx.calls[1:-1]] == ([mats] if cycle else [])
    assert len(secs) == len(timed) >= 5
    assert timed[0] == "copy1"  # timing starts after the matrix the warm call read
