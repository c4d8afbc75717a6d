"""bitnet.cpp as an engine: its `llama-bench`, `llama-quantize` and `llama-cli`, built by ternbench
with clang from a source the user gives (a `git clone --recursive` of microsoft/BitNet, or a
source tarball of one) into the user's cache, or a build the user names (`--bitnetcpp-bin DIR`, or
TERNBENCH_BITNETCPP_BIN).

bitnet.cpp's TL2 kernels are C code generated for one model's matrix shapes by its own codegen
(utils/codegen_tl2.py), which knows three models; a build holds the kernels of one of them, so an
installation is keyed by the source's digest and that model. I2_S runs on any shape.
`install.json` records the source digest (and commit when known), the TL2 model and its shapes,
the compiler, the cmake flags and the date. Beside `bin/`, `converter/` keeps what bitnet.cpp's
TL2 converter needs from the source (tl2.KEPT: the converter, its gguf-py, the kernel_config.ini
the kernels were generated with): TL2 files are written by it (tl2.py)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from harness.inputs import user_path

from . import tl2 as tl2_files     # (install's `tl2` is the preset its kernels are for)
from .llamacpp import EngineError, Installation, _build, _cmake_from_pypi, _compiler, _run, install_binaries

NAME = "bitnetcpp"
BIN_ENV = "TERNBENCH_BITNETCPP_BIN"
FORMATS = ("i2_s", "tl2")             # x86: its TL1 kernels are ARM's
PROGRAMS = ("llama-bench", "llama-quantize")     # what a sweep needs
BUILT = (*PROGRAMS, "llama-cli")                  # what ternbench builds (llama-cli: greedy tokens)
CMAKE_FLAGS = ("-DCMAKE_BUILD_TYPE=Release", "-DBITNET_X86_TL2=ON", "-DBUILD_SHARED_LIBS=OFF",
               "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF")
CLANG_FIX = "apt-get install clang-19 libomp-19-dev (bitnet.cpp refuses gcc; libomp gives its ggml OpenMP)"
# The models bitnet.cpp's codegen_tl2.py generates TL2 kernels for: its name, the ternbench preset
# of that shape, the (M, K) shapes its kernels take, and the block sizes its setup_env.py passes.
TL2_MODELS = {
    "bitnet_b1_58-large": ("700M", ((1536, 4096), (1536, 1536), (4096, 1536)),
                           ("256,128,256", "96,192,96", "32,32,32")),
    "bitnet_b1_58-3B": ("bitnet_b1_58-3B", ((3200, 8640), (3200, 3200), (8640, 3200)),
                        ("160,320,320", "96,96,96", "32,32,32")),
    "Llama3-8B-1.58-100B-tokens": ("Llama3-8B-1.58", ((14336, 4096), (4096, 14336), (1024, 4096), (4096, 4096)),
                                   ("256,128,256,128", "96,96,96,96", "32,32,32,32")),
}
DEFAULT_TL2 = "700M"


def tl2_model(preset: str) -> str:
    """bitnet.cpp's codegen name for the ternbench preset PRESET, or EngineError saying why its
    codegen has no TL2 kernels for it."""
    for name, (ours, _, _) in TL2_MODELS.items():
        if preset in (ours, name):
            return name
    known = ", ".join(ours for ours, _, _ in TL2_MODELS.values())
    raise EngineError(f"bitnet.cpp's codegen_tl2.py generates TL2 kernels for {known} only, not {preset!r} "
                      "(its kernels are written per matrix shape); other models run in I2_S")


def describe(record: dict) -> str:
    source = record.get("commit") or f"source {record.get('source_digest', '?')[:12]}"
    if record.get("llama_cpp_commit"):
        source += f" with its llama.cpp {record['llama_cpp_commit']}"
    return (f"bitnet.cpp {source} (TL2 kernels for {record.get('tl2_preset')} = {record.get('tl2_model')}; "
            f"built {record.get('built')}, {record.get('compiler')}; {' '.join(record.get('cmake_flags', []))})")


def _check(d: Path, programs=PROGRAMS) -> str:
    missing = [p for p in programs if not os.access(d / p, os.X_OK)]
    return f"{d}: no executable {', '.join(missing)}" if missing else ""


def installations(cache: Path) -> list[tuple[Path, dict]]:
    """Every bitnet.cpp build ternbench installed in CACHE, the newest first: (directory, record)."""
    found = []
    for record in (Path(cache) / "engines" / NAME).glob("*/install.json"):
        try:
            found.append((record.parent, json.loads(record.read_text())))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda f: f[1].get("built_epoch", 0), reverse=True)


def find(cache: Path, given: str | None = None) -> tuple[Installation | None, str]:
    """The installation to use and "", or None and why there is none (with the fix)."""
    given = given or os.environ.get(BIN_ENV)
    if given:
        d = user_path(given)
        why = _check(d)
        if why:
            return None, f"{why} (bitnet.cpp's build/bin holds both)"
        return Installation(d, "given by the user", {}, f"bitnet.cpp at {d} (given by the user)"), ""
    builds = installations(cache)
    if not builds:
        return None, (f"not installed: `ternbench engines install {NAME} --source DIR|TARBALL` builds it from a "
                      "microsoft/BitNet checkout (git clone --recursive) with clang, 8-12 minutes on 2 cores")
    d, record = builds[0]
    why = _check(d / "bin")
    if why:
        return None, f"{why}; `ternbench engines install {NAME} --source ... --force` rebuilds it"
    return Installation(d / "bin", "installed by ternbench", record, describe(record)), ""


def _digest(source: Path) -> str:
    """The content digest of a source: the tarball's bytes, or every file of the checkout (its
    .git and build directories left out), so an edited checkout is a different build."""
    h = hashlib.sha256()
    if source.is_file():
        with open(source, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    for path in sorted(p for p in source.rglob("*") if p.is_file() and not p.is_symlink()
                       and not {".git", "build"} & set(p.relative_to(source).parts)):
        h.update(str(path.relative_to(source)).encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def _commits(source: Path) -> dict:
    """{commit, llama_cpp_commit} where known: a tarball named as the peers' one
    (bitnet-cpp-COMMIT-llama-COMMIT), or a git checkout and its llama.cpp submodule. Its programs
    built from a tarball say `version: 0 (unknown)`, so the source is what identifies them."""
    if source.is_file():
        m = re.search(r"bitnet-cpp-([0-9a-f]{7,40})(?:-llama-([0-9a-f]{7,40}))?", source.name)
        return {"commit": m.group(1) if m else None, "llama_cpp_commit": m.group(2) if m else None}
    return {"commit": _git_head(source), "llama_cpp_commit": _git_head(source / "3rdparty" / "llama.cpp")}


def _git_head(d: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(d), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _source_tree(source: Path, into: Path) -> Path:
    """A copy of the source in INTO (the codegen writes into it; the user's checkout stays as it
    was): the directory holding utils/codegen_tl2.py and 3rdparty/llama.cpp."""
    if source.is_file():
        try:
            with tarfile.open(source) as tar:
                tar.extractall(into, filter="data")
        except (tarfile.TarError, OSError) as e:
            raise EngineError(f"{source}: not a readable source tarball ({e})") from None
    else:
        shutil.copytree(source, into / "src", symlinks=True, ignore=shutil.ignore_patterns(".git", "build"))
    roots = sorted(p.parent.parent for p in into.rglob("utils/codegen_tl2.py"))
    if not roots:
        raise EngineError(f"{source}: no utils/codegen_tl2.py inside: not a microsoft/BitNet source")
    root = roots[0]
    if not (root / "3rdparty" / "llama.cpp" / "CMakeLists.txt").is_file():
        raise EngineError(f"{source}: 3rdparty/llama.cpp is empty: clone with `git clone --recursive` "
                          "(or run `git submodule update --init --recursive` in it)")
    return root


def _clang() -> tuple[str, str]:
    for cc, cxx in (("clang-19", "clang++-19"), ("clang", "clang++")):
        if shutil.which(cc) and shutil.which(cxx):
            return shutil.which(cc), shutil.which(cxx)
    raise EngineError(f"no clang on PATH: {CLANG_FIX}")


def install_dir(cache: Path, digest: str, model: str) -> Path:
    return Path(cache) / "engines" / NAME / f"{digest[:12]}-{model}"


def install(cache: Path, source: str, tl2: str = DEFAULT_TL2, force: bool = False,
            progress=lambda msg: None) -> Installation:
    """Builds bitnet.cpp's programs from SOURCE (a checkout directory or a tarball) with TL2
    kernels generated for the preset TL2, and installs them in the cache."""
    src = user_path(source)
    if not src.exists():
        raise EngineError(f"--source {source}: no such file or directory")
    model = tl2_model(tl2)
    cc, cxx = _clang()
    cmake = shutil.which("cmake") or _cmake_from_pypi(progress)
    progress(f"digesting {src} ...")
    digest = _digest(src)
    target = install_dir(cache, digest, model)
    if (target / "install.json").is_file() and not force and not _check(target / "bin", BUILT):
        progress(f"already installed in {target}")
        record = json.loads((target / "install.json").read_text())
        return Installation(target / "bin", "installed by ternbench", record, describe(record))
    with tempfile.TemporaryDirectory(prefix="ternbench-bitnetcpp-") as tmp:
        root = _source_tree(src, Path(tmp))
        shapes = TL2_MODELS[model][1]
        progress(f"generating TL2 kernels for {model} ({', '.join(f'{m}x{k}' for m, k in shapes)}) ...")
        _codegen(root, model)
        build = root / "build"
        flags = (*CMAKE_FLAGS, f"-DCMAKE_C_COMPILER={cc}", f"-DCMAKE_CXX_COMPILER={cxx}")
        progress("configuring (cmake) ...")
        _run([cmake, "-S", str(root), "-B", str(build), *flags], "cmake")
        progress(f"building {', '.join(BUILT)} (8-12 minutes on 2 cores) ...")
        _build(cmake, build, progress, BUILT)
        install_binaries(build, BUILT, target)
        tl2_files.keep_converter(root, target / "converter")
        record = {"engine": NAME, "source": str(src), "source_digest": digest, **_commits(src),
                  "tl2_model": model, "tl2_preset": TL2_MODELS[model][0], "tl2_shapes": [list(s) for s in shapes],
                  "converter": f"converter/: {', '.join(tl2_files.KEPT)} of this source, after its codegen",
                  "cmake_flags": list(flags), "compiler": _compiler(build),
                  "built": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "built_epoch": time.time()}
        (target / "install.json").write_text(json.dumps(record, indent=2) + "\n")
    progress(f"installed in {target / 'bin'}")
    return Installation(target / "bin", "installed by ternbench", record, describe(record))


def _codegen(root: Path, model: str) -> None:
    """bitnet.cpp's codegen_tl2.py in the source tree ROOT: the TL2 kernels of MODEL's shapes
    (include/bitnet-lut-kernels.h) and their tiling (include/kernel_config.ini), with the block
    sizes its setup_env.py passes."""
    bm_big, bk, bm = TL2_MODELS[model][2]
    _run([sys.executable, "utils/codegen_tl2.py", "--model", model, "--BM", bm_big, "--BK", bk, "--bm", bm],
         "bitnet.cpp's codegen_tl2.py", cwd=root)


def converter_root(inst: Installation, progress=lambda msg: None) -> Path:
    """Where INST's TL2 converter is (tl2.installed_root). An installation made before ternbench
    kept it gets it now, from its recorded source when that is unchanged (the same digest): the
    same codegen parameters give the same kernel_config.ini the build was compiled with."""
    root = tl2_files.installed_root(inst)
    if root is not None:
        return root
    r = inst.record
    if not r:
        raise EngineError(f"{inst.bin}: TL2 needs bitnet.cpp's {tl2_files.CONVERTER} and "
                          f"{tl2_files.KERNEL_CONFIG} of this build, and no checkout holds this directory (BitNet/build/bin)")
    src = Path(r.get("source", ""))
    fix = f"`ternbench engines install {NAME} --source DIR|TARBALL --force` keeps it"
    if not src.exists() or _digest(src) != r.get("source_digest"):
        raise EngineError(f"this bitnet.cpp build keeps no TL2 converter and its source {src} is gone or changed; {fix}")
    progress(f"keeping bitnet.cpp's TL2 converter from {src} ...")
    target = inst.bin.parent / "converter"
    with tempfile.TemporaryDirectory(prefix="ternbench-bitnetcpp-") as tmp:
        root = _source_tree(src, Path(tmp))
        _codegen(root, r["tl2_model"])
        tl2_files.keep_converter(root, Path(tmp) / "converter")
        # noted beside it, not in install.json: the record is part of the engine files' cache key
        (Path(tmp) / "converter" / "kept.json").write_text(json.dumps(
            {"source": str(src), "source_digest": r["source_digest"], "tl2_model": r["tl2_model"],
             "kept": time.strftime("%Y-%m-%d %H:%M:%S %Z")}, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)     # what an interrupted attempt left
        shutil.move(str(Path(tmp) / "converter"), target)
    return target


def _covering(spec) -> str | None:
    """The ternbench name of a model whose TL2 kernels take every linear of SPEC, if codegen knows one."""
    need = set(tl2_files.linear_shapes(spec))
    return next((ours for ours, shapes, _ in TL2_MODELS.values() if need <= set(shapes)), None)


def cannot_write(fmt: str, spec, inst: Installation | None) -> str:
    """Why INST cannot run SPEC in FMT, or "": TL2 only where the build's kernels take its shapes."""
    if fmt != "tl2" or inst is None:
        return ""
    r = inst.record
    root = tl2_files.installed_root(inst)
    if root is not None:
        shapes = tl2_files.kernel_shapes(root)
    elif r.get("tl2_shapes"):
        shapes = [tuple(s) for s in r["tl2_shapes"]]
    else:
        return (f"{inst.bin}: TL2 needs the checkout's {tl2_files.CONVERTER} and {tl2_files.KERNEL_CONFIG}; "
                "give the build inside its checkout (BitNet/build/bin)")
    kernels_for = f"{r['tl2_preset']} = {r['tl2_model']}" if r.get("tl2_model") else "its checkout's model"
    covering = _covering(spec)
    fix = (f"`ternbench engines install {NAME} --source SRC --tl2 {covering}` builds its kernels" if covering else
           f"bitnet.cpp's codegen has TL2 kernels for {', '.join(o for o, _, _ in TL2_MODELS.values())} only; "
           f"{spec.name} runs in I2_S")
    return tl2_files.unfit(spec, shapes, kernels_for, fix)
