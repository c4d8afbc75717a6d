"""Kernel tuning: measured on this CPU, cached per CPU identity and runtime, never trusted
when the cache is corrupt or foreign, and applied to every context that asks for it."""
import json
import warnings

import pytest

import runtime
from runtime import Context, cpu, tuning
from clirun import ternbench


def run_cli(*args, env=None, expect=0):
    proc = ternbench(*args, check=False, env=env)
    assert proc.returncode == expect, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture
def quick(monkeypatch, tmp_path):
    """A private cache directory and a small working set, so a measurement takes a second."""
    monkeypatch.setenv("TERNBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tuning, "SHAPE", (256, 2560))
    monkeypatch.setattr(tuning, "LLC_MULTIPLE", 1)
    monkeypatch.setattr(tuning, "ROUNDS", 2)
    return tmp_path


def simd():
    best = runtime.best_variant()
    if best == "scalar":
        pytest.skip("no SIMD variant runs here: nothing to tune")
    return best


def test_off_leaves_the_defaults(quick):
    with Context(1, simd(), tuning="off") as ctx:
        assert ctx.tuning.source == "defaults"
        assert ctx.tuning.settings == {f: ctx.gemv_tuning(f) for f in tuning.TUNED_FORMATS}
    assert not list(quick.rglob("*.json"))


def test_scalar_is_not_tuned(quick):
    with Context(1, "scalar", tuning="auto") as ctx:
        assert ctx.tuning.source == "defaults" and "scalar" in ctx.tuning.detail


@pytest.mark.slow
def test_auto_measures_once_caches_and_applies(quick, capsys):
    variant = simd()
    with Context(2, variant, tuning="auto") as ctx:
        first = ctx.tuning
        assert first.source == "measured"
        assert "tuning the" in capsys.readouterr().err  # says it is measuring, and where it caches
        for fmt, (pf, claim) in first.settings.items():
            assert ctx.gemv_tuning(fmt) == (pf, claim)
            assert pf in tuning.PREFETCH_CANDIDATES and claim in tuning.CLAIM_CANDIDATES
            # the choice is the fastest candidate measured
            best = max(first.measured[fmt], key=lambda c: c["gbps"])
            assert (best["prefetch"], best["claim"]) == (pf, claim)
    files = list(quick.rglob("*.json"))
    assert len(files) == 1 and files[0].name == f"{cpu.identity_key(cpu.identity())}.json"
    data = json.loads(files[0].read_text())
    (build,) = data["builds"].values()
    assert data["cpu"] == cpu.identity() and f"{variant}/2" in build["entries"]
    for how in ("auto", "cache"):
        with Context(2, variant, tuning=how) as again:
            assert again.tuning.source == "cache" and again.tuning.settings == first.settings
    # another thread count is another entry
    with Context(1, variant, tuning="cache") as other:
        assert other.tuning.source == "defaults"


def test_environment_variable_chooses_the_mode(quick, monkeypatch):
    monkeypatch.setenv("TERNBENCH_TUNING", "cache")
    with Context(1, simd()) as ctx:
        assert ctx.tuning.source == "defaults" and "no cached tuning" in ctx.tuning.detail
    monkeypatch.setenv("TERNBENCH_TUNING", "sometimes")
    with pytest.raises(ValueError, match="TERNBENCH_TUNING='sometimes': expected one of auto, cache, off"):
        Context(1)


def _write(path, **data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if data else "{ not json")


@pytest.mark.parametrize("case, warning", [
    ("corrupt", "unreadable"),
    ("schema", "schema"),
    ("foreign", "written for another CPU"),
    ("malformed", "malformed entries"),
])
def test_a_corrupt_or_foreign_cache_is_ignored_with_a_warning(quick, case, warning):
    variant = simd()
    ident = cpu.identity()
    path = tuning.cache_file(ident)
    rid = tuning._runtime_id()

    def build(entries):
        return {tuning._runtime_key(rid): {"runtime": rid, "entries": entries}}

    good = {"schema": tuning.SCHEMA, "cpu": ident,
            "builds": build({f"{variant}/1": {"formats": {"i2s": {"prefetch": 1024, "claim": 0}}}})}
    if case == "corrupt":
        _write(path)
    elif case == "schema":  # a newer ternbench's file (an older schema is stale, measured again)
        _write(path, **{**good, "schema": 99})
    elif case == "foreign":
        _write(path, **{**good, "cpu": {**ident, "model": "999"}})
    else:  # a prefetch distance the runtime would refuse
        _write(path, **{**good, "builds": build({f"{variant}/1": {"formats": {"i2s": {"prefetch": 100, "claim": 0}}}})})
    with pytest.warns(RuntimeWarning, match=f"ignoring the kernel tuning cache .*{warning}"):
        ctx = Context(1, variant, tuning="cache")
    assert ctx.tuning.source == "defaults" and ctx.gemv_tuning("i2s") != (100, 0)
    ctx.close()


@pytest.mark.slow
def test_another_runtime_build_is_stale_not_trusted_and_kept(quick):
    variant = simd()
    ident = cpu.identity()
    other = {"version": "0.0.0", "build": "x"}
    _write(tuning.cache_file(ident), schema=tuning.SCHEMA, cpu=ident,
           builds={tuning._runtime_key(other): {"runtime": other, "entries": {
               f"{variant}/1": {"formats": {"i2s": {"prefetch": 1024, "claim": 0}}}}}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stale is expected, not warned about
        with Context(1, variant, tuning="cache") as ctx:
            assert ctx.tuning.source == "defaults"
        with Context(1, variant, tuning="auto") as ctx:
            assert ctx.tuning.source == "measured"
    # the other build's tuning is still there, for an A/B run switching back to it
    builds = json.loads(tuning.cache_file(ident).read_text())["builds"]
    assert set(builds) == {tuning._runtime_key(other), tuning._runtime_key(tuning._runtime_id())}


def test_an_older_schema_is_measured_again_without_a_warning(quick):
    ident = cpu.identity()
    _write(tuning.cache_file(ident), schema=1, cpu=ident, runtime=tuning._runtime_id(), entries={})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Context(1, simd(), tuning="cache") as ctx:
            assert ctx.tuning.source == "defaults"


def test_a_valid_cache_entry_is_applied_as_written(quick):
    variant = simd()
    ident = cpu.identity()
    rid = tuning._runtime_id()
    _write(tuning.cache_file(ident), schema=tuning.SCHEMA, cpu=ident, builds={tuning._runtime_key(rid): {
        "runtime": rid, "entries": {f"{variant}/1": {"formats": {"i2s": {"prefetch": 1024, "claim": 4096},
                                                                 "f16": {"prefetch": 0, "claim": 0}}}}}})
    with Context(1, variant, tuning="cache") as ctx:
        assert ctx.tuning.source == "cache"
        assert ctx.gemv_tuning("i2s") == (1024, 4096) and ctx.gemv_tuning("f16") == (0, 0)


@pytest.mark.slow
def test_tune_command_measures_then_shows_the_cache(tmp_path):
    env = {"TERNBENCH_CACHE_DIR": str(tmp_path), "TERNBENCH_TUNING": "auto"}
    if runtime.best_variant() == "scalar":
        pytest.skip("no SIMD variant runs here")
    out = run_cli("tune", "--threads", "1", "--json", env=env)
    data = json.loads(out.stdout)
    (result,) = data["results"]
    assert result["source"] == "measured" and result["threads"] == 1
    assert set(result["formats"]) == set(tuning.TUNED_FORMATS)
    # one thread: the claim size does not matter, only the prefetch distances are measured
    assert all(len(result["measured"][f]) == len(tuning.PREFETCH_CANDIDATES) for f in tuning.TUNED_FORMATS)
    text = run_cli("tune", "--threads", "1", env=env).stdout
    assert "from the cache" in text and "prefetch" in text and data["cache_file"] in text
    assert "measured now" in run_cli("tune", "--threads", "1", "--force", "-q", env=env).stdout


def test_tune_command_refuses_what_it_cannot_tune(tmp_path):
    env = {"TERNBENCH_CACHE_DIR": str(tmp_path)}
    bad = run_cli("tune", "--variants", "scalar", env=env, expect=2)
    assert "scalar reference has nothing to tune" in bad.stderr
    bad = run_cli("tune", "--threads", "0", env=env, expect=2)
    assert "must be between 1 and 1024, got 0" in bad.stderr
    bad = run_cli("kernels", "--list", env={**env, "TERNBENCH_TUNING": "maybe"}, expect=2)
    assert "TERNBENCH_TUNING='maybe'" in bad.stderr and "Traceback" not in bad.stderr
