"""A same-session A/B check, as `asv continuous` does: the runtime of another git revision (A,
the baseline) and this checkout's (B, the candidate) measured by one harness in one sweep, each
point's processes of both builds interleaved in shuffled rounds. Run-to-run drift on a shared
machine exceeds the differences worth catching; within one session, both builds meet the same
drift. The two results directories are then judged by the regression gate as any pair is.

The baseline's runtime is its revision's `runtime/` package, built with that revision's own
build script into a workspace beside symbolic links to this checkout's harness and configs, so
its workers import the old runtime and the current harness. A revision whose runtime API the
current harness cannot drive fails its points with the worker's error."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import harness


class ABError(Exception):
    """A revision that cannot be checked out or built: the message says which and why."""


def _git(*args: str, repo=None) -> bytes:
    """git in REPO (default: this checkout; `history bisect --repo` builds another clone's runtime)."""
    try:
        proc = subprocess.run(["git", "-C", str(repo or harness.ROOT), *args], capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        raise ABError(f"git {' '.join(args)}: {e}") from None
    if proc.returncode != 0:
        raise ABError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def resolve(rev: str, repo=None, what: str = "--ab") -> str:
    """The full commit of REV in this checkout (or REPO)."""
    if not rev or rev.startswith("-"):
        raise ABError(f"{rev!r} is not a git revision")
    try:
        return _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", repo=repo).decode().strip()
    except ABError:
        raise ABError(f"{what} {rev}: not a commit of the checkout at {repo or harness.ROOT} "
                      "(git rev-parse finds none)") from None


def build_workspace(commit: str, where: Path, log=lambda m: None, repo=None) -> Path:
    """WHERE/<commit>: that revision's runtime, built, beside links to this harness and configs."""
    space = Path(where) / commit[:12]
    built = space / "runtime" / ".built"
    if built.is_file():
        return space
    if space.exists():
        shutil.rmtree(space)
    src = space / "src"
    src.mkdir(parents=True)
    log(f"building the runtime of {commit[:12]} (its own runtime/ and build script) ...")
    with tarfile.open(fileobj=io.BytesIO(_git("archive", "--format=tar", commit, "runtime", repo=repo)), mode="r") as tar:
        tar.extractall(src, filter="data")
    script = src / "runtime" / "build_ffi.py"
    if not script.is_file():
        raise ABError(f"revision {commit[:12]} has no runtime/build_ffi.py")
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('build_ffi', {str(script)!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            f"m.make_builder(standalone=True).compile(tmpdir={str(space)!r}, verbose=False)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=src)
    if proc.returncode != 0:
        raise ABError(f"building the runtime of {commit[:12]} failed: {proc.stderr.strip().splitlines()[-1:]}")
    for f in (src / "runtime").glob("*.py"):
        shutil.copy2(f, space / "runtime" / f.name)
    for name in ("harness", "configs"):
        os.symlink(Path(harness.ROOT) / name, space / name)
    built.write_text(commit + "\n")
    return space


def build_info(workspace: Path) -> str:
    """The build string of the runtime a workspace's workers import."""
    proc = subprocess.run([sys.executable, "-c", "import runtime; print(runtime.build_info())"], capture_output=True,
                          text=True, cwd=workspace, timeout=60)
    if proc.returncode != 0:
        raise ABError(f"the runtime built in {workspace} does not import: {proc.stderr.strip().splitlines()[-1:]}")
    return proc.stdout.strip()


def run(config, plan, commit: str, out: Path, quiet: bool = False, log=lambda m: None,
        undecided=None) -> tuple[Path, Path]:
    """Builds COMMIT's runtime, sweeps CONFIG with both builds interleaved into OUT/baseline and
    OUT/candidate; returns the two results directories. undecided: the gate's rule for another
    round (up to the config's max_processes), as regression.undecided."""
    from harness.measure.fingerprint import fingerprint
    from harness.measure.point import tune
    from harness.sweep.results import ResultsDir
    from harness.sweep.runner import Arm, run_arms
    from runtime.tuning import cache_dir

    space = build_workspace(commit, cache_dir() / "ab", log)
    base_fp, cand_fp = fingerprint(), fingerprint()
    base_fp["runtime"] = {**base_fp["runtime"], "build": build_info(space), "revision": commit}
    base_fp["ternbench"] = {**base_fp["ternbench"], "ab_baseline_revision": commit}
    tune(plan.points, log)   # the candidate's kernels; the baseline's tune in its workers, outside the timing
    arms = [Arm(ResultsDir(Path(out) / "baseline"), base_fp, str(space)), Arm(ResultsDir(Path(out) / "candidate"), cand_fp)]
    outcome = run_arms(config, plan, arms, resume=False, quiet=quiet, undecided=undecided)
    if outcome.interrupted:
        raise KeyboardInterrupt
    return arms[0].results.path, arms[1].results.path
