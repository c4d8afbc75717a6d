"""`ternbench bench`: one model point from the command line."""
import json

import pytest

from clirun import ternbench

TINY = """\
name: tiny-test
description: a tiny model for tests
source: tests
hidden: 64
ffn: 96
layers: 2
heads: 4
kv_heads: 2
vocab: 200
activation: relu2
sub_norms: true
tied_embeddings: false
rope_theta: 10000.0
norm_eps: 1.0e-5
max_context: 128
"""

FIELDS = {"model", "format", "head_format", "variant", "threads", "n_prompt", "n_gen", "pp_tps", "tg_tps",
          "bytes_per_token", "bandwidth_fraction", "kv_cache"}


@pytest.fixture
def tiny_yaml(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(TINY)
    return p


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["i2s", "tq1", "f16"])
def test_bench_json_point(tiny_yaml, fmt):
    r = json.loads(ternbench("bench", "--model", str(tiny_yaml), "--format", fmt, "--threads", "1",
                             "--pp", "16", "--tg", "4", "--reps", "2", "--json").stdout)
    assert FIELDS <= set(r)
    assert r["model"] == "tiny-test" and r["format"] == fmt and r["n_prompt"] == 16 and r["n_gen"] == 4
    assert r["pp_tps"] > 0 and r["tg_tps"] > 0 and len(r["tg_samples_s"]) == 2
    assert r["bytes_per_token"] > 0 and r["bandwidth_fraction"] > 0


def test_bench_human_output(tiny_yaml):
    out = ternbench("bench", "--model", str(tiny_yaml), "--pp", "8", "--tg", "2", "--reps", "1", "-q").stdout
    assert "pp8:" in out and "tg2:" in out and "MB of weights per token" in out


@pytest.mark.parametrize("args,message", [
    (["--model", "no-such-model"], "no-such-model"),
    (["--model", "125M", "--threads", "0"], "--threads must be between 1 and 1024"),
    (["--model", "125M", "--pp", "0", "--tg", "0"], "must not both be 0"),
    (["--model", "125M", "--variant", "sse9"], "unknown variant 'sse9'"),
    (["--model", "100B", "--format", "f16"], "GB is available"),  # does not fit: names both sizes
])
def test_bench_bad_input_exits_2(args, message):
    proc = ternbench("bench", *args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
