"""Python face of the C runtime: argument checks, numpy in and out, errors as exceptions.

Everything a user can get wrong is checked here first, with a message naming the
argument; the C side checks again and reports through tb_last_error(), so no call
from Python can crash the interpreter.
"""
from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass

import numpy as np

from ._rt import ffi, lib

FORMATS = tuple(ffi.string(lib.tb_format_name(i)).decode() for i in range(lib.tb_format_count()))
TERNARY_FORMATS = tuple(f for i, f in enumerate(FORMATS) if lib.tb_format_is_ternary(i))
# Formats whose kernels take per-token int8 activations: exact integer dot products.
INTEGER_FORMATS = tuple(f for i, f in enumerate(FORMATS) if lib.tb_format_int_act(i))
# The read patterns of the bandwidth probe; the first, one plain sequential stream per
# thread, is the denominator of every bandwidth fraction.
READ_PATTERNS = tuple(ffi.string(lib.tb_read_pattern_name(i)).decode() for i in range(lib.tb_read_pattern_count()))
# Every variant name the runtime knows on any architecture, best first per family.
KNOWN_VARIANTS = ("avx512vnni", "avx512", "avxvnni", "avx2", "dotprod", "neon", "scalar")
MAX_THREADS = lib.tb_max_threads()  # the most threads a Context may have


class RuntimeFailure(RuntimeError):
    """The C runtime refused or failed a call; the message says why."""


class UnsupportedVariant(RuntimeFailure, ValueError):
    """A kernel variant that this build or this CPU cannot run."""


def _text(ptr) -> str:
    return ffi.string(ptr).decode() if ptr != ffi.NULL else ""


def _fail(cls=RuntimeFailure):
    raise cls(_text(lib.tb_last_error()) or "runtime call failed")


def version() -> str:
    return _text(lib.tb_version())


def build_info() -> str:
    """Compiler and flags the runtime was built with."""
    return _text(lib.tb_build_info())


@dataclass(frozen=True)
class VariantInfo:
    name: str
    compiled: bool
    supported: bool
    why: str  # empty when supported


def variants() -> list[VariantInfo]:
    """Every known variant, with whether this build has it and this CPU can run it."""
    compiled = {_text(lib.tb_variant_name(i)) for i in range(lib.tb_variant_count())}
    out = []
    for name in KNOWN_VARIANTS:
        why = ffi.new("char[]", 200)
        ok = bool(lib.tb_variant_supported(name.encode(), why, 200))
        out.append(VariantInfo(name, name in compiled, ok, "" if ok else _text(why)))
    return out


def best_variant() -> str:
    return _text(lib.tb_variant_best())


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _array(name, a, dtype, ndim):
    """Checks that `a` is a C-contiguous numpy array of `dtype` with `ndim` dims."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, got {a.dtype.name}")
    if a.ndim not in ndim:
        dims = " or ".join(f"{d}-D" for d in ndim)
        raise ValueError(f"{name} must be {dims}, got shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray), got strides {a.strides}")
    return a


def matrix_bytes(fmt: str, rows: int, cols: int) -> int:
    """Bytes a rows x cols matrix takes in `fmt`, padding and row scales included: what a
    packed Matrix's `nbytes` would be, without packing one. ValueError, naming the limit,
    for a shape the format cannot hold."""
    f = _check_format(fmt)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (rows, cols)):
        raise TypeError(f"rows and cols must be integers, got {rows!r} x {cols!r}")
    if not (-2**31 <= rows < 2**31 and -2**31 <= cols < 2**31):
        raise ValueError(f"{fmt}: a {rows} x {cols} matrix is more than the runtime supports")
    if lib.tb_format_check_shape(f, rows, cols) != 0:
        raise ValueError(_text(lib.tb_last_error()))
    return lib.tb_format_matrix_bytes(f, rows, cols)


def _check_format(fmt):
    if fmt not in FORMATS:
        raise ValueError(f"unknown weight format {fmt!r}; known: {', '.join(FORMATS)}")
    return lib.tb_format_id(fmt.encode())


class Matrix:
    """A weight matrix in one of the runtime's formats (owns C memory)."""

    def __init__(self, ptr):
        if ptr == ffi.NULL:
            _fail(ValueError)
        self._ptr = ffi.gc(ptr, lib.tb_matrix_free)

    @classmethod
    def pack(cls, fmt: str, w: np.ndarray, scale: float = 1.0) -> Matrix:
        """Packs ternary int8 values {-1, 0, +1}, shape (rows, cols), with one scale."""
        f = _check_format(fmt)
        _array("weights", w, np.int8, (2,))
        scale = float(scale)
        if not np.isfinite(scale):
            raise ValueError(f"scale must be finite, got {scale}")
        if w.size and (w.min() < -1 or w.max() > 1):
            bad = np.argwhere((w < -1) | (w > 1))[0]
            raise ValueError(f"ternary weights must be -1, 0 or +1; found {w[tuple(bad)]} at row {bad[0]}, column {bad[1]}")
        return cls(lib.tb_pack_ternary(f, ffi.from_buffer("signed char[]", w), w.shape[0], w.shape[1], scale))

    @classmethod
    def from_float(cls, fmt: str, w: np.ndarray) -> Matrix:
        """Packs float32 weights into a float format: f16 (rounded to nearest even), f32, or
        int8 (per row: q = round(w * 127 / max|w|), one float scale per row)."""
        f = _check_format(fmt)
        if fmt in TERNARY_FORMATS:
            raise ValueError(f"{fmt} holds ternary weights: ternarise first and use Matrix.pack")
        _array("weights", w, np.float32, (2,))
        return cls(lib.tb_pack_float(f, ffi.from_buffer("float[]", w), w.shape[0], w.shape[1]))

    def clone(self) -> Matrix:
        return Matrix(lib.tb_matrix_clone(self._ptr))

    @property
    def format(self) -> str:
        return _text(lib.tb_format_name(lib.tb_matrix_format(self._ptr)))

    @property
    def rows(self) -> int:
        return lib.tb_matrix_rows(self._ptr)

    @property
    def cols(self) -> int:
        return lib.tb_matrix_cols(self._ptr)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    @property
    def scale(self) -> float:
        return lib.tb_matrix_scale(self._ptr)

    @property
    def nbytes(self) -> int:
        """Bytes of packed weight data one matmul reads, padding included."""
        return lib.tb_matrix_bytes(self._ptr)

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.nbytes / (self.rows * self.cols)

    def unpack(self) -> np.ndarray:
        """The ternary values as int8 (ternary formats only); the scale is `.scale`."""
        if self.format not in TERNARY_FORMATS:
            raise ValueError(f"{self.format} is not a ternary format; use to_float()")
        out = np.empty(self.shape, dtype=np.int8)
        if lib.tb_unpack_ternary(self._ptr, ffi.from_buffer("signed char[]", out)) != 0:
            _fail()
        return out

    def to_float(self) -> np.ndarray:
        """The weights as float32 (ternary values times the scale for ternary formats)."""
        out = np.empty(self.shape, dtype=np.float32)
        if lib.tb_unpack_float(self._ptr, ffi.from_buffer("float[]", out)) != 0:
            _fail()
        return out

    def __repr__(self):
        return f"Matrix({self.format}, {self.rows}x{self.cols}, {self.nbytes} bytes)"


# How a new context is tuned: runtime.tuning.apply, registered by runtime.tuning when it loads.
# Tuning measures with Matrix and Context, so it sits above this module; a callback keeps this
# module from importing it back (tests/test_layout.py forbids the cycle).
_tune_context = None


def register_context_tuner(tune) -> None:
    """tune(ctx, how) -> the Tuning a new Context applies and reports as ctx.tuning."""
    global _tune_context
    _tune_context = tune


class Context:
    """A thread pool and a kernel variant; matmuls run on it.

    `threads` may exceed the CPUs available (a warning says so: results then
    measure oversubscription). `variant="auto"` picks the best this CPU runs.
    `tuning` ("auto", "cache" or "off"; default: $TERNBENCH_TUNING, else "auto") says
    how the GEMV settings are chosen: see runtime.tuning. `ctx.tuning` says what it chose.
    """

    def __init__(self, threads: int = 1, variant: str = "auto", tuning: str | None = None):
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
            raise TypeError(f"threads must be an integer, got {type(threads).__name__}")
        if not 1 <= threads <= MAX_THREADS:
            raise ValueError(f"threads must be between 1 and {MAX_THREADS}, got {threads}")
        if variant != "auto" and variant not in KNOWN_VARIANTS:
            raise UnsupportedVariant(f"unknown kernel variant {variant!r}; known: auto, {', '.join(KNOWN_VARIANTS)}")
        cpus = usable_cpus()
        if threads > cpus:
            warnings.warn(f"{threads} threads on {cpus} usable CPUs: threads will share cores", RuntimeWarning, stacklevel=2)
        ptr = lib.tb_ctx_new(int(threads), variant.encode())
        if ptr == ffi.NULL:
            msg = _text(lib.tb_last_error())
            if "variant" in msg:
                raise UnsupportedVariant(msg)
            raise RuntimeFailure(msg)
        self._ptr = ffi.gc(ptr, lib.tb_ctx_free)
        # cffi releases the GIL in C calls, and a context's scratch buffers serve
        # one call at a time: serialise callers sharing a context
        self._lock = threading.Lock()
        if _tune_context is None:
            raise RuntimeFailure("runtime.tuning is not loaded (import the runtime package, not runtime.api alone)")
        self.tuning = _tune_context(self, tuning)

    @property
    def threads(self) -> int:
        return lib.tb_ctx_threads(self._ptr)

    @property
    def variant(self) -> str:
        return _text(lib.tb_ctx_variant(self._ptr))

    def close(self):
        with self._lock:
            if self._ptr is not None:
                ffi.release(self._ptr)
                self._ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _live(self):
        if self._ptr is None:
            raise ValueError("this context is closed")
        return self._ptr

    @staticmethod
    def _tokens(m: Matrix, x: np.ndarray, dtype):
        if not isinstance(m, Matrix):
            raise TypeError(f"matrix must be a runtime.Matrix, got {type(m).__name__}")
        _array("x", x, dtype, (1, 2))
        if x.shape[-1] != m.cols:
            raise ValueError(f"x has {x.shape[-1]} columns but the matrix {m.rows}x{m.cols} needs {m.cols}")
        n = 1 if x.ndim == 1 else x.shape[0]
        if n == 0:
            raise ValueError("x has no tokens (shape %s)" % (x.shape,))
        return n, ((m.rows,) if x.ndim == 1 else (n, m.rows))

    def matmul(self, m: Matrix, x: np.ndarray) -> np.ndarray:
        """y = W x for one token (x 1-D, GEMV) or n tokens (x of shape (n, cols), GEMM).

        Ternary formats quantise each token to int8 (absmax) first, as BitNet b1.58 does."""
        n, shape = self._tokens(m, x, np.float32)
        y = np.empty(shape, dtype=np.float32)
        with self._lock:
            rc = lib.tb_matmul(self._live(), m._ptr, ffi.from_buffer("float[]", x), n, ffi.from_buffer("float[]", y))
        if rc != 0:
            _fail()
        return y

    def matmul_many(self, mats: list[Matrix], x: np.ndarray) -> list[np.ndarray]:
        """matmul of several matrices of one format and column count on the same input: the
        input is quantised once and they run in one hand-off to the threads (Q, K and V)."""
        if not mats or len(mats) > 16:
            raise ValueError(f"matmul_many takes 1 to 16 matrices, got {len(mats)}")
        for i, m in enumerate(mats):
            if not isinstance(m, Matrix):
                raise TypeError(f"matrix {i} must be a runtime.Matrix, got {type(m).__name__}")
            if (m.format, m.cols) != (mats[0].format, mats[0].cols):
                raise ValueError(f"matrix {i} is {m.format} with {m.cols} columns, unlike matrix 0 "
                                 f"({mats[0].format}, {mats[0].cols} columns)")
        shapes = [self._tokens(m, x, np.float32)[1] for m in mats]
        ys = [np.empty(shape, dtype=np.float32) for shape in shapes]
        arr = ffi.new("tb_matrix *[]", [m._ptr for m in mats])
        outs = ffi.new("float *[]", [ffi.from_buffer("float[]", y) for y in ys])
        n = 1 if x.ndim == 1 else x.shape[0]
        with self._lock:
            rc = lib.tb_matmul_many(self._live(), arr, len(mats), ffi.from_buffer("float[]", x), n, outs)
        if rc != 0:
            _fail()
        return ys

    def matmul_i8(self, m: Matrix, x: np.ndarray) -> np.ndarray:
        """Exact integer dot products sum_k w*x for int8 activations (INTEGER_FORMATS)."""
        if isinstance(m, Matrix) and m.format not in INTEGER_FORMATS:
            raise ValueError(f"integer matmul needs an integer format ({', '.join(INTEGER_FORMATS)}), not {m.format}")
        n, shape = self._tokens(m, x, np.int8)
        y = np.empty(shape, dtype=np.int32)
        with self._lock:
            rc = lib.tb_matmul_i8(self._live(), m._ptr, ffi.from_buffer("signed char[]", x), n,
                                  ffi.from_buffer("int[]", y))
        if rc != 0:
            _fail()
        return y

    def bench_matmul(self, mats: list[Matrix], n: int, calls: int) -> list[float]:
        """Wall seconds of each call; call i multiplies mats[i % len(mats)] by n tokens."""
        if not mats:
            raise ValueError("bench_matmul needs at least one matrix")
        if calls <= 0 or n <= 0:
            raise ValueError(f"calls and n must be at least 1 (got calls={calls}, n={n})")
        arr = ffi.new("tb_matrix *[]", [m._ptr for m in mats])
        secs = ffi.new("double[]", calls)
        with self._lock:
            rc = lib.tb_bench_matmul(self._live(), arr, len(mats), n, calls, secs)
        if rc != 0:
            _fail()
        return list(secs)

    def read_bandwidth(self, nbytes: int, passes: int) -> dict[str, list[float]]:
        """GB/s (1e9 bytes/s) of each pass of a read-only sweep over `nbytes` by all threads,
        per read pattern (READ_PATTERNS; "plain" is the yardstick)."""
        k = len(READ_PATTERNS)
        gbps = ffi.new("double[]", passes * k)
        with self._lock:
            rc = lib.tb_bench_read_bandwidth(self._live(), nbytes, passes, gbps)
        if rc != 0:
            _fail()
        return {name: [gbps[p * k + i] for p in range(passes)] for i, name in enumerate(READ_PATTERNS)}

    def set_gemv_tuning(self, fmt: str, prefetch: int, chunk: int) -> None:
        """GEMV tuning of one format: software prefetch distance in bytes (0: none, else a
        multiple of 64) and the bytes of weights a thread claims at a time (0: equal split)."""
        f = _check_format(fmt)
        with self._lock:
            if lib.tb_ctx_set_tuning(self._live(), f, int(prefetch), int(chunk)) != 0:
                _fail(ValueError)

    def gemv_tuning(self, fmt: str) -> tuple[int, int]:
        """(prefetch bytes, claim bytes) this context uses for `fmt`."""
        f = _check_format(fmt)
        pf, ch = ffi.new("int *"), ffi.new("int *")
        with self._lock:
            if lib.tb_ctx_get_tuning(self._live(), f, pf, ch) != 0:
                _fail()
        return pf[0], ch[0]
