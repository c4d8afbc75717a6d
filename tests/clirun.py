"""What the CLI tests share: `ternbench` run in a subprocess, as a user would, against the runtime
under test; a CPU id other than the running one."""
import os
import subprocess
import sys

import runtime


def ternbench(*args, check=True, timeout=300, env=None):
    env = {**os.environ, **(env or {})}
    root = os.path.dirname(os.path.dirname(runtime.__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    # from the runtime's own root: `-m` puts the working directory first on sys.path
    proc = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=root)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def another_cpu_id(now: str) -> str:
    """A CPU id (a Zen 3's or a Zen 4's, both sold as "AMD EPYC") that is not NOW: a test of a
    changed CPU must not name the one it runs on."""
    return next(c for c in ("AuthenticAMD family 25 model 1 stepping 1", "AuthenticAMD family 25 model 17 stepping 1")
                if c != now)
