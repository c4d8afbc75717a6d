"""cffi build of the runtime (API, out-of-line mode).

Used by setup.py at install time (`cffi_modules`), and directly for the
sanitizer build: `python runtime/build_ffi.py --sanitize OUTDIR`.

Every ISA variant is compiled into one module: each kern_<isa>.c file selects
its own instruction set with a target pragma, so no global -march is used and
the scalar reference stays portable.
"""
import hashlib
import os
import platform
import sys
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
SRC = Path("runtime") / "src"  # setuptools wants source paths relative to the project

# -fno-wrapv undoes the -fwrapv of Python's own CFLAGS, which setuptools puts first: with it,
# GCC must let int loop indices wrap, so it cannot widen them, and the kernels' inner loops
# carry sign extensions and address arithmetic per step; it also turns off UBSan's check for
# signed overflow.
BASE_FLAGS = ["-std=c11", "-Wall", "-Wextra", "-pthread", "-fno-wrapv"]
OPT_FLAGS = ["-O3"]
SANITIZE_FLAGS = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                  "-fno-sanitize-recover=all"]


def sources(base):
    arch = platform.machine().lower()
    files = sorted(p.name for p in (ROOT / SRC).glob("*.c"))
    if arch not in ("x86_64", "amd64", "i686", "i386"):
        files = [f for f in files if not f.startswith("kern_x86")]
    if arch not in ("aarch64", "arm64"):
        files = [f for f in files if not f.startswith("kern_arm")]
    return [str(base / f) for f in files]


def source_digest() -> str:
    """A digest of the C sources: which kernel code a build (and every figure it measures, and
    every tuning cached for it) came from, within one version."""
    h = hashlib.sha256()
    for f in sorted((ROOT / SRC).glob("*.[ch]")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def make_builder(sanitize=False, standalone=False):
    """standalone: absolute paths, for ffi.compile() outside setuptools (it changes directory)."""
    src = ROOT / SRC if standalone else SRC
    flags = BASE_FLAGS + (SANITIZE_FLAGS if sanitize else OPT_FLAGS)
    ffi = FFI()
    ffi.cdef((ROOT / SRC / "tb_api.h").read_text())
    version = os.environ.get("TERNBENCH_VERSION", "0.1.0")
    ffi.set_source(
        "runtime._rt",
        '#include "tb_api.h"',
        sources=sources(src),
        include_dirs=[str(src)],
        extra_compile_args=flags,
        extra_link_args=["-pthread"] + (["-fsanitize=address,undefined"] if sanitize else []),
        libraries=["m"],
        define_macros=[("TB_BUILD_FLAGS", '"%s"' % " ".join(flags)), ("TB_VERSION", '"%s"' % version),
                       ("TB_SOURCE_DIGEST", '"%s"' % source_digest())],
    )
    return ffi


ffibuilder = make_builder(sanitize=os.environ.get("TERNBENCH_SANITIZE") == "1")

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--sanitize":
        sys.exit("usage: python runtime/build_ffi.py --sanitize OUTDIR")
    out = Path(sys.argv[2]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    lib = make_builder(sanitize=True, standalone=True).compile(tmpdir=str(out), verbose=False)
    print(lib)
