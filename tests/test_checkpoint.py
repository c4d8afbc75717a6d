"""Hugging Face checkpoints (config.json + safetensors) into the runtime: tiny checkpoints
written here with numpy, loaded, and run against the numpy reference (tests/reference_model.py);
the packing and scale conventions; every corrupt-file error; the memory refusal; and
`ternbench generate`. No torch needed (tests/test_transformers_reference.py uses it)."""
import json
import re
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import runtime
import psutil

from harness.models import checkpoint, sizes, ternary
from harness.models.hf_config import read_config
from harness.models.checkpoint import CheckpointError, load_checkpoint
from reference_model import ReferenceModel, random_weights
from runtime import Context, Model
from runtime.model import HEAD_FORMATS
from test_model import RTOL, SHAPES
from clirun import ternbench

PROMPT = [3, 17, 42, 7, 99, 1, 64]
STEPS = 10
LINEAR_NAMES = checkpoint.LINEARS
ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- writing checkpoints

class BF16:
    """A float32 array to be stored as bfloat16 (which numpy cannot hold)."""

    def __init__(self, a):
        bits = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
        # round to nearest even on the 16 bits dropped
        self.bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        self.value = (self.bits.astype(np.uint32) << 16).view(np.float32)


def save(path, tensors):
    """safetensors.numpy.save_file, or a writer of the same format when bf16 is involved."""
    if not any(isinstance(a, BF16) for a in tensors.values()):
        save_file({k: np.ascontiguousarray(a) for k, a in tensors.items()}, str(path))
        return
    names = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.uint8): "U8",
             np.dtype(np.int32): "I32"}
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        raw, dtype, shape = (a.bits.tobytes(), "BF16", a.bits.shape) if isinstance(a, BF16) else \
            (np.ascontiguousarray(a).tobytes(), names[a.dtype], a.shape)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def hf_config(shape, model_type, linear_class=None, rope_nested=False):
    cfg = {"architectures": ["BitNetForCausalLM" if model_type == "bitnet" else "LlamaForCausalLM"],
           "model_type": model_type, "vocab_size": shape.vocab, "hidden_size": shape.hidden,
           "intermediate_size": shape.ffn, "num_hidden_layers": shape.layers,
           "num_attention_heads": shape.heads, "num_key_value_heads": shape.kv_heads,
           "hidden_act": shape.activation, "rms_norm_eps": shape.norm_eps,
           "tie_word_embeddings": shape.tied_embeddings, "max_position_embeddings": 64}
    if shape.head_dim != shape.hidden // shape.heads:
        cfg["head_dim"] = shape.head_dim
    if rope_nested:   # transformers 5 writes rope_parameters; 2B-4T's config has rope_theta
        cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": shape.rope_theta}
    else:
        cfg["rope_theta"] = shape.rope_theta
    if linear_class:
        cfg["quantization_config"] = {"quant_method": "bitnet", "linear_class": linear_class,
                                      "quantization_mode": "offline"}
    return cfg


def pack_by_the_book(t):
    """The documented 2B-4T layout, element by element: bits 2i..2i+1 of packed row r hold
    unpacked row i*(out/4)+r, stored as w+1."""
    rows = t.shape[0] // 4
    packed = np.zeros((rows, t.shape[1]), np.uint8)
    for i in range(4):
        for r in range(rows):
            packed[r] |= ((t[i * rows + r].astype(np.int16) + 1).astype(np.uint8) << (2 * i))
    return packed


def master_weights(t, scale, rng):
    """Float weights whose absmean ternarisation is unambiguously `t`, with mean |W| near
    `scale`: non-zeros at 0.75-1.25 of a common size, zeros as noise under a fifth of it
    (with a third of zeros, |W| / mean|W| lands in 1.07-1.8 or under 0.3)."""
    mag = np.where(t != 0, t * rng.uniform(0.75, 1.25, t.shape), rng.uniform(-0.2, 0.2, t.shape))
    return (mag * scale * 1.4).astype(np.float32)


def stored(a, dtype):
    """(what to write, the float32 values the loader will see)."""
    if dtype == "bf16":
        b = BF16(a)
        return b, b.value
    if dtype == "f16":
        h = a.astype(np.float16)
        return h, h.astype(np.float32)
    return a.astype(np.float32), a.astype(np.float32)


def make_checkpoint(path, shape, *, model_type="bitnet", linears="packed", linear_class="bitlinear",
                    float_dtype="f32", scale_dtype="bf16", shards=1, rope_nested=False, seed=7):
    """Writes a checkpoint of `shape`; returns the weights the reference model should see."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ref = random_weights(shape, seed)
    tensors = {}
    for l, L in enumerate(ref["layers"]):
        for which, base in LINEAR_NAMES.items():
            t, scale = L[which]
            name = f"model.layers.{l}.{base}"
            if linears == "packed":
                tensors[name + ".weight"] = pack_by_the_book(t)
                # bitlinear divides by weight_scale, autobitlinear multiplies; the scales of
                # random_weights are powers of two, so 1 / scale is exact
                ws = 1.0 / scale if linear_class == "bitlinear" else scale
                tensors[name + ".weight_scale"], _ = stored(np.array([ws], np.float32), scale_dtype)
            else:
                w, seen = stored(master_weights(t, scale, rng), float_dtype)
                tensors[name + ".weight"] = w
                L[which] = (t, float(np.float32(np.abs(seen).mean(dtype=np.float64))))
        for which, base in checkpoint.NORMS.items():
            if shape.sub_norms or not which.endswith("_sub"):
                tensors[f"model.layers.{l}.{base}.weight"], L[which] = stored(L[which], float_dtype)
    tensors[checkpoint.FINAL_NORM], ref["final"] = stored(ref["final"], float_dtype)
    tensors[checkpoint.EMBEDDING], ref["embedding"] = stored(ref["embedding"], float_dtype)
    if not shape.tied_embeddings:
        tensors[checkpoint.OUTPUT], ref["output"] = stored(ref["output"], float_dtype)
    (path / "config.json").write_text(json.dumps(hf_config(shape, model_type, linear_class, rope_nested)))
    write_shards(path, tensors, shards)
    return ref


def write_shards(path, tensors, shards):
    if shards == 1:
        save(path / "model.safetensors", tensors)
        return
    names = list(tensors)
    weight_map = {}
    for i in range(shards):
        file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = names[i::shards]
        save(path / file, {n: tensors[n] for n in part})
        weight_map.update({n: file for n in part})
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


# ---------------------------------------------------------------- running both

def run_reference(shape, weights, fmt, head_format="f16"):
    ref = ReferenceModel(shape, weights, fmt, head_format)
    tok, logits = ref.forward(PROMPT)
    out = [(tok, logits)]
    for _ in range(STEPS - 1):
        out.append(ref.forward([out[-1][0]]))
    return [t for t, _ in out], [lg for _, lg in out]


def run_model(model, ctx):
    tok, logits = model.forward(ctx, PROMPT, logits=True)
    out = [(tok, logits)]
    for _ in range(STEPS - 1):
        out.append(model.forward(ctx, [out[-1][0]], logits=True))
    return [t for t, _ in out], [lg for _, lg in out]


def assert_matches(model, shape, ref_weights, fmt, label, head_format="f16"):
    want_tokens, want_logits = run_reference(shape, ref_weights, fmt, head_format)
    assert len(set(want_tokens)) >= 2, "the reference output is degenerate; pick another seed"
    # one thread: tests/test_model.py checks thread counts and variants against each other
    got_tokens, got_logits = run_model(model, Context(1))
    assert got_tokens == want_tokens, label
    for step, (g, w) in enumerate(zip(got_logits, want_logits)):
        err = np.abs(g - w).max() / np.abs(w).max()
        assert err < RTOL[fmt], f"{label} step {step}: relative logits error {err:.2e}"






# checkpoint kinds: (shape, make_checkpoint options)
TIED_GQA = replace(SHAPES["bitnet-gqa"], tied_embeddings=True)
CASES = {
    # as microsoft/bitnet-b1.58-2B-4T: packed uint8, bf16 weight_scale divided (BitLinear),
    # bf16 norms and embedding, tied head, grouped-query attention
    "2b4t-packed-bitlinear": (TIED_GQA, dict(float_dtype="bf16")),
    # AutoBitLinear offline: the same packing, the scale multiplied
    "packed-autobitlinear": (SHAPES["bitnet-gqa"], dict(linear_class="autobitlinear", scale_dtype="f32")),
    # as ...-2B-4T-bf16: bf16 master weights ternarised with absmean, transformers-5 rope_parameters
    "bitnet-bf16-master": (SHAPES["bitnet-gqa"], dict(linears="float", float_dtype="bf16", linear_class=None,
                                                      rope_nested=True)),
    # LLaMA-style 1.58-bit: SiLU, no sub-norms, f16 master weights, sharded in three files
    "llama-f16-sharded": (SHAPES["llama-mha"], dict(model_type="llama", linears="float", float_dtype="f16",
                                                    shards=3)),
    # LLaMA-style, packed, float32 everything else, head_dim given explicitly
    "llama-packed": (replace(SHAPES["llama-mha"], heads=4, kv_heads=2, head_dim=24),
                     dict(model_type="llama", scale_dtype="f32", seed=3)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_checkpoint_runs_like_the_reference(case, tmp_path):
    shape, opts = CASES[case]
    ref = make_checkpoint(tmp_path, shape, **opts)
    got_shape, _ = read_config(tmp_path)
    assert got_shape == shape
    for fmt in ("i2s", "tq1", "f16"):
        model = load_checkpoint(tmp_path, fmt, max_ctx=32)
        assert_matches(model, shape, ref, fmt, f"{case} {fmt}")


@pytest.mark.parametrize("head", HEAD_FORMATS)
def test_head_formats_and_default_context(head, tmp_path):
    shape = SHAPES["bitnet-gqa"]
    ref = make_checkpoint(tmp_path, shape)
    model = load_checkpoint(tmp_path, "i2s", head_format=head)
    assert model.max_ctx == 64   # the config's max_position_embeddings (capped at 4096)
    assert_matches(model, shape, ref, "i2s", f"{head} head", head_format=head)


# ---------------------------------------------------------------- conventions

def test_packing_round_trip_and_transformers_docstring_example():
    rng = np.random.default_rng(0)
    t = rng.integers(-1, 2, size=(24, 7), dtype=np.int8)
    packed = ternary.pack_ternary(t)
    assert packed.dtype == np.uint8 and packed.shape == (6, 7)
    np.testing.assert_array_equal(packed, pack_by_the_book(t))
    np.testing.assert_array_equal(ternary.unpack_ternary(packed), t)
    # the worked example in transformers' unpack_weights docstring
    example = np.array([[0b10100001, 0b00011000], [0b10010000, 0b00001010]], np.uint8)
    want = np.array([[0, -1], [-1, 1], [-1, 1], [-1, 1], [1, 0], [0, -1], [1, -1], [1, -1]], np.int8)
    np.testing.assert_array_equal(ternary.unpack_ternary(example), want)


def test_weight_scale_divides_for_bitlinear_and_multiplies_for_autobitlinear():
    assert ternary.scale_for(0.25, "bitlinear") == 4.0
    assert ternary.scale_for(0.25, "autobitlinear") == 0.25


def test_linear_class_is_read_from_the_config(tmp_path):
    """The same packed file, two configs: the loaded scales differ by the square."""
    shape = SHAPES["bitnet-gqa"]
    make_checkpoint(tmp_path, shape, linear_class="bitlinear", scale_dtype="f32")
    spec = checkpoint.Checkpoint(tmp_path).linears[0]
    ws = float(checkpoint.Checkpoint(tmp_path).store.read(spec.scale_name)[0])
    assert checkpoint.Checkpoint(tmp_path).ternary(spec)[1] == pytest.approx(1 / ws)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["quantization_config"]["linear_class"] = "autobitlinear"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert checkpoint.Checkpoint(tmp_path).ternary(spec)[1] == pytest.approx(ws)
    del cfg["quantization_config"]   # transformers' default is bitlinear
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert checkpoint.Checkpoint(tmp_path).info.linear_class == "bitlinear"


def test_absmean_ternarisation_rounds_half_to_even_and_clamps():
    # mean |W| = 1: W * s is W itself; 0.5 -> 0, 1.5 -> 2 -> 1, -2.5 -> -2 -> -1
    w, scale = ternary.absmean_ternarise(np.array([[0.5, -0.25, 1.5, -2.5, 0.25, 1.0]], np.float32))
    np.testing.assert_array_equal(w, [[0, 0, 1, -1, 0, 1]])
    assert scale == 1.0
    w, scale = ternary.absmean_ternarise(np.zeros((2, 3), np.float32))   # mean clamped at 1e-5
    assert not w.any() and scale == pytest.approx(1e-5)


def test_memory_estimate_matches_the_runtime():
    shape = SHAPES["bitnet-gqa"]
    for fmt in ("i2s", "tq1", "f16"):
        for head in HEAD_FORMATS:
            model = Model(shape, fmt, head, max_ctx=16)
            assert sizes.memory_estimate(shape, fmt, head, 16)["weights"] == model.weight_bytes, (fmt, head)
    # K and V x 2 layers x 100 tokens x 2 KV heads x 24 dims, in f16 (the default) or f32
    assert sizes.memory_estimate(shape, "i2s", "f16", 100)["kv_cache"] == 2 * 2 * 100 * 2 * 24 * 2
    assert sizes.memory_estimate(shape, "i2s", "f16", 100, kv="f32")["kv_cache"] == 2 * 2 * 100 * 2 * 24 * 4


def test_memory_refusal_names_both_numbers(tmp_path, monkeypatch):
    make_checkpoint(tmp_path, SHAPES["bitnet-gqa"])

    class Little:
        available = 300_000

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Little())
    with pytest.raises(CheckpointError, match=r"needs about [\d.]+ MB .* only 0\.30 MB is available"):
        load_checkpoint(tmp_path, "i2s", max_ctx=64)


# ---------------------------------------------------------------- errors

@pytest.fixture
def good(tmp_path):
    make_checkpoint(tmp_path, SHAPES["bitnet-gqa"], scale_dtype="f32")
    return tmp_path


def rewrite(path, edit):
    """Loads model.safetensors, lets `edit` change the dict, writes it back."""
    from safetensors.numpy import load_file

    tensors = load_file(str(path / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(path / "model.safetensors"))


def expect_error(path, pattern, **kw):
    with pytest.raises(CheckpointError, match=pattern):
        load_checkpoint(path, "i2s", max_ctx=16, **kw)


def test_truncated_file(good):
    f = good / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    expect_error(good, r"model\.safetensors: not a readable safetensors file \(truncated or corrupt\?\)")


def test_garbage_file(good):
    (good / "model.safetensors").write_bytes(b"\x00" * 5)
    expect_error(good, r"model\.safetensors: not a readable safetensors file")


def test_wrong_shape(good):
    rewrite(good, lambda t: t.update({"model.layers.1.mlp.up_proj.weight": np.zeros((160, 90), np.float32)}))
    # the file with its directory: a user with several checkpoints knows which one
    expect_error(good, "^" + re.escape(str(good / "model.safetensors")) +
                 r": model\.layers\.1\.mlp\.up_proj\.weight: expected uint8 \[40, 96\] "
                       r"\(packed\) or a float \[160, 96\], found float32 \[160, 90\]$")


def test_wrong_dtype(good):
    rewrite(good, lambda t: t.update({"model.layers.0.self_attn.k_proj.weight": np.zeros((48, 96), np.int32)}))
    expect_error(good, r"model\.layers\.0\.self_attn\.k_proj\.weight: expected uint8 \[12, 96\] \(packed\) "
                       r"or a float \[48, 96\], found int32 \[48, 96\]")


def test_wrong_norm_and_scale(good):
    rewrite(good, lambda t: t.update({"model.norm.weight": np.ones(95, np.float32)}))
    expect_error(good, r"model\.norm\.weight: expected a float \[96\], found float32 \[95\]")
    rewrite(good, lambda t: t.update({"model.norm.weight": np.ones(96, np.float32),
                                      "model.layers.0.mlp.up_proj.weight_scale": np.ones(2, np.float32)}))
    expect_error(good, r"up_proj\.weight_scale: expected a one-element float, found float32 \[2\]")


def test_missing_tensors_are_listed(good):
    rewrite(good, lambda t: [t.pop(n) for n in ("model.layers.1.mlp.down_proj.weight", "model.norm.weight",
                                                 "model.layers.0.self_attn.q_proj.weight_scale")])
    expect_error(good, r"3 tensor\(s\) missing: model\.layers\.0\.self_attn\.q_proj\.weight_scale, "
                       r"model\.layers\.1\.mlp\.down_proj\.weight, model\.norm\.weight$")


def test_untied_head_needs_lm_head(good):
    rewrite(good, lambda t: t.pop("lm_head.weight"))
    expect_error(good, r"missing: lm_head\.weight")


def test_code_3_is_not_ternary(good):
    def corrupt(t):
        t["model.layers.0.mlp.gate_proj.weight"][5, 9] = 0b11000000   # code 3 in the top bits
    rewrite(good, corrupt)
    # packed row 5, bits 6-7: unpacked row 3 * 40 + 5
    expect_error(good, r"gate_proj\.weight: not ternary \(code 192 for row 125, column 9\)")


def test_float_weight_scale_with_non_ternary_values(good):
    rewrite(good, lambda t: t.update({"model.layers.0.mlp.gate_proj.weight": np.full((160, 96), 0.3, np.float32)}))
    expect_error(good, r"gate_proj\.weight: not ternary \(value 0\.3")


def test_nan_master_weight(tmp_path):
    make_checkpoint(tmp_path, SHAPES["bitnet-gqa"], linears="float", linear_class=None)

    def corrupt(t):
        t["model.layers.1.self_attn.o_proj.weight"][2, 3] = np.nan
    rewrite(tmp_path, corrupt)
    expect_error(tmp_path, r"o_proj\.weight: nan at row 2, column 3")


@pytest.mark.parametrize("edit,pattern", [
    (lambda p: (p / "config.json").unlink(), r"config\.json: not found"),
    (lambda p: (p / "config.json").write_text("{\"hidden_size\": 96,"), r"config\.json: not valid JSON"),
    (lambda p: (p / "config.json").write_text("[1, 2]"), r"config\.json: expected a JSON object"),
    (lambda p: (p / "model.safetensors").unlink(), r"no \*\.safetensors files"),
    (lambda p: (p / "model.safetensors.index.json").write_text('{"weight_map": {"x": "model-2.safetensors"}}'),
     r"index\.json: names shard files that are missing: model-2\.safetensors"),
])
def test_bad_directory(good, edit, pattern):
    edit(good)
    expect_error(good, pattern)


@pytest.mark.parametrize("change,pattern", [
    ({"model_type": "gpt2"}, r"model_type 'gpt2' is not supported"),
    ({"hidden_act": "gelu"}, r"hidden_act 'gelu' is not supported"),
    ({"num_hidden_layers": "2"}, r"num_hidden_layers must be a positive integer, got '2'"),
    ({"vocab_size": None}, r"missing 'vocab_size'"),
    ({"num_key_value_heads": 3}, r"not a multiple of num_key_value_heads 3"),
    ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, r"RoPE scaling 'llama3' is not supported"),
    ({"attention_bias": True}, r"attention_bias is set"),
    ({"quantization_config": {"quant_method": "bitnet", "linear_class": "fancy"}}, r"linear_class 'fancy'"),
    ({"quantization_config": {"quant_method": "gptq"}}, r"quant_method 'gptq' is not supported"),
])
def test_bad_config(good, change, pattern):
    cfg = json.loads((good / "config.json").read_text())
    cfg.update(change)
    if change.get("vocab_size", 0) is None:
        del cfg["vocab_size"]
    (good / "config.json").write_text(json.dumps(cfg))
    expect_error(good, pattern)


def test_not_a_directory(tmp_path):
    expect_error(tmp_path / "nowhere", r"nowhere: not a directory")


def test_bad_formats(good):
    expect_error(good, r"head format must be one of .*f16.*; got 'f64'", head_format="f64")
    with pytest.raises(CheckpointError, match="weight format must be one of i2s, tq1, tl1, tl2, f16"):
        load_checkpoint(good, "q4_0")


# ---------------------------------------------------------------- ternbench generate



@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A packed checkpoint, the greedy tokens the reference makes of PROMPT, and a
    word-level tokenizer whose token i is the word w<i>."""
    path = tmp_path_factory.mktemp("tiny")
    shape = SHAPES["bitnet-gqa"]
    ref = make_checkpoint(path, shape)
    # generate's default head is the checkpoint's own precision: f32 for this f32 embedding
    tokens, logits = run_reference(shape, ref, "i2s", head_format="f32")
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(shape.vocab)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    with_tok = tmp_path_factory.mktemp("with_tokenizer")
    for f in path.iterdir():
        (with_tok / f.name).write_bytes(f.read_bytes())
    tok.save(str(with_tok / "tokenizer.json"))
    return path, with_tok, tokens, logits


def test_generate_json(tiny):
    path, _, want, logits = tiny
    out = json.loads(ternbench("generate", str(path), "--tokens", ",".join(map(str, PROMPT)), "-n", str(STEPS),
                               "--threads", "2", "--json").stdout)
    assert out["tokens"] == want
    assert out["prompt_tokens"] == PROMPT and out["threads"] == 2
    assert out["format"] == "i2s" and out["head_format"] == "f32"
    # each step's largest logits, so the tokens can be checked against another implementation
    assert len(out["top_logits"]) == STEPS and all(len(s) == 5 for s in out["top_logits"])
    for step, token, ref in zip(out["top_logits"], want, logits):
        assert step[0][0] == token and [s[1] for s in step] == sorted((s[1] for s in step), reverse=True)
        assert step[0][1] == pytest.approx(float(ref[token]), abs=2e-2 * float(np.abs(ref).max()))
    assert out["prefill"]["tokens"] == len(PROMPT) and out["prefill"]["tokens_per_s"] > 0
    assert out["generation"]["tokens"] == STEPS - 1 and out["generation"]["tokens_per_s"] > 0
    assert out["variant"] in runtime.KNOWN_VARIANTS


def test_generate_table_with_other_formats(tiny):
    path, _, want, _ = tiny
    out = ternbench("generate", str(path), "--tokens", ",".join(map(str, PROMPT)), "-n", "3",
                    "--format", "tq1", "--variant", "scalar", "--threads", "1").stdout
    assert f"generated (3 tokens): {' '.join(map(str, want[:3]))}" in out
    assert "prefill: 7 tokens" in out and "generation: 2 tokens" in out and "tokens/s" in out


def test_generate_from_a_prompt(tiny):
    _, with_tok, want, _ = tiny
    out = json.loads(ternbench("generate", str(with_tok), "--prompt", " ".join(f"w{i}" for i in PROMPT),
                               "-n", str(STEPS), "--json").stdout)
    assert out["prompt_tokens"] == PROMPT and out["tokens"] == want
    assert out["text"] == " ".join(f"w{i}" for i in want)


@pytest.mark.parametrize("args,message", [
    (["--prompt", "w1 w2"], "tokenizer.json not found: --prompt needs the checkpoint's tokenizer"),
    (["--tokens", "1,x"], "--tokens: 'x' is not a token id"),
    (["--tokens", "1,300"], "token 300 is outside the vocabulary of 300"),
    (["--tokens", "1", "-n", "0"], "-n must be between 1 and"),
    (["--tokens", "1", "--threads", "0"], "--threads must be between 1 and 1024"),
    (["--tokens", "1", "--variant", "sse9"], "unknown kernel variant 'sse9'"),
])
def test_generate_bad_input_exits_2(tiny, args, message):
    proc = ternbench("generate", str(tiny[0]), *args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_generate_bad_checkpoint_exits_2(tmp_path):
    proc = ternbench("generate", str(tmp_path), "--tokens", "1", check=False)
    assert proc.returncode == 2
    assert "config.json: not found" in proc.stderr and "Traceback" not in proc.stderr
