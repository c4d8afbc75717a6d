"""ternbench's bundled ternary CPU runtime: a thin Python layer over the C kernels.

    from runtime import Context, Matrix
    m = Matrix.pack("i2s", w_int8, scale=0.02)
    with Context(threads=2) as ctx:
        y = ctx.matmul(m, x)
"""
from .api import (
    FORMATS,
    INTEGER_FORMATS,
    KNOWN_VARIANTS,
    MAX_THREADS,
    READ_PATTERNS,
    TERNARY_FORMATS,
    Context,
    Matrix,
    RuntimeFailure,
    UnsupportedVariant,
    VariantInfo,
    best_variant,
    build_info,
    matrix_bytes,
    usable_cpus,
    variants,
    version,
)
from . import cpu, tuning
from .model import HEAD_FORMATS, KV_FORMATS, LINEAR_FORMATS, Model, ModelShape

__all__ = [
    "FORMATS", "INTEGER_FORMATS", "KNOWN_VARIANTS", "MAX_THREADS", "READ_PATTERNS", "HEAD_FORMATS", "KV_FORMATS", "LINEAR_FORMATS", "TERNARY_FORMATS", "Context", "Matrix", "RuntimeFailure",
    "UnsupportedVariant", "VariantInfo", "best_variant", "build_info", "matrix_bytes", "usable_cpus", "variants", "version",
    "Model", "ModelShape", "cpu", "tuning",
]
