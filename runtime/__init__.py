"""ternbench's bundled ternary CPU runtime: a thin Python layer over the C kernels.

    from runtime import Context, Matrix
    m = Matrix.pack("i2s", w_int8, scale=0.02)
    with Context(threads=2) as ctx:
        y = ctx.matmul(m, x)
"""
from .api import (
    FORMATS,
    KNOWN_VARIANTS,
    TERNARY_FORMATS,
    Context,
    Matrix,
    RuntimeFailure,
    UnsupportedVariant,
    VariantInfo,
    best_variant,
    build_info,
    matrix_bytes,
    variants,
    version,
)
from .model import Model, ModelShape

__all__ = [
    "FORMATS", "KNOWN_VARIANTS", "TERNARY_FORMATS", "Context", "Matrix", "RuntimeFailure",
    "UnsupportedVariant", "VariantInfo", "best_variant", "build_info", "matrix_bytes", "variants", "version",
    "Model", "ModelShape",
]
