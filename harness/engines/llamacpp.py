"""llama.cpp as an engine: its `llama-bench`, `llama-quantize` and `llama-simple`, built by
ternbench from the pinned llama-cpp-python sdist on PyPI (which vendors llama.cpp) into the user's
cache, or a build the user names (`--llamacpp-bin DIR`, or TERNBENCH_LLAMACPP_BIN).

The build is native (-DGGML_NATIVE=ON: the running CPU's instructions), static (the programs
need nothing beside them), with OpenMP, and is recorded in `install.json` beside them: the
sdist's version, the cmake flags, the compiler, and when."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from harness.inputs import user_path

NAME = "llamacpp"
SDIST = "llama-cpp-python"
PINNED = "0.3.36"               # llama-cpp-python's sdist: the llama.cpp it vendors is the one built
# llama-simple (an example, hence LLAMA_BUILD_EXAMPLES): greedy tokens of a file, printed as they
# come (the cross-engine exactness test). Not llama-completion: it prints through an asynchronous
# logger that can lose the last tokens at exit (its common/log.cpp says so); not llama-cli: the
# vendored llama.cpp's is its interactive chat program.
PROGRAMS = ("llama-bench", "llama-quantize", "llama-simple")
SWEEP_PROGRAMS = PROGRAMS[:2]   # what a sweep needs, all a user's own build must have
BIN_ENV = "TERNBENCH_LLAMACPP_BIN"
CMAKE_FLAGS = ("-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DGGML_OPENMP=ON", "-DBUILD_SHARED_LIBS=OFF",
               "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=ON", "-DLLAMA_BUILD_SERVER=OFF")
# llama.cpp's own quantisation types for a ternary model, and the float baseline
FORMATS = ("tq1_0", "tq2_0", "f16")


class EngineError(Exception):
    """An engine that cannot be found, installed or run: the message says what and how to fix it."""


@dataclass(frozen=True)
class Installation:
    bin: Path
    origin: str            # "installed by ternbench" or "given by the user"
    record: dict           # install.json when ternbench built it, else {}
    summary: str = ""      # what it is, when another engine's module says (bitnetcpp.describe)

    def program(self, name: str) -> Path:
        return self.bin / name

    def describe(self) -> str:
        r = self.record
        if self.summary:
            return self.summary
        if r:
            return (f"llama.cpp from {SDIST} {r.get('version')} ({r.get('llama_cpp', 'version line not recorded')}; "
                    f"built {r.get('built')}, {r.get('compiler')}; "
                    f"{' '.join(r.get('cmake_flags', []))})")
        return f"llama.cpp at {self.bin} ({self.origin})"


def install_dir(cache: Path) -> Path:
    return cache / "engines" / NAME / PINNED


def find(cache: Path, given: str | None = None) -> tuple[Installation | None, str]:
    """The installation to use and "", or None and why there is none (with the fix)."""
    given = given or os.environ.get(BIN_ENV)
    if given:
        d = user_path(given)
        missing = _missing(d, SWEEP_PROGRAMS)
        if missing:
            return None, f"{d}: no executable {', '.join(missing)} (a llama.cpp build's bin directory holds both)"
        return Installation(d, "given by the user", {}), ""
    d = install_dir(cache)
    record = d / "install.json"
    if not record.is_file():
        return None, f"not installed: `ternbench engines install {NAME}` builds it (about 5 minutes on 2 cores)"
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError) as e:
        return None, f"{record}: unreadable ({e}); `ternbench engines install {NAME} --force` rebuilds it"
    missing = _missing(d / "bin", SWEEP_PROGRAMS)
    if missing:
        return None, f"{d / 'bin'}: {', '.join(missing)} missing; `ternbench engines install {NAME} --force`"
    found = Installation(d / "bin", "installed by ternbench", data)
    older = _missing(d / "bin", PROGRAMS)
    if older:   # sweeps still run; the exactness test needs it
        found = replace(found, summary=f"{found.describe()}; no {', '.join(older)} (an older install): "
                                       f"`ternbench engines install {NAME} --force` adds it")
    return found, ""


def _missing(d: Path, programs) -> list[str]:
    return [p for p in programs if not os.access(d / p, os.X_OK)]


def install(cache: Path, force: bool = False, progress=lambda msg: None) -> Installation:
    """Downloads the pinned sdist, builds PROGRAMS, installs them."""
    target = install_dir(cache)
    if (target / "install.json").is_file() and not force:
        found, _ = find(cache)
        if found and not _missing(found.bin, PROGRAMS):
            progress(f"already installed in {target}")
            return found
    cmake = shutil.which("cmake") or _cmake_from_pypi(progress)
    with tempfile.TemporaryDirectory(prefix="ternbench-llamacpp-") as tmp:
        tmp = Path(tmp)
        progress(f"downloading {SDIST}=={PINNED} (sdist) from PyPI ...")
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
              f"{SDIST}=={PINNED}", "-d", str(tmp)], "pip download")
        archive = next(tmp.glob(f"{SDIST.replace('-', '_')}-{PINNED}.tar.gz"), None) or next(tmp.glob("*.tar.gz"))
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        src = next(tmp.glob("*/vendor/llama.cpp"), None)
        if src is None:
            raise EngineError(f"{archive.name}: no vendor/llama.cpp inside")
        build = tmp / "build"
        progress("configuring (cmake) ...")
        _run([cmake, "-S", str(src), "-B", str(build), *CMAKE_FLAGS], "cmake")
        progress(f"building {', '.join(PROGRAMS)} ...")
        _build(cmake, build, progress)
        install_binaries(build, PROGRAMS, target)
        record = {"engine": NAME, "source": f"{SDIST} {PINNED} sdist (PyPI), vendor/llama.cpp", "version": PINNED,
                  "llama_cpp": version_line(target / "bin" / "llama-bench"),   # its commit
                  "cmake_flags": list(CMAKE_FLAGS), "compiler": _compiler(build),
                  "built": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        (target / "install.json").write_text(json.dumps(record, indent=2) + "\n")
    progress(f"installed in {target / 'bin'}")
    return Installation(target / "bin", "installed by ternbench", record)


def version_line(bench) -> str:
    """llama-bench's `--version` line: the llama.cpp version and commit it was built from."""
    try:
        out = subprocess.run([str(bench), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = [x.strip() for x in (out.stdout + out.stderr).splitlines() if x.strip().startswith("version")]
    return lines[0] if lines else "unknown"


def _run(cmd: list[str], what: str, cwd=None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise EngineError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def run_into(out: Path, command, what: str, **kwargs) -> Path:
    """Runs command(TMP), a program writing the file TMP beside OUT, then moves TMP to OUT: a
    failed or killed run leaves no partial OUT for a later sweep to take as cached."""
    tmp = out.with_name(out.name + ".tmp")
    proc = subprocess.run(command(tmp), capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise EngineError(f"{what} failed (exit {proc.returncode}): {tail}")
    os.replace(tmp, out)
    return out


def install_binaries(build: Path, programs, target: Path) -> None:
    """The programs a cmake build produced (wherever under BUILD it put them) into TARGET/bin, which
    is made anew: a failed build leaves no mix of old and new programs."""
    binaries = [next((f for f in [build / "bin" / p, *build.rglob(p)] if f.is_file() and os.access(f, os.X_OK)),
                     None) for p in programs]
    if not all(binaries):
        raise EngineError(f"the build produced no {', '.join(p for p, b in zip(programs, binaries) if not b)}")
    try:
        if target.exists():
            shutil.rmtree(target)
        (target / "bin").mkdir(parents=True)
        for b in binaries:
            shutil.copy2(b, target / "bin" / b.name)
    except OSError as e:
        raise EngineError(f"cannot install into {target}: {e}") from None


def _build(cmake: str, build: Path, progress, targets=PROGRAMS) -> None:
    """cmake --build of TARGETS with its percentage passed on as progress."""
    cmd = [cmake, "--build", str(build), "-j", str(os.cpu_count() or 1), "--target", *targets]
    tail, last = [], None
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-20:]
            m = re.match(r"\[\s*(\d+)%\]", line)
            if m and m.group(1) != last:
                last = m.group(1)
                progress(f"building: {last}%")
    if proc.returncode != 0:
        raise EngineError("cmake --build failed:\n" + "\n".join(tail[-8:]))


def _cmake_from_pypi(progress) -> str:
    progress("no cmake on PATH: installing cmake from PyPI ...")
    _run([sys.executable, "-m", "pip", "install", "-q", "cmake"], "pip install cmake")
    found = shutil.which("cmake", path=str(Path(sys.executable).parent)) or shutil.which("cmake")
    if not found:
        raise EngineError("cmake was installed from PyPI but is not on PATH")
    return found


def _compiler(build: Path) -> str:
    try:
        cache = (build / "CMakeCache.txt").read_text()
    except OSError:
        return "unknown"
    m = re.search(r"^CMAKE_CXX_COMPILER:\w+=(.*)$", cache, re.M)
    return m.group(1).strip() if m else "unknown"
