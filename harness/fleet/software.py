"""Which ternbench a process runs, so that a node running other code than the driver is refused
before it measures anything: a fleet's figures are comparable only if one program made them.

The git commit alone cannot say it (an installed copy has none; a dirty tree has the commit of
other code), so the identity is a digest of the code itself: the harness's and the runtime's
Python and templates, and the digest of the C sources the runtime was built from. Compiler and
flags may differ between machines; each node's fingerprint records its own."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import harness
import runtime
from harness.measure.fingerprint import PACKAGE_ROOT, ternbench_section

CODE_GLOBS = ("harness/**/*.py", "harness/report/templates/*", "runtime/*.py")


def code_digest(root: Path = Path(harness.ROOT)) -> str:
    h = hashlib.sha256()
    for pattern in CODE_GLOBS:
        for f in sorted(root.glob(pattern)):
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def runtime_sources() -> str:
    """The digest of the C sources in the runtime's build string (compiler and flags left out)."""
    build = runtime.build_info()
    m = re.search(r"sources (\w+)", build)
    return m.group(1) if m else build


def identity() -> dict:
    ternbench = ternbench_section(PACKAGE_ROOT, [])
    return {"version": ternbench["version"], "git_commit": ternbench["git_commit"],
            "git_dirty": ternbench["git_dirty"], "code": code_digest(), "runtime_sources": runtime_sources()}


def describe(ident: dict) -> str:
    commit = (ident.get("git_commit") or "")[:7]
    where = f", commit {commit}{' with local changes' if ident.get('git_dirty') else ''}" if commit else ""
    return (f"ternbench {ident.get('version')}{where}, code {ident.get('code')}, "
            f"runtime sources {ident.get('runtime_sources')}")


def mismatch(driver: dict, node: dict) -> str | None:
    """Why a node's code is not the driver's, naming both; None when it is the same."""
    if all(driver.get(k) == node.get(k) for k in ("version", "code", "runtime_sources")):
        return None
    return (f"this node runs {describe(node)}; the driver runs {describe(driver)}: install the driver's "
            "version on the node (the same checkout, then `make setup` or pip install -e .) and restart "
            "its Ray worker (ray stop; ray start ...)")
