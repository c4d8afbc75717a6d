"""Model presets: every shipped preset, the size arithmetic, bad preset files, and `ternbench models`."""
import json
import os
import textwrap
from pathlib import Path

import pytest

import runtime

from harness.models import presets, sizes
from harness.models.presets import ModelSpecError
from clirun import ternbench

ROOT = Path(__file__).resolve().parent.parent

# Advertised size of each preset, in billions of parameters: (low, high).
EXPECTED_BILLIONS = {
    "125M": (0.11, 0.15), "350M": (0.30, 0.40), "700M": (0.65, 0.80), "1B": (0.9, 1.1), "1.5B": (1.35, 1.65),
    "2B4T": (2.40, 2.42), "2.7B": (2.5, 2.9), "3.8B": (3.5, 4.1), "7B": (6, 8), "13B": (12, 14),
    "30B": (28, 32), "70B": (66, 74), "100B": (95, 105),
    "bitnet_b1_58-3B": (3.2, 3.4), "Llama3-8B-1.58": (7.9, 8.1),
    # Falcon3 model cards: 1.67B, 3.23B, 7.46B, 10.3B parameters (untied 131072-token vocabulary)
    "Falcon3-1B-1.58bit": (1.6, 1.7), "Falcon3-3B-1.58bit": (3.2, 3.3), "Falcon3-7B-1.58bit": (7.4, 7.5),
    "Falcon3-10B-1.58bit": (10.2, 10.4),
}

# ../shared/REFERENCE.md section 2, verbatim: name -> (hidden, ffn, layers, heads, kv heads, vocab)
REFERENCE_SHAPES = {
    "125M": (768, 3072, 11, 12, 12, 32002), "350M": (1024, 3072, 24, 16, 16, 32002),
    "700M": (1536, 4096, 24, 16, 16, 32002), "1B": (2048, 3584, 24, 32, 32, 32002),
    "1.5B": (1536, 9216, 28, 32, 32, 32002), "2.5B": (2560, 6912, 30, 20, 5, 128256),
    "2.7B": (3072, 7680, 24, 32, 32, 32002), "3.8B": (3840, 8192, 24, 32, 32, 32002),
    "7B": (4096, 12032, 32, 32, 32, 32002), "13B": (5120, 13824, 40, 40, 40, 32002),
    "30B": (6656, 16384, 60, 52, 52, 32002), "70B": (8192, 24576, 80, 64, 64, 32002),
    "100B": (8192, 45568, 72, 64, 64, 32002),
}

TINY = """\
name: tiny
aliases: [Tiny-Alias]
description: A tiny model for hand-checked arithmetic.
source: this test
hidden: 64
ffn: 96
layers: 2
heads: 4
kv_heads: 2
vocab: 10
activation: silu
sub_norms: true
tied_embeddings: false
rope_theta: 10000.0
norm_eps: 1e-5
max_context: 128
"""


def write(tmp_path, text, name="m.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def tiny_with(tmp_path, **changes):
    """TINY with some lines replaced (value None drops the key), written to a file."""
    lines = []
    for line in TINY.splitlines():
        key = line.split(":", 1)[0]
        if key in changes:
            if changes[key] is not None:
                lines.append(f"{key}: {changes[key]}")
        else:
            lines.append(line)
    return write(tmp_path, "\n".join(lines) + "\n")


def error_of(path) -> str:
    with pytest.raises(ModelSpecError) as info:
        presets.load_spec(path)
    return str(info.value)


# --- the shipped presets ----------------------------------------------------------------------

def test_every_preset_loads_and_names_are_unique():
    specs = presets.all_presets()
    names = [s.name for s in specs]
    assert set(names) == set(EXPECTED_BILLIONS)
    labels = [label.lower() for s in specs for label in (s.name, *s.aliases)]
    assert len(labels) == len(set(labels))
    for s in specs:
        assert s.path.stem == s.name, "a preset's file is named after it"
        assert s.description and s.source
        assert s.heads % s.kv_heads == 0 and s.head_dim > 0


def test_presets_sorted_by_parameter_count():
    counts = [sizes.param_count(s) for s in presets.all_presets()]
    assert counts == sorted(counts)


@pytest.mark.parametrize("name", sorted(EXPECTED_BILLIONS))
def test_parameter_count_near_advertised_size(name):
    low, high = EXPECTED_BILLIONS[name]
    assert low <= sizes.param_count(presets.find_model(name)) / 1e9 <= high


def test_reference_shapes_match():
    for name, (hidden, ffn, layers, heads, kv_heads, vocab) in REFERENCE_SHAPES.items():
        s = presets.find_model(name)
        assert (s.hidden, s.ffn, s.layers, s.heads, s.kv_heads, s.vocab) == (hidden, ffn, layers, heads, kv_heads,
                                                                            vocab), name


def test_2b4t_as_reference_describes_it():
    s = presets.find_model("2B4T")
    assert presets.find_model("2.5b") == s
    assert (s.head_dim, s.activation, s.sub_norms, s.tied_embeddings) == (128, "relu2", True, True)
    assert (s.rope_theta, s.norm_eps, s.max_context) == (500000.0, 1e-5, 4096)
    assert sizes.param_count(s) == 2_412_820_480
    # REFERENCE.md: the tied 128256 x 2560 embedding is 656 MB in FP16
    assert sizes.head_bytes(s, "f16") == 656_670_720


def test_find_model_by_alias_any_case_and_by_path(tmp_path):
    assert presets.find_model("BITNET_B1_58-LARGE").name == "700M"
    assert presets.find_model("falcon3-1b-instruct-1.58bit").name == "Falcon3-1B-1.58bit"
    path = write(tmp_path, TINY, "tiny.yaml")
    assert presets.find_model(str(path)).name == "tiny"


def test_find_model_unknown_name_suggests_close_ones():
    with pytest.raises(presets.UnknownModelError) as info:
        presets.find_model("2b4")
    assert "2B4T" in info.value.suggestions and "2B4T" in str(info.value)
    with pytest.raises(presets.UnknownModelError) as info:
        presets.find_model("falcon")
    assert len(info.value.suggestions) == 4


def test_find_model_refuses_checkpoint_directories(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelSpecError, match="checkpoint directories are handled by the model loader"):
        presets.find_model(str(tmp_path))
    with pytest.raises(ModelSpecError, match="no such model preset file"):
        presets.find_model(str(tmp_path / "missing.yaml"))


def test_duplicate_names_across_presets_are_refused(tmp_path):
    write(tmp_path, TINY, "tiny.yaml")
    write(tmp_path, TINY.replace("name: tiny", "name: other").replace("Tiny-Alias", "TINY"), "other.yaml")
    with pytest.raises(ModelSpecError, match=r"tiny.yaml: name 'tiny' is already used by .*other.yaml "
                                             r"\(names and aliases are case-insensitive\)"):
        presets.all_presets(tmp_path)


# --- arithmetic, checked by hand on a tiny spec -----------------------------------------------

def test_tiny_spec_sizes_by_hand(tmp_path):
    s = presets.load_spec(write(tmp_path, TINY))
    assert (s.head_dim, s.norm_eps) == (16, 1e-5)  # head_dim = 64 / 4
    assert sizes.linear_shapes(s) == [("q", 64, 64), ("k", 32, 64), ("v", 32, 64), ("o", 64, 64), ("gate", 96, 64),
                                      ("up", 96, 64), ("down", 64, 96)]
    # params: embedding + untied head 2 x 10 x 64 = 1280; per layer q 64x64 4096, k and v 32x64 4096,
    # o 64x64 4096, gate and up 96x64 12288, down 64x96 6144 = 30720, x 2 layers = 61440;
    # norms: per layer 2 x 64 + sub-norms 64 + 96 = 288, x 2 = 576, + final 64 = 640.
    assert sizes.param_count(s) == 1280 + 61440 + 640
    # i2s: every row pads to 256 columns = 64 bytes: (64+32+32+64+96+96+64) rows x 64 x 2 layers;
    # the 10 head rows pad to a whole group of 4 rows, 12: int8 head 12 x 64 + 12 x 4 = 816,
    # twice (untied); norms 640 x 4 bytes.
    assert sizes.weight_bytes(s, "i2s", "int8") == 448 * 64 * 2 + 2 * 816 + 2560
    # tq1: 64 and 96 columns both pad to 320 = 64 bytes too
    assert sizes.weight_bytes(s, "tq1", "int8") == 448 * 64 * 2 + 2 * 816 + 2560
    # f16: 64 columns = 128 bytes (384 rows), 96 columns = 192 bytes (down: 64 rows); f16 head 12 x 128, twice
    assert sizes.weight_bytes(s, "f16", "f16") == (384 * 128 + 64 * 192) * 2 + 2 * 1536 + 2560
    assert sizes.weight_bytes(s, "f32") == (384 * 256 + 64 * 384) * 2 + 2 * 1536 + 2560  # default head f16
    assert sizes.weight_bytes(s, "i2s") == sizes.weight_bytes(s, "i2s", "int8")
    # KV: 2 (K and V) x 2 layers x tokens x 32 x 2 bytes
    assert sizes.kv_cache_bytes(s, 100) == 2 * 2 * 100 * 32 * 2
    assert sizes.kv_cache_bytes(s, 100, "f32") == 2 * sizes.kv_cache_bytes(s, 100)


def test_memory_estimate_adds_up(tmp_path):
    s = presets.load_spec(write(tmp_path, TINY))
    m = sizes.memory_estimate(s, "i2s", tokens=100, batch=3, threads=2)
    assert m["weights"] == sizes.weight_bytes(s, "i2s", "int8")
    assert m["kv_cache"] == sizes.kv_cache_bytes(s, 100)
    per_token = 4 * 64 + 3 * 96 + 2 * 64 + 4 * 100
    # plus the context's activation buffers: 3 copies of max(batch, 32) tokens at the widest (96)
    assert m["scratch"] == 4 * (3 * per_token + 10 + 2 * 12 * 96) + 3 * 4 * 32 * 96
    assert m["loading"] == 0
    assert m["total"] == m["weights"] + m["kv_cache"] + m["scratch"]
    # a checkpoint being loaded also holds its embedding as float32 beside the file's copy
    assert sizes.memory_estimate(s, "i2s", tokens=100, loading=True)["loading"] == 2 * 4 * 10 * 64


def test_default_head_format():
    assert [sizes.default_head_format(f) for f in ("i2s", "tq1", "f16", "f32")] == ["int8", "int8", "f16", "f16"]


@pytest.mark.parametrize("fmt", ["i2s", "tq1", "f16", "f32"])
def test_linear_bytes_match_the_runtime(fmt):
    """The size formula is the runtime's: a packed Matrix of each shape holds exactly that many bytes."""
    np = pytest.importorskip("numpy")
    runtime = pytest.importorskip("runtime")
    for rows, cols in [(3, 1), (5, 255), (4, 256), (2, 321), (7, 640), (1, 6912)]:
        w = np.zeros((rows, cols), np.int8)
        m = runtime.Matrix.pack(fmt, w) if fmt in runtime.TERNARY_FORMATS \
            else runtime.Matrix.from_float(fmt, w.astype(np.float32))
        assert m.nbytes == sizes.linear_bytes(fmt, rows, cols), (fmt, rows, cols)


# --- bad preset files -------------------------------------------------------------------------

def test_unknown_key_names_file_key_line_and_allowed_keys(tmp_path):
    path = write(tmp_path, TINY.replace("ffn: 96", "fnn: 96"))
    msg = error_of(path)
    assert "m.yaml" in msg and "line 6:" in msg and "'fnn'" in msg
    assert "did you mean 'ffn'" in msg and "allowed keys: name, aliases" in msg


def test_wrong_type_names_file_key_line(tmp_path):
    msg = error_of(tiny_with(tmp_path, ffn="abc"))
    assert msg.endswith("m.yaml: line 6: key 'ffn' must be a positive integer, got 'abc'")
    for key, value, expected in [("layers", "0", "a positive integer"), ("heads", "true", "a positive integer"),
                                 ("sub_norms", "yes please", "true or false"), ("norm_eps", "-1e-5", "positive"),
                                 ("activation", "gelu", "relu2 or silu"), ("aliases", "2.5B", "a list"),
                                 ("name", "'a/b'", "safe as a file name"), ("rope_theta", ".inf", "positive")]:
        msg = error_of(tiny_with(tmp_path, **{key: value}))
        line = next(i for i, text in enumerate(TINY.splitlines(), 1) if text.startswith(key + ":"))
        assert f"m.yaml: line {line}: key '{key}'" in msg, msg
        assert expected in msg, msg


def test_missing_key(tmp_path):
    msg = error_of(tiny_with(tmp_path, vocab=None))
    assert "m.yaml: line 1: missing key 'vocab'" in msg and "required keys:" in msg


def test_heads_must_be_a_multiple_of_kv_heads(tmp_path):
    msg = error_of(tiny_with(tmp_path, kv_heads=3))
    assert "m.yaml: line 9: key 'kv_heads' (3) must divide heads (4)" in msg


def test_head_dim_required_when_heads_do_not_divide_hidden(tmp_path):
    msg = error_of(tiny_with(tmp_path, heads=6, kv_heads=6))
    assert "line 8: key 'heads' (6) does not divide hidden (64)" in msg
    spec = presets.load_spec(tiny_with(tmp_path, heads="6\nhead_dim: 16", kv_heads=6))
    assert (spec.head_dim, sizes.linear_shapes(spec)[0]) == (16, ("q", 96, 64))


def test_duplicate_key(tmp_path):
    msg = error_of(write(tmp_path, TINY + "ffn: 128\n"))
    assert "line 17: key 'ffn' appears twice (first on line 6)" in msg


def test_invalid_yaml_syntax_names_file_and_line(tmp_path):
    msg = error_of(write(tmp_path, TINY.replace("layers: 2", "layers: [2")))
    assert "m.yaml: line" in msg and "invalid YAML" in msg
    msg = error_of(write(tmp_path, "hidden: 64\n  ffn: 96\n"))
    assert "m.yaml: line 2: invalid YAML" in msg


def test_not_a_mapping_and_empty_file(tmp_path):
    assert "expected a mapping" in error_of(write(tmp_path, "- a\n- b\n"))
    assert "m.yaml: line 1: the file is empty" in error_of(write(tmp_path, "# nothing\n"))


def test_unreadable_file(tmp_path):
    assert "missing.yaml: cannot read the model preset: No such file" in error_of(tmp_path / "missing.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    assert "latin1.yaml: cannot read the model preset" in error_of(bad)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_file_without_read_permission(tmp_path):
    path = write(tmp_path, TINY)
    path.chmod(0)
    assert "m.yaml: cannot read the model preset: Permission denied" in error_of(path)


# --- the command line -------------------------------------------------------------------------



def test_cli_list_json():
    rows = json.loads(ternbench("models", "--json").stdout)
    assert [r["name"] for r in rows] == [s.name for s in presets.all_presets()]
    by_name = {r["name"]: r for r in rows}
    r = by_name["2B4T"]
    assert r["params"] == 2_412_820_480 and r["aliases"] == ["2.5B", "bitnet-b1.58-2B-4T"]
    assert set(r["weight_bytes"]) == {"i2s", "tq1", "tl1", "tl2", "f16"}
    assert r["head_format"] == {"i2s": "int8", "tq1": "int8", "tl1": "int8", "tl2": "int8", "f16": "f16"}
    assert r["weight_bytes"]["f16"] == sizes.weight_bytes(presets.find_model("2B4T"), "f16", "f16")


def test_cli_list_table_and_format_choice():
    out = ternbench("models", "--format", "i2s,f32").stdout
    assert "2B4T" in out and "2.41 B" in out and "i2s (int8 head)" in out and "f32 (f16 head)" in out
    assert "tq1" not in out.splitlines()[0]


def test_cli_one_model():
    out = ternbench("models", "2b4t").stdout
    assert out.startswith("2B4T: ")
    for text in ("2,412,820,480", "20 query, 5 key/value, head_dim 128", "relu2", "tied", "int8 head",
                 "KV cache per 1024 tokens", "source: microsoft/bitnet-b1.58-2B-4T's config.json", "configs/models/2B4T.yaml"):
        assert text in out, text


def test_cli_one_model_json(tmp_path):
    d = json.loads(ternbench("models", "Llama3-8B-1.58", "--json").stdout)
    assert d["name"] == "Llama3-8B-1.58" and d["kv_heads"] == 8 and d["tied_embeddings"] is False
    assert set(d["weight_bytes"]["i2s"]) == set(runtime.HEAD_FORMATS)
    assert d["kv_cache_bytes_per_1k_tokens"]["f16"] == 2 * 32 * 1024 * 8 * 128 * 2
    path = write(tmp_path, TINY, "tiny.yaml")
    assert json.loads(ternbench("models", str(path), "--json").stdout)["name"] == "tiny"


@pytest.mark.parametrize("args, expected", [
    (("models", "2b4"), "unknown model '2b4'; did you mean 2B4T"),
    (("models", "--format", "i2s,q4"), "unknown format 'q4'"),
])
def test_cli_bad_input_exits_2_without_traceback(args, expected):
    proc = ternbench(*args, check=False)
    assert proc.returncode == 2
    assert expected in proc.stderr and "Traceback" not in proc.stderr and proc.stdout == ""


def test_cli_bad_preset_file_exits_2(tmp_path):
    proc = ternbench("models", str(tiny_with(tmp_path, ffn="abc")), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "line 6: key 'ffn' must be a positive integer, got 'abc'" in proc.stderr


def test_cli_help_lists_the_keys():
    out = ternbench("models", "--help").stdout
    assert "configs/models" in out and "max_context" in out and "--format" in out
