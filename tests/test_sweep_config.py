"""Sweep configurations: every kind of bad file fails before any work, naming file, line and key;
good ones expand into points, with exclusions and skip reasons."""
import json
import re
import textwrap

import pytest

import runtime
from clirun import ternbench
from harness.sweep.plan import expand
from harness.sweep.config import ConfigError, load_config

TINY_MODEL = """\
name: tiny
description: a tiny test model
source: tests
hidden: 256
ffn: 512
layers: 2
heads: 4
kv_heads: 2
vocab: 1000
activation: relu2
sub_norms: true
tied_embeddings: true
rope_theta: 10000
norm_eps: 1.0e-5
max_context: 512
"""

GOOD = """\
models: [tiny.yaml]
formats: [i2s, f16]
threads: [1]
workloads:
  prompt: [16]
  generation: [8]
"""


def write(tmp_path, text, name="sweep.yaml"):
    (tmp_path / "tiny.yaml").write_text(TINY_MODEL)
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path, text, max_threads=2) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text), max_threads=max_threads)
    return str(e.value)


def test_good_config_loads_with_defaults(tmp_path):
    c = load_config(write(tmp_path, GOOD), max_threads=2)
    assert c.name == "sweep" and c.formats == ("i2s", "f16") and c.threads == (1,)
    assert c.prompt == (16,) and c.generation == (8,)
    assert (c.repetitions, c.warmups, c.processes, c.baseline) == (5, 1, 2, "f16")
    assert c.head_formats == ("auto",) and c.variants == ("auto",) and c.energy.backend == "auto"
    assert c.models[0].kind == "preset" and c.models[0].label == "tiny"


@pytest.mark.parametrize("text, line, key, words", [
    (GOOD + "repetitons: 3\n", 7, "repetitons", "did you mean 'repetitions'"),
    (GOOD + "repetitions: three\n", 7, "repetitions", "must be a whole number"),
    (GOOD + "repetitions: 1000000000000\n", 7, "repetitions", "must be between 1 and 10000"),
    (GOOD + "processes: 0\n", 7, "processes", "must be between 1 and 100"),
    (GOOD + "processes: 1000000\n", 7, "processes", "must be between 1 and 100"),
    (GOOD.replace("[1]", "[\"2..1\"]"), 3, "threads", "is an empty range"),
    (GOOD.replace("[1]", "[\"1..1000000000000\"]"), 3, "threads", "between 1 and 1024"),
    (GOOD.replace("[tiny.yaml]", "[tiny.yaml, 7Bx]"), 1, "models", "unknown model '7Bx'"),
    (GOOD.replace("[tiny.yaml]", "[nothere.yaml]"), 1, "models", "no such model preset file"),
    (GOOD.replace("[1]", "[0]"), 3, "threads", "between 1 and 1024"),
    (GOOD.replace("[1]", "[-2]"), 3, "threads", "between 1 and 1024, got -2"),
    (GOOD.replace("[1]", "1..lots"), 3, "threads", "not a number"),
    (GOOD.replace("[i2s, f16]", "[i2s, q4]"), 2, "formats", "unknown value 'q4'"),
    (GOOD.replace("[i2s, f16]", "[]"), 2, "formats", "is empty"),
    (GOOD.replace("[i2s, f16]", "[i2s]"), 2, "baseline", "is not among the formats (i2s)"),
    (GOOD.replace("prompt: [16]", "prompt: [0]"), 5, "workloads.prompt", "integers from 1 to 1048576"),
    (GOOD.replace("prompt: [16]", "promt: [16]"), 5, "workloads.promt", "unknown workload"),
    (GOOD + "time_budget: soon\n", 7, "time_budget", "duration"),
    (GOOD + "energy: rapl\n", 7, "energy", "unknown backend 'rapl'"),
    (GOOD + "exclude:\n  - {formt: i2s}\n", 8, "exclude.formt", "unknown point field"),
    (GOOD + "pin_threads: yes please\n", 7, "pin_threads", "true or false"),
    (GOOD + "processes: 4\nmax_processes: 3\n", 8, "max_processes", "fewer than processes (4)"),
    (GOOD + "formats: [i2s]\n", 7, None, "appears twice (first on line 2)"),
    (GOOD + "threads: [1\n", None, None, "invalid YAML"),
])
def test_bad_config_names_file_line_and_key(tmp_path, text, line, key, words):
    msg = error_of(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'sweep.yaml'}:"), msg
    if line:
        assert f"line {line}:" in msg, msg
    if key:
        assert f"key {key!r}" in msg, msg
    assert words in msg, msg


def test_missing_required_key_and_empty_and_non_mapping(tmp_path):
    assert "missing key 'workloads'" in error_of(tmp_path, "models: [tiny.yaml]\nformats: [i2s]\nthreads: 1\n")
    assert "the file is empty" in error_of(tmp_path, "")
    assert "expected a mapping" in error_of(tmp_path, "- just\n- a list\n")


def test_unreadable_config_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the sweep configuration"):
        load_config(tmp_path / "absent.yaml")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="binary.yaml: cannot read"):
        load_config(tmp_path / "binary.yaml")


def test_thread_ranges_expand_against_the_machine(tmp_path):
    c = load_config(write(tmp_path, GOOD.replace("[1]", "1..max")), max_threads=4)
    assert c.threads == (1, 2, 3, 4)
    c = load_config(write(tmp_path, GOOD.replace("[1]", "[2, max, 1]")), max_threads=8)
    assert c.threads == (1, 2, 8)


def test_expansion_exclusions_and_duplicate_heads(tmp_path):
    c = load_config(write(tmp_path, GOOD + "head_formats: [auto, int8, f16]\n"
                                           "exclude:\n  - {format: f16, workload: tg8}\n"
                                           "  - {model: nothing-matches}\n"), max_threads=1)
    plan = expand(c)
    keys = [p.key for p in plan.points]
    best = runtime.best_variant()
    # auto and int8 are the same head for i2s: one point, not two
    assert keys.count(f"tiny/i2s+int8/{best}/t1/pp16") == 1
    assert f"tiny/i2s+f16/{best}/t1/tg8" in keys
    assert not [k for k in keys if k.startswith("tiny/f16") and k.endswith("tg8")]
    assert f"tiny/f16+f16/{best}/t1/pp16" in keys
    assert plan.unused_exclusions == [10]
    assert len(keys) == len(set(keys))


def test_points_this_machine_cannot_run_are_skipped_with_reasons(tmp_path):
    missing = [v.name for v in runtime.variants() if not v.supported]
    text = GOOD.replace("[tiny.yaml]", "[tiny.yaml, 100B]").replace("[1]", "[1, 64]")
    if missing:
        text += f"variants: [auto, {missing[0]}]\n"
    plan = expand(load_config(write(tmp_path, text), max_threads=64))
    reasons = {s.point.key: s.reason for s in plan.skipped}
    assert any("64 threads but only" in r for r in reasons.values())
    f16_100b = [r for k, r in reasons.items() if k.startswith(f"100B/f16+f16/{runtime.best_variant()}/t1/")]
    if runtime.api.usable_cpus() < 64:
        assert f16_100b and all("GB of memory" in r for r in f16_100b)
    if missing:
        assert any(k.split("/")[2] == missing[0] and missing[0] in r for k, r in reasons.items())
    # nothing is both run and skipped
    assert not {p.key for p in plan.points} & set(reasons)


def test_context_longer_than_the_model_is_skipped(tmp_path):
    plan = expand(load_config(write(tmp_path, GOOD.replace("[16]", "[600]")), max_threads=1))
    assert any("exceed the model's context of 512" in s.reason for s in plan.skipped)


def test_shipped_configs_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "configs"
    shipped = sorted(root.glob("*.yaml"))
    assert {"default", "paper-bitnet-cpp", "ci-smoke", "vendor", "generation-avx2"} <= {p.stem for p in shipped}
    for path in shipped:
        c = load_config(path)
        assert c.name == path.stem
        plan = expand(c)
        assert plan.points, path.name


def test_cli_bad_config_exits_2_with_one_line(tmp_path):
    path = write(tmp_path, GOOD + "repetitons: 3\n")
    r = ternbench("run", str(path), "--dry-run", check=False)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "line 7:" in r.stderr and "'repetitons'" in r.stderr


def test_cli_dry_run_lists_points_skips_and_estimate(tmp_path):
    path = write(tmp_path, GOOD.replace("[tiny.yaml]", "[tiny.yaml, 100B]"))
    r = ternbench("run", str(path), "--dry-run")
    assert "tiny/i2s+int8" in r.stdout and "estimated duration" in r.stdout
    assert re.search(r"skip  (\d+ points \()?100B/", r.stdout), r.stdout
    d = json.loads(ternbench("run", str(path), "--dry-run", "--json").stdout)
    assert d["estimate_s"] > 0 and len(d["points"]) >= 4
    assert all(p["estimate_s"] > 0 for p in d["points"])
    assert any(s["model"] == "100B" and "memory" in s["reason"] for s in d["skipped"])
