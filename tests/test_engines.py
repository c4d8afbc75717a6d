"""The engines a sweep can measure: listing them with the reason when one cannot run, llama.cpp
installed by ternbench (the real build: `.ci/run` installs it and requires these tests to run)
or given as the user's own build, and bitnet.cpp given as a build directory."""
import json
import os
import subprocess

import pytest
from clirun import ternbench

from harness.engines import llamacpp

REQUIRE = os.environ.get("TERNBENCH_REQUIRE_ENGINES") == "1"   # .ci/run: no skipping


def fake_bin(d, programs=llamacpp.PROGRAMS):
    d.mkdir(parents=True, exist_ok=True)
    for p in programs:
        (d / p).write_text("#!/bin/sh\necho fake\n")
        (d / p).chmod(0o755)
    return d


def listing(tmp_path, *args, env=None):
    env = {"TERNBENCH_CACHE_DIR": str(tmp_path / "cache"), **(env or {})}
    return {s["name"]: s for s in json.loads(ternbench("engines", "--json", *args, env=env).stdout)}


def test_the_list_says_what_runs_and_how_to_get_the_rest(tmp_path):
    out = listing(tmp_path)
    assert out["ternbench"]["ready"] and "i2s" in out["ternbench"]["formats"]
    assert not out["llamacpp"]["ready"] and "ternbench engines install llamacpp" in out["llamacpp"]["detail"]
    assert not out["bitnetcpp"]["ready"] and "--bitnetcpp-bin" in out["bitnetcpp"]["detail"]
    assert out["bitnetcpp"]["formats"] == ["i2_s", "tl1", "tl2"]
    text = ternbench("engines", env={"TERNBENCH_CACHE_DIR": str(tmp_path / "cache")}).stdout
    assert "llamacpp   not ready: not installed" in text


def test_the_users_own_builds(tmp_path):
    mine = fake_bin(tmp_path / "llama" / "bin")
    theirs = fake_bin(tmp_path / "BitNet" / "build" / "bin")
    out = listing(tmp_path, "--llamacpp-bin", str(mine), env={"TERNBENCH_BITNETCPP_BIN": str(theirs)})
    assert out["llamacpp"]["ready"] and out["llamacpp"]["bin"] == str(mine)
    assert out["bitnetcpp"]["ready"] and "given by the user" in out["bitnetcpp"]["detail"]
    half = fake_bin(tmp_path / "half", ("llama-bench",))
    out = listing(tmp_path, "--llamacpp-bin", str(half))
    assert not out["llamacpp"]["ready"] and "no executable llama-quantize" in out["llamacpp"]["detail"]


def test_a_damaged_installation_says_how_to_rebuild(tmp_path):
    d = llamacpp.install_dir(tmp_path / "cache")
    fake_bin(d / "bin")
    (d / "install.json").write_text("{not json")
    found, why = llamacpp.find(tmp_path / "cache")
    assert found is None and "--force" in why
    (d / "install.json").write_text(json.dumps({"version": llamacpp.PINNED, "cmake_flags": ["-DGGML_NATIVE=ON"],
                                                "compiler": "/usr/bin/c++", "built": "today"}))
    found, why = llamacpp.find(tmp_path / "cache")
    assert found is not None and why == "" and llamacpp.PINNED in found.describe()


@pytest.mark.parametrize("args, words", [(["install", "bitnetcpp"], "give --bitnetcpp-bin"),
                                         (["install"], "install what?"),
                                         (["list", "llamacpp"], "goes with install")])
def test_bad_engine_commands(args, words):
    proc = ternbench("engines", *args, check=False)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_the_installed_llamacpp_runs():
    """The real build from the pinned sdist (`.ci/run` installs it first)."""
    from runtime.tuning import cache_dir

    found, why = llamacpp.find(cache_dir())
    if found is None:
        if REQUIRE:
            pytest.fail(f"llama.cpp is required here: {why}")
        pytest.skip(f"llama.cpp not installed ({why})")
    assert found.record["version"] == llamacpp.PINNED and "-DGGML_NATIVE=ON" in found.record["cmake_flags"]
    for program in llamacpp.PROGRAMS:
        proc = subprocess.run([str(found.program(program)), "--help"], capture_output=True, text=True, timeout=60)
        assert "usage" in (proc.stdout + proc.stderr).lower(), program
