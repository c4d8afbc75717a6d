"""`ternbench lossless` on a small synthetic model: the ternary kernels must match the
float reference of the same computation token for token."""
import json

import runtime

from test_bench_cmd import TINY
from clirun import ternbench


def test_lossless_small_model_is_exact(tmp_path):
    model = tmp_path / "tiny.yaml"
    model.write_text(TINY)
    out = json.loads(ternbench("lossless", "--model", str(model), "--prompts", "20", "--tokens", "16",
                               "--prompt-len", "8", "--json").stdout)
    assert out["prompts"] == 20 and out["tokens"] == 16
    assert {r["format"] for r in out["results"]} == set(runtime.TERNARY_FORMATS) >= {"tl1", "tl2"}
    for r in out["results"]:
        assert r["prompts"] == 20 and r["tokens"] == 20 * 16
        assert r["exact_rate"] == 1.0, r


def test_lossless_human_output_and_bad_input(tmp_path):
    model = tmp_path / "tiny.yaml"
    model.write_text(TINY)
    out = ternbench("lossless", "--model", str(model), "--prompts", "2", "--tokens", "4", "-q").stdout
    assert "token-for-token identical" in out
    bad = ternbench("lossless", "--model", str(model), "--formats", "f16", check=False)
    assert bad.returncode == 2 and "unknown ternary format 'f16'" in bad.stderr
    bad = ternbench("lossless", "--model", str(model), "--prompts", "0", check=False)
    assert bad.returncode == 2 and "--prompts must be between 1 and" in bad.stderr
