"""The runtime under conditions a caller can create by accident: a fork, memory running
out mid-call, two Python threads, extreme shapes, any tuning. Each must give a clear
error or a correct result, never a hang, a crash or a wrong number."""
import os
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest

import runtime
from runtime import Context, Matrix, Model, ModelShape

SMALL = ModelShape(vocab=300, hidden=96, ffn=160, layers=2, heads=4, kv_heads=2, head_dim=24)
ASAN = "asan" in os.environ.get("LD_PRELOAD", "")


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs code in a fresh interpreter (so that fork and rlimits stay out of pytest)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def test_a_forked_child_gets_an_error_not_a_hang():
    # fork copies only the calling thread: the child's copy of a 2-thread pool has no workers
    out = run_python("""
        import os, sys
        import numpy as np
        from runtime import Context, Matrix, RuntimeFailure
        ctx = Context(2)
        m = Matrix.pack("i2s", np.ones((8, 256), np.int8))
        x = np.ones(256, np.float32)
        ctx.matmul(m, x)
        pid = os.fork()
        if pid == 0:
            try:
                ctx.matmul(m, x)
                os._exit(3)
            except RuntimeFailure as e:
                os._exit(0 if "forked child" in str(e) else 4)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        print("parent", ctx.matmul(m, x)[0])
        one = Context(1)  # a single-thread context has no workers to lose
        if os.fork() == 0:
            os._exit(0 if one.matmul(m, x)[0] == 256 else 5)
        print("single", os.waitstatus_to_exitcode(os.wait()[1]))
    """, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["child", "0", "parent", "256.0", "single", "0"]


@pytest.mark.skipif(ASAN, reason="AddressSanitizer reserves more address space than the limit allows")
def test_a_failed_batch_allocation_leaves_a_usable_model():
    # grow_batch once left NULL buffers behind the old capacity after a failed allocation
    out = run_python("""
        import resource
        import numpy as np
        from runtime import Context, Model, ModelShape
        shape = ModelShape(vocab=300, hidden=96, ffn=40000, layers=1, heads=4, kv_heads=2, head_dim=24)
        ctx = Context(1)
        model = Model(shape, "i2s", max_ctx=4096, kv_format="f32")
        model.init_random(ctx, 1)
        first = model.forward(ctx, [1, 2, 3])
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + (256 << 20), hard))
        model.reset()
        try:
            model.forward(ctx, [i % 300 for i in range(4000)])   # 4000 x 40000 floats per buffer: refused
            print("no error")
        except ValueError as e:
            print("refused:", "out of memory" in str(e), e)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        model.reset()
        print("after:", model.forward(ctx, [1, 2, 3]) == first)
    """)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[0].startswith("refused: True") and lines[1] == "after: True", out.stdout


def test_init_random_waits_for_the_context_lock():
    model = Model(SMALL, "i2s", max_ctx=16)
    ctx = Context(2)
    done = threading.Event()
    with ctx._lock:  # another Python thread's call in progress
        t = threading.Thread(target=lambda: (model.init_random(ctx, 3), done.set()))
        t.start()
        assert not done.wait(0.3), "init_random ran on the pool while another call held it"
    t.join(10)
    assert done.is_set()


@pytest.mark.parametrize("field, value, message", [
    ("hidden", 1 << 30, "hidden is 1073741824, more than the runtime supports"),
    ("layers", 1 << 20, "layers is 1048576, more than the runtime supports"),
    ("head_dim", 1 << 28, "heads x head_dim"),
    ("vocab", (1 << 28) + 1, "vocab is 268435457"),
])
def test_extreme_model_shapes_are_refused_before_any_allocation(field, value, message):
    shape = ModelShape(**{**SMALL.__dict__, field: value})
    with pytest.raises(ValueError, match=message):
        Model(shape, "i2s", max_ctx=16)


def test_extreme_context_is_refused():
    with pytest.raises(ValueError, match="max_ctx is .* more than the runtime supports"):
        Model(SMALL, "i2s", max_ctx=1 << 30)


def test_matrix_row_limit():
    with pytest.raises(ValueError, match="rows is more than the runtime supports"):
        Matrix(runtime.api.lib.tb_pack_ternary(0, runtime.api.ffi.new("signed char[]", 1), (1 << 28) + 1, 1, 1.0))


def test_kv_format_is_checked_and_reaches_the_runtime():
    with pytest.raises(ValueError, match="KV cache format must be one of f16, f32"):
        Model(SMALL, "i2s", kv_format="int8")


@pytest.mark.parametrize("fmt, float_act_quant", [("f32", False), ("i2s", False), ("f32", True)])
def test_non_finite_activation_inside_a_model_names_the_layer(fmt, float_act_quant):
    # gate and up weights so large that relu(gate)^2 * up overflows float32; float_act_quant is
    # the float reference of the ternary computation (ternbench lossless), which quantises first
    shape = ModelShape(vocab=50, hidden=64, ffn=64, layers=2, heads=2, kv_heads=2, head_dim=32, sub_norms=False)
    model = Model(shape, fmt, head_format="f32", max_ctx=8, float_act_quant=float_act_quant)
    ctx = Context(1)
    model.init_random(ctx, 0)
    for name in ("gate", "up"):
        model.set_linear(1, name, np.ones((64, 64), np.int8), 1e30)
    with pytest.raises(ValueError, match=r"model: layer 1, down: matmul: input token \d+ holds (a NaN|an infinity)"):
        model.forward(ctx, [1, 2])


# ---- tuning ----

def test_tuning_defaults_and_validation():
    with Context(2) as ctx:
        for fmt in runtime.FORMATS:
            pf, chunk = ctx.gemv_tuning(fmt)
            assert pf >= 0 and chunk >= 0
        ctx.set_gemv_tuning("i2s", 1024, 65536)
        assert ctx.gemv_tuning("i2s") == (1024, 65536)
        with pytest.raises(ValueError, match="multiple of 64"):
            ctx.set_gemv_tuning("i2s", 100, 0)
        with pytest.raises(ValueError, match="prefetch distance"):
            ctx.set_gemv_tuning("i2s", 1 << 20, 0)
        with pytest.raises(ValueError, match="claim size"):
            ctx.set_gemv_tuning("f16", 0, -1)
        with pytest.raises(ValueError, match="unknown weight format"):
            ctx.set_gemv_tuning("q4", 0, 0)


@pytest.mark.parametrize("fmt", runtime.FORMATS)
def test_results_do_not_depend_on_tuning(fmt, runnable_variants):
    rng = np.random.default_rng(8)
    w = rng.integers(-1, 2, size=(203, 1100), dtype=np.int8)
    m = Matrix.pack(fmt, w, 0.1)
    x = rng.standard_normal((1, 1100)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for variant in runnable_variants:
            ref = None
            for threads in (1, 3):
                with Context(threads, variant) as ctx:
                    for pf, chunk in ((0, 0), (64, 1), (4096, 1 << 20), (128, 5000)):
                        ctx.set_gemv_tuning(fmt, pf, chunk)
                        got = ctx.matmul(m, x[0])
                        ref = got if ref is None else ref
                        np.testing.assert_array_equal(got, ref, err_msg=f"{variant} t={threads} {pf}/{chunk}")


def test_matmul_many_equals_separate_matmuls():
    rng = np.random.default_rng(9)
    for fmt in runtime.FORMATS:
        mats = [Matrix.pack(fmt, rng.integers(-1, 2, size=(rows, 300), dtype=np.int8), 0.5) for rows in (7, 64, 3)]
        for x in (rng.standard_normal(300).astype(np.float32), rng.standard_normal((5, 300)).astype(np.float32)):
            with Context(2) as ctx:
                many = ctx.matmul_many(mats, x)
                for m, y in zip(mats, many):
                    np.testing.assert_array_equal(y, ctx.matmul(m, x), err_msg=fmt)
    a = Matrix.pack("i2s", np.zeros((4, 300), np.int8))
    with Context(1) as ctx:
        with pytest.raises(ValueError, match="matrix 1 is f16 with 300 columns, unlike matrix 0"):
            ctx.matmul_many([a, Matrix.pack("f16", np.zeros((4, 300), np.int8))], np.zeros(300, np.float32))
        with pytest.raises(ValueError, match="1 to 16 matrices"):
            ctx.matmul_many([], np.zeros(300, np.float32))
