"""Kernel correctness: every variant and thread count against the scalar reference
and against numpy, on regular and odd shapes; packing; every bad call from Python.

The integer paths must be exact (bit-identical int32). Float formats are compared
within a tolerance stated next to each check."""
import os
import warnings

import numpy as np
import pytest

import runtime
from runtime import Context, Matrix, RuntimeFailure, UnsupportedVariant

THREADS = (1, 2, 3)
# rows: 1 row, fewer than a GEMV group (4) or GEMM panel (12), and ragged tails;
# cols: 1 column, one block minus/plus one, blocks of every format, odd sizes
SHAPES = [(1, 1), (3, 5), (4, 255), (5, 256), (12, 257), (13, 320), (25, 641), (40, 1000), (17, 2560)]
TOKENS = (1, 2, 3, 33)


def ternary(rng, rows, cols):
    return rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)


def integer_matrix(rng, fmt, rows, cols, scale=0.37):
    """Random weights of an integer format and the matrix holding them exactly: ternary
    values, or int8 in [-127, 127] with every row reaching 127 in magnitude, so that the
    int8 packer's per-row absmax scale is 1 and keeps them exact."""
    if fmt in runtime.TERNARY_FORMATS:
        w = ternary(rng, rows, cols)
        return w, Matrix.pack(fmt, w, scale)
    w = rng.integers(-127, 128, size=(rows, cols), dtype=np.int8)
    w[np.arange(rows), rng.integers(0, cols, size=rows)] = 127
    return w, Matrix.from_float(fmt, w.astype(np.float32))


@pytest.fixture(scope="module")
def contexts(runnable_variants):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 3 threads may exceed the CPUs
        ctxs = {(v, t): Context(t, v) for v in runnable_variants for t in THREADS}
    yield ctxs
    for c in ctxs.values():
        c.close()


@pytest.mark.parametrize("fmt", runtime.INTEGER_FORMATS)
@pytest.mark.parametrize("rows,cols", SHAPES)
def test_integer_dot_products_are_exact_for_every_variant_and_thread_count(fmt, rows, cols, contexts):
    rng = np.random.default_rng(rows * 7919 + cols)
    w, m = integer_matrix(rng, fmt, rows, cols)
    for n in TOKENS:
        x = rng.integers(-128, 128, size=(n, cols), dtype=np.int8)  # full int8 range
        expected = x.astype(np.int64) @ w.T.astype(np.int64)
        for (variant, threads), ctx in contexts.items():
            got = ctx.matmul_i8(m, x[0] if n == 1 else x)  # 1-D runs GEMV, 2-D GEMM
            assert got.dtype == np.int32
            np.testing.assert_array_equal(got.reshape(n, rows), expected,
                                          err_msg=f"{fmt} {variant} threads={threads} n={n}")


@pytest.mark.parametrize("fmt", runtime.INTEGER_FORMATS)
def test_integer_formats_float_path_is_identical_across_variants(fmt, contexts):
    # quantisation and scaling are the same float operations in every variant
    rng = np.random.default_rng(1)
    _, m = integer_matrix(rng, fmt, 29, 700, 0.05)
    for n in (1, 5):
        x = (rng.standard_normal((n, 700)) * 3).astype(np.float32)
        ref = contexts[("scalar", 1)].matmul(m, x)
        for key, ctx in contexts.items():
            np.testing.assert_array_equal(ctx.matmul(m, x), ref, err_msg=str(key))


def quantise_reference(x):
    """BitNet b1.58 activation quantisation in numpy (float32 steps, round half to even)."""
    amax = np.maximum(np.abs(x).max(axis=-1, keepdims=True), np.float32(1e-5))
    s = (np.float32(127.0) / amax).astype(np.float32)
    q = np.clip(np.round(x * s), -128, 127)
    return q.astype(np.int64), s


@pytest.mark.parametrize("fmt", runtime.INTEGER_FORMATS)
def test_integer_formats_float_path_matches_numpy(fmt, contexts):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 513)).astype(np.float32)
    q, s = quantise_reference(x)
    if fmt == "int8":  # w8a8: the row's own scale
        wf = rng.standard_normal((31, 513)).astype(np.float32)
        m = Matrix.from_float(fmt, wf)
        scale = np.abs(wf).max(axis=1).astype(np.float32) / np.float32(127)
        w = np.round(wf / scale[:, None]).astype(np.int64)
        expected = (q @ w.T) * (scale / s)
    else:
        w = ternary(rng, 31, 513)
        m = Matrix.pack(fmt, w, 0.25)
        expected = (q @ w.T.astype(np.int64)) * (np.float32(0.25) / s)
    got = contexts[("scalar", 1)].matmul(m, x)
    # integer dots are exact; the only rounding is the final float32 scaling
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_quantisation_rounds_half_to_even(contexts):
    w = np.eye(4, 256, dtype=np.int8)
    m = Matrix.pack("i2s", w, 1.0)
    x = np.zeros(256, np.float32)
    x[:4] = [127.0, 0.5, 1.5, -2.5]  # s = 1: halves round to even
    for ctx in contexts.values():
        np.testing.assert_array_equal(ctx.matmul(m, x), [127.0, 0.0, 2.0, -2.0])


@pytest.mark.parametrize("fmt", runtime.FORMATS)
@pytest.mark.parametrize("value, word", [(np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")])
def test_non_finite_input_is_refused_naming_token_and_column(fmt, value, word, contexts):
    w = np.eye(8, 300, dtype=np.int8)
    m = Matrix.pack(fmt, w, 1.0)
    x = np.ones((3, 300), np.float32)
    x[2, 17] = value
    for ctx in contexts.values():
        for batch in (x, x[2]):
            with pytest.raises(runtime.RuntimeFailure, match=rf"token {2 if batch.ndim == 2 else 0} holds .*{word} at column 17"):
                ctx.matmul(m, batch)
        with pytest.raises(runtime.RuntimeFailure, match=word):
            ctx.matmul_many([m, m], x)


@pytest.mark.parametrize("fmt", ("f16", "f32"))
@pytest.mark.parametrize("rows,cols", SHAPES)
def test_float_formats_within_tolerance_of_float64(fmt, rows, cols, contexts):
    rng = np.random.default_rng(rows + 31 * cols)
    wf = rng.standard_normal((rows, cols)).astype(np.float32)
    m = Matrix.from_float(fmt, wf)
    stored = m.to_float().astype(np.float64)  # f16: the half-rounded weights
    # 300 tokens: three token blocks of the x86 float GEMM, the last one partial
    for n in (1, 3, 33, 300):
        x = rng.standard_normal((n, cols)).astype(np.float32)
        exact = x.astype(np.float64) @ stored.T
        # FP32 accumulation: error bounded by 1e-5 of sum |w x| (K <= 2560 here)
        bound = 1e-5 * (np.abs(x).astype(np.float64) @ np.abs(stored).T) + 1e-6
        for key, ctx in contexts.items():
            got = ctx.matmul(m, x[0] if n == 1 else x).reshape(n, rows)
            assert np.all(np.abs(got - exact) <= bound), f"{fmt} {key} n={n}"


def test_f16_stores_ieee_half_rounded_to_nearest_even():
    rng = np.random.default_rng(3)
    wf = (rng.standard_normal((7, 99)) * 100).astype(np.float32)
    wf[0, :6] = [65504.0, 65520.0, 1e-8, -0.0, 6.1e-5, 3e-7]  # max, overflow, underflow, subnormals
    got = Matrix.from_float("f16", wf).to_float()
    with np.errstate(over="ignore"):  # 65520 overflows to inf on purpose
        expected = wf.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("fmt", runtime.FORMATS)
@pytest.mark.parametrize("rows,cols", SHAPES)
def test_pack_unpack_round_trip(fmt, rows, cols):
    rng = np.random.default_rng(rows * cols)
    w = ternary(rng, rows, cols)
    m = Matrix.pack(fmt, w, 0.5)
    assert m.shape == (rows, cols) and m.format == fmt
    np.testing.assert_array_equal(m.to_float(), w.astype(np.float32) * 0.5)
    if fmt in runtime.TERNARY_FORMATS:
        np.testing.assert_array_equal(m.unpack(), w)
        assert m.scale == 0.5
    np.testing.assert_array_equal(m.clone().to_float(), m.to_float())


def test_int8_quantises_each_row_with_its_own_absmax():
    w = np.array([[0.5, -1.0, 0.25, 0.0], [100.0, 50.0, -25.0, 1.0]], np.float32)
    got = Matrix.from_float("int8", w).to_float()
    s = np.abs(w).max(axis=1, keepdims=True).astype(np.float32) / np.float32(127)
    np.testing.assert_array_equal(got, (np.round(w / s) * s).astype(np.float32))
    # rows padded to 64 columns and to a group of 4 rows, plus one float scale each
    assert Matrix.from_float("int8", w).nbytes == 4 * 64 + 4 * 4


def test_bits_per_weight_on_2b4t_shapes():
    for rows, cols in ((2560, 2560), (640, 2560), (6912, 2560), (2560, 6912)):
        w = np.zeros((rows, cols), np.int8)
        assert Matrix.pack("i2s", w).bits_per_weight == 2.0
        assert Matrix.pack("tq1", w).bits_per_weight <= 1.7
        assert Matrix.pack("tl1", w).bits_per_weight == 2.0
        # 5 bits per 3 weights; 2560 columns pad to 2568 (whole k-steps of 24)
        assert 5 / 3 <= Matrix.pack("tl2", w).bits_per_weight <= 5 / 3 * 2568 / 2560
        assert Matrix.pack("f16", w).bits_per_weight == 16.0


# ---- the lookup-table formats: bit-identical to i2s, at every batch size ----

def tl_cases(rng, rows, cols):
    """Random weights and activations, plus the extremes of the tables: rows of all +1 and
    all -1 (|A| reaches 96 in tl2) against activations of -128 and 127."""
    w = ternary(rng, rows, cols)
    w[0], w[1] = 1, -1
    x = rng.integers(-128, 128, size=(130, cols), dtype=np.int8)
    x[0], x[1] = -128, 127
    x[2, ::2] = -128
    return w, x


@pytest.mark.parametrize("fmt", ["tl1", "tl2"])
def test_lookup_tables_equal_scalar_i2s_at_every_batch_size(fmt, contexts):
    # 70 rows: one 64-row block and a ragged one; 101 columns: not a whole k-step of either
    rng = np.random.default_rng(15)
    w, x = tl_cases(rng, 70, 101)
    m, ref = Matrix.pack(fmt, w, 0.5), Matrix.pack("i2s", w, 0.5)
    scalar = contexts[("scalar", 1)]
    for n in range(1, 131):
        batch = x[0] if n == 1 else x[:n]
        want = scalar.matmul_i8(ref, batch)
        np.testing.assert_array_equal(want.reshape(n, -1), x[:n].astype(np.int64) @ w.T)
        xf = batch.astype(np.float32) * np.float32(0.25)
        want_f = scalar.matmul(ref, xf)
        for (variant, threads), ctx in contexts.items():
            if threads != THREADS[n % len(THREADS)]:  # every variant, each thread count on a third of the sizes
                continue
            key = f"{fmt} {variant} threads={threads} n={n}"
            np.testing.assert_array_equal(ctx.matmul_i8(m, batch), want, err_msg=key)
            if n in (1, 2, 33, 130):  # the float path: identical quantisation and scaling
                np.testing.assert_array_equal(ctx.matmul(m, xf), want_f, err_msg=key)


@pytest.mark.parametrize("fmt", ["tl1", "tl2"])
def test_lookup_tables_on_long_rows_and_many_blocks(fmt, contexts):
    # columns past one table chunk and past the int16 widening interval of the kernels
    # without VNNI; rows spanning several 64-row blocks shared between threads
    rng = np.random.default_rng(16)
    w, x = tl_cases(rng, 333, 6913)
    m = Matrix.pack(fmt, w)
    for n in (1, 3):
        want = x[:n].astype(np.int64) @ w.T
        for key, ctx in contexts.items():
            got = ctx.matmul_i8(m, x[0] if n == 1 else x[:n])
            np.testing.assert_array_equal(got.reshape(n, -1), want, err_msg=f"{fmt} {key} n={n}")


def test_lookup_tables_without_vbmi(runnable_variants):
    # the avx512 variants look tables up with vpermb where the CPU has AVX-512 VBMI, else
    # with pshufb; TERNBENCH_NO_VBMI=1 makes a VBMI CPU take the pshufb path too
    import subprocess
    import sys

    wide = [v for v in runnable_variants if v.startswith("avx512")]
    if not wide:
        pytest.skip("no AVX-512 variant runs here")
    script = """
import numpy as np, sys
from runtime import Context, Matrix
rng = np.random.default_rng(17)
w = rng.integers(-1, 2, size=(150, 1000), dtype=np.int8)
x = rng.integers(-128, 128, size=(2, 1000), dtype=np.int8)
x[1] = -128
for fmt in ("tl1", "tl2"):
    m = Matrix.pack(fmt, w)
    for v in sys.argv[1:]:
        for t in (1, 2):
            with Context(t, v, tuning="off") as ctx:
                for row in x:
                    assert np.array_equal(ctx.matmul_i8(m, row), row.astype(np.int64) @ w.T), (fmt, v, t)
print("ok")
"""
    env = dict(os.environ, TERNBENCH_NO_VBMI="1")
    out = subprocess.run([sys.executable, "-c", script, *wide], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_matrix_bytes_refuses_shapes_a_format_cannot_hold():
    assert runtime.matrix_bytes("tl2", 70, 101) == Matrix.pack("tl2", np.zeros((70, 101), np.int8)).nbytes
    for fmt in runtime.FORMATS:
        with pytest.raises(ValueError, match="columns is more than this format can hold"):
            runtime.matrix_bytes(fmt, 4, (1 << 22) + 1)
        with pytest.raises(ValueError, match="at least one row and one column"):
            runtime.matrix_bytes(fmt, 0, 5)
        with pytest.raises(ValueError, match="more than the runtime supports"):
            runtime.matrix_bytes(fmt, 2**40, 5)


def test_odd_columns_are_padded_with_zero_weights():
    # 257 columns pad to 512 (i2s) / 640 (tq1): the padding must not change results
    w = np.ones((2, 257), np.int8)
    x = np.full(257, 100, np.int8)
    with Context(1, "scalar") as ctx:
        for fmt in runtime.TERNARY_FORMATS:
            np.testing.assert_array_equal(ctx.matmul_i8(Matrix.pack(fmt, w), x), [25700, 25700])


def test_shapes_a_format_cannot_hold_are_rejected_at_pack_time():
    too_wide = np.zeros((1, (1 << 22) + 1), np.int8)
    for fmt in runtime.FORMATS:
        with pytest.raises(ValueError, match="columns is more than this format can hold"):
            Matrix.pack(fmt, too_wide)
    # int8 (w8a8) keeps its biased dot products in int32 up to 65536 columns
    Matrix.pack("int8", np.zeros((1, 1 << 16), np.int8))
    with pytest.raises(ValueError, match="65537 columns is more than this format can hold"):
        Matrix.pack("int8", np.zeros((1, (1 << 16) + 1), np.int8))
    for shape in ((0, 5), (5, 0)):
        with pytest.raises(ValueError, match="at least one row and one column"):
            Matrix.pack("i2s", np.zeros(shape, np.int8))


# ---- bad calls from Python: clear exceptions, never a crash ----

def test_bad_pack_arguments():
    w = np.zeros((4, 8), np.int8)
    with pytest.raises(TypeError, match="dtype int8, got float32"):
        Matrix.pack("i2s", w.astype(np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        Matrix.pack("i2s", np.zeros((8, 4), np.int8).T)
    with pytest.raises(ValueError, match="must be 2-D"):
        Matrix.pack("i2s", np.zeros(8, np.int8))
    with pytest.raises(TypeError, match="numpy array"):
        Matrix.pack("i2s", [[0, 1]])
    bad = w.copy()
    bad[2, 3] = 2
    with pytest.raises(ValueError, match="found 2 at row 2, column 3"):
        Matrix.pack("tq1", bad)
    with pytest.raises(ValueError, match="unknown weight format 'q4'"):
        Matrix.pack("q4", w)
    with pytest.raises(ValueError, match="scale must be finite"):
        Matrix.pack("i2s", w, float("nan"))
    with pytest.raises(ValueError, match="ternarise first"):
        Matrix.from_float("i2s", w.astype(np.float32))
    with pytest.raises(ValueError, match="not a ternary format"):
        Matrix.pack("f16", w).unpack()


def test_bad_matmul_arguments():
    m = Matrix.pack("i2s", np.zeros((4, 8), np.int8))
    with Context(1) as ctx:
        with pytest.raises(ValueError, match="x has 7 columns but the matrix 4x8 needs 8"):
            ctx.matmul(m, np.zeros(7, np.float32))
        with pytest.raises(TypeError, match="dtype float32, got float64"):
            ctx.matmul(m, np.zeros(8))
        with pytest.raises(TypeError, match="dtype int8"):
            ctx.matmul_i8(m, np.zeros(8, np.int32))
        with pytest.raises(ValueError, match="C-contiguous"):
            ctx.matmul(m, np.zeros((8, 3), np.float32).T)
        with pytest.raises(ValueError, match="no tokens"):
            ctx.matmul(m, np.zeros((0, 8), np.float32))
        with pytest.raises(ValueError, match="needs an integer format"):
            ctx.matmul_i8(Matrix.pack("f16", np.zeros((4, 8), np.int8)), np.zeros(8, np.int8))
        with pytest.raises(TypeError, match="runtime.Matrix"):
            ctx.matmul("weights", np.zeros(8, np.float32))
        with pytest.raises(ValueError, match="at least 1"):
            ctx.bench_matmul([m], 1, 0)
    with pytest.raises(ValueError, match="closed"):
        ctx.matmul(m, np.zeros(8, np.float32))


def test_bad_context_arguments():
    for bad in (0, -2, runtime.MAX_THREADS + 1, 10 ** 12):   # checked before C sees it (no OverflowError)
        with pytest.raises(ValueError, match=f"threads must be between 1 and {runtime.MAX_THREADS}"):
            Context(bad)
    with pytest.raises(TypeError, match="threads must be an integer"):
        Context(1.5)
    with pytest.raises(UnsupportedVariant, match="unknown kernel variant 'sse9'"):
        Context(1, "sse9")


def test_variant_this_machine_lacks_is_a_clear_error_not_sigill():
    lacking = [v for v in runtime.variants() if not v.supported]
    assert lacking, "every known variant runs here; nothing to check"
    for v in lacking:
        with pytest.raises(UnsupportedVariant, match=f"'{v.name}' .*(not compiled|lacks)"):
            Context(1, v.name)


def test_variant_listing_names_reasons(runnable_variants):
    infos = {v.name: v for v in runtime.variants()}
    assert infos["scalar"].supported and "scalar" in runnable_variants
    assert runtime.best_variant() in runnable_variants
    for v in infos.values():
        assert v.supported == (v.why == "")


def test_avxvnni_runs_exactly_where_the_cpu_has_avx_vnni():
    # CPUID (leaf 7, subleaf 1) decides at run time; the kernel's /proc/cpuinfo flags must agree
    import platform

    info = {v.name: v for v in runtime.variants()}["avxvnni"]
    if platform.machine().lower() not in ("x86_64", "amd64"):
        assert not info.supported and "not compiled" in info.why
        return
    isa = set(runtime.cpu.identity()["isa"])
    assert info.supported == ({"avx2", "fma", "f16c", "avx_vnni"} <= isa), info.why
    if not info.supported:
        assert "AVX" in info.why or "F16C" in info.why or "FMA" in info.why


@pytest.mark.parametrize("fmt", ["tq1", "i2s"])
def test_vnni_lanes_stay_exact_on_long_extreme_rows(fmt, runnable_variants):
    # 256-bit vpdpbusd lanes see two halves of each chunk: each half keeps its own
    # accumulators, else 700000 columns of w=+1, x=127 would overflow tq1's int32 lanes
    cols = 700_000
    w = np.ones((4, cols), dtype=np.int8)
    x = np.full(cols, 127, dtype=np.int8)
    m = Matrix.pack(fmt, w)
    for v in runnable_variants:
        with Context(1, v, tuning="off") as ctx:
            assert np.array_equal(ctx.matmul_i8(m, x), np.full(4, 127 * cols, dtype=np.int32)), v


def test_more_threads_than_cpus_warns_and_works():
    from runtime.api import usable_cpus

    n = usable_cpus() + 2
    with pytest.warns(RuntimeWarning, match=f"{n} threads on"):
        ctx = Context(n)
    w = ternary(np.random.default_rng(4), 50, 300)
    x = np.ones((3, 300), np.int8)
    np.testing.assert_array_equal(ctx.matmul_i8(Matrix.pack("i2s", w), x), x.astype(np.int64) @ w.T)
    ctx.close()


@pytest.mark.filterwarnings("ignore:.*threads on.*:RuntimeWarning")
def test_contexts_start_and_stop_cleanly_many_times():
    m = Matrix.pack("i2s", np.ones((8, 256), np.int8))
    for i in range(50):
        with Context(1 + i % 3) as ctx:
            assert ctx.matmul_i8(m, np.ones(256, np.int8))[0] == 256


def test_benchmark_helpers_report_per_call_times_and_bandwidth():
    mats = [Matrix.pack("i2s", np.ones((16, 256), np.int8)) for _ in range(3)]
    with Context(1) as ctx:
        secs = ctx.bench_matmul(mats, 2, 7)
        assert len(secs) == 7 and all(s > 0 for s in secs)
        gbps = ctx.read_bandwidth(4 << 20, 2)
        assert list(gbps) == list(runtime.READ_PATTERNS) and gbps and runtime.READ_PATTERNS[0] == "plain"
        assert all(len(v) == 2 and all(g > 0 for g in v) for v in gbps.values())
        with pytest.raises(RuntimeFailure, match="too small"):
            ctx.read_bandwidth(1000, 1)


def test_one_context_shared_by_python_threads():
    # the GIL is released during C calls; the context must serialise its callers
    import threading

    rng = np.random.default_rng(5)
    w = ternary(rng, 64, 1024)
    m = Matrix.pack("i2s", w)
    x = rng.integers(-128, 128, size=(9, 1024), dtype=np.int8)
    expected = x.astype(np.int64) @ w.T
    errors = []
    with Context(2) as ctx:
        def work():
            for _ in range(200):
                if not np.array_equal(ctx.matmul_i8(m, x), expected):
                    errors.append("mismatch")
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
