"""Hostile input for every parser a user reaches, generated (hypothesis): sweep YAML, model presets,
claims files, command-line arguments, results directories (torn, reordered, duplicated, garbage
lines) and safetensors headers. The property everywhere: the documented outcome (a value, or
the parser's own error with a message), never another exception, never a memory blow-up (each
test runs under an address-space cap), and no finished result lost.

`make test` runs a bounded, derandomised set (profile "quick"); `.ci/run` runs many more
examples (HYPOTHESIS_PROFILE=ci)."""
import contextlib
import io
import json
import os
import resource
import struct
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import inputs, yaml_source
from harness.claims import ClaimsError, load_claims
from harness.gate.regression import CheckError
from harness.gate.regression import load as load_side
from harness.models.checkpoint import Checkpoint, CheckpointError
from harness.models.presets import ModelSpecError, load_spec
from harness.sweep.config import ConfigError, load_config
from harness.sweep.plan import expand
from harness.sweep.results import POINTS, Results, ResultsError

ROOT = Path(__file__).resolve().parent.parent
HEADROOM = 2 << 30   # address space a parser may add while a test runs

settings.register_profile("quick", max_examples=40, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("ci", max_examples=600, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))


@pytest.fixture(autouse=True)
def memory_cap():
    """A parser that tries to build something huge fails with MemoryError here (the test fails),
    rather than taking the machine down."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = psutil.Process().memory_info().vms + HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# --- building blocks --------------------------------------------------------------------------

HOSTILE_TEXT = ["", " ", "\x00", "\x1b[31m", "\u202e", "max", "-1", "0", "1..", "..", "2..1", "1..max",
                "1..1000000000000", "1e400", "nan", "inf", "9" * 5000, "a" * 300, "1,2,,3", "x", "1x", "0x0",
                "65536x65536", "{", "[", "*a", "&a", "!!python/object:os.system", "---", "...", ": :", "llamacpp",
                "ternbench", "f16", "tq2_0"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.sampled_from(HOSTILE_TEXT), st.text(max_size=30))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                      max_leaves=12)

SWEEP = {"models": ["125M"], "formats": ["i2s", "f16"], "threads": [1], "workloads": {"generation": [8]},
         "repetitions": 2, "processes": 1}
PRESET = yaml_source.load((ROOT / "configs/models/125M.yaml").read_text())
CLAIM = {"claims": [{"id": "x", "title": "t", "source": "s", "statement": "s", "metric": "speedup",
                     "range": [1.0, 2.0], "arch": "x86_64", "threads": "all", "models": ["125M"],
                     "workload": "tg", "formats": ["i2s"], "baseline": "f16"}]}


def mutated(base: dict):
    """The base document with some keys replaced by hostile values, some removed, some added."""
    keys = st.sampled_from(sorted(base) + ["unknown_key", "threads", "exclude", "energy", "engines", "baseline",
                                          "engine", "engine_formats", "baseline_engine"])
    return st.tuples(st.dictionaries(keys, values, max_size=4), st.sets(st.sampled_from(sorted(base)), max_size=2)) \
        .map(lambda t: {**{k: v for k, v in base.items() if k not in t[1]}, **t[0]})


def dump(doc) -> str:
    return json.dumps(doc)   # JSON is YAML: every generated document is written exactly


# --- parsers of text --------------------------------------------------------------------------

@given(st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(alphabet="0123456789.,maxX -", max_size=40)))
def test_thread_lists_and_shapes(text):
    for parse in (lambda: inputs.parse_threads(text, 2), lambda: inputs.parse_shapes(text),
                  lambda: inputs.parse_list(text)):
        try:
            out = parse()
        except inputs.InputError as e:
            assert str(e) and "\n" not in str(e)
        else:
            assert len(out) <= max(len(text), 1024)


@given(st.one_of(st.text(max_size=200), st.sampled_from(HOSTILE_TEXT), values.map(dump)))
def test_any_text_as_yaml(text):
    try:
        yaml_source.load(text)
    except yaml_source.YamlProblem as e:
        assert e.message


# --- files a user writes ----------------------------------------------------------------------

@given(st.one_of(mutated(SWEEP).map(dump), st.text(max_size=300)))
def test_sweep_configurations(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("sweep") / "s.yaml"
    path.write_text(text)
    try:
        config = load_config(path, max_threads=2)
    except ConfigError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)
        return
    plan = expand(config)   # a valid configuration expands without blowing up
    assert len(plan.points) + len(plan.skipped) <= 10_000


@given(mutated(PRESET).map(dump))
def test_model_presets(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("preset") / "p.yaml"
    path.write_text(text)
    try:
        load_spec(path)
    except ModelSpecError as e:
        assert "p.yaml" in str(e)


@given(st.one_of(st.builds(lambda c: {"claims": [c]}, mutated(CLAIM["claims"][0])).map(dump),
                 mutated(CLAIM).map(dump)))
def test_claims_files(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("claims") / "c.yaml"
    path.write_text(text)
    try:
        load_claims(path)
    except ClaimsError as e:
        assert "c.yaml" in str(e)


# --- command-line arguments ---------------------------------------------------------------------

COMMANDS = {
    "sysinfo": ["--no-bandwidth", "--threads"],
    "models": ["--formats"],
    "kernels": ["--threads", "--formats", "--shapes", "--n", "--budget", "--variants"],
    "bench": ["--model", "--threads", "--pp", "--tg", "--reps", "--seed", "--format", "--variant"],
    "check": ["--max-regression", "--alpha"],
    "run": ["--out", "--json"],
}
# what each command is given before the generated options: nothing runs a sweep or a kernel benchmark
FIXED = {"kernels": ["--list"], "run": [str(ROOT / "configs/ci-smoke.yaml"), "--dry-run"],
         "check": [str(ROOT / "tests"), str(ROOT / "tests")]}


def argv():
    def build(command, pairs):
        out = [command] + FIXED.get(command, [])
        for option, value in pairs:
            out += [option] if option in ("--no-bandwidth", "--json") else [option, value]
        return out

    return st.sampled_from(sorted(COMMANDS)).flatmap(lambda c: st.lists(
        st.tuples(st.sampled_from(COMMANDS[c]), st.sampled_from(HOSTILE_TEXT + ["1", "2", "125M", "i2s"])),
        max_size=4).map(lambda pairs: build(c, pairs)))


@pytest.mark.slow
@given(argv())
def test_command_lines(monkeypatch, args):
    """Exit 0, 1 or 2, and one line on stderr for a usage error; nothing is measured (a point
    that would run stops at the worker, and sysinfo's probe reads nothing: both are replaced
    here)."""
    from harness.cli import bench, main
    from harness.measure import probe

    monkeypatch.setattr(bench, "tune", lambda points, log: None)
    monkeypatch.setattr(probe, "thread_bandwidth", lambda t: probe.Probe({p: [1.0] for p in probe.runtime.READ_PATTERNS}))
    monkeypatch.setattr(bench.execute, "run", lambda *a, **k: {"status": "failed", "reason": "fuzz",
                                                                "log_tail": ""})
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main.main(args)
        except SystemExit as e:   # argparse: --help, or an argument it rejects itself
            status = e.code
    assert status in (0, 1, 2), (args, err.getvalue())
    assert "Traceback" not in err.getvalue()
    if status == 2:
        lines = [x for x in err.getvalue().splitlines() if x.strip() and not x.startswith(("usage:", " "))]
        assert len(lines) == 1, (args, err.getvalue())


# --- results directories ----------------------------------------------------------------------

def record(key: str, tps: float) -> dict:
    return {"key": key, "status": "ok", "samples_tokens_per_s": [tps, tps * 1.01], "model": "125M", "format": "i2s",
            "head_format": "int8", "variant": "scalar", "threads": 1, "workload": "tg", "tokens": 8, "test": "tg8"}


LINE = st.one_of(st.builds(lambda k, t: json.dumps(record(f"p{k}", t)), st.integers(0, 5),
                           st.floats(1, 1e4)),
                 st.sampled_from(["", "{", "not json", "[]", "null", '{"key": 1}', '{"status": "ok"}', "\x00"]))


@given(st.lists(LINE, max_size=12), st.booleans(), st.booleans())
def test_results_directories(tmp_path_factory, lines, torn, manifest):
    d = tmp_path_factory.mktemp("results")
    text = "\n".join(lines) + ("" if torn else "\n")
    (d / POINTS).write_text(text)
    if manifest:
        (d / "manifest.json").write_text(json.dumps({"config": {"models": {}, "seed": 0}, "machine": {}}))
    try:
        results = Results(d)
    except (ResultsError, KeyError, TypeError, AttributeError):
        pass   # documented: a bad line that is not the last is an error (check and report say so in one line)
    else:
        # no finished result lost: every complete, valid line's key is there, newest last
        complete = lines if not torn else lines[:-1]
        keys = {json.loads(x)["key"] for x in complete if x.startswith('{"key": "p')}
        assert keys <= {r["key"] for r in results.records}
    try:
        load_side(d)
    except CheckError as e:
        assert str(e) and "\n" not in str(e)


# --- safetensors headers ------------------------------------------------------------------------

CONFIG = {"model_type": "bitnet", "vocab_size": 16, "hidden_size": 8, "intermediate_size": 8,
          "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1}
TENSOR = st.fixed_dictionaries({"dtype": st.sampled_from(["F32", "F16", "BF16", "U8", "I64", "X9", 7]),
                                "shape": st.lists(st.integers(-2, 1 << 40), max_size=3),
                                "data_offsets": st.lists(st.integers(-5, 1 << 40), min_size=0, max_size=3)})


@given(st.one_of(st.dictionaries(st.sampled_from(["model.embed_tokens.weight", "model.norm.weight", "x",
                                                  "__metadata__"]), TENSOR, max_size=4).map(json.dumps),
                 st.text(max_size=60)),
       st.integers(-1, 1 << 62), st.binary(max_size=64))
def test_safetensors_headers(tmp_path_factory, header, length, body):
    d = tmp_path_factory.mktemp("ckpt")
    (d / "config.json").write_text(json.dumps(CONFIG))
    raw = header.encode()
    declared = len(raw) if length < 0 else length
    (d / "model.safetensors").write_bytes(struct.pack("<Q", declared) + raw + body)
    try:
        Checkpoint(d)
    except CheckpointError as e:
        assert str(e) and "\n" not in str(e)
