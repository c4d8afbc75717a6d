"""GGUF files into ternbench's runtime (harness/models/gguf_file.py): the engines' linear types
repacked without loss, the head as stored, one clear line for every file it cannot run. The files
here are written by a small independent GGUF writer (below), so the parser is not checked
against itself; the engines' own files are tested in test_engines.py."""
import struct

import numpy as np
import pytest
from clirun import ternbench

import runtime
from harness.models.gguf_file import GgufError, GgufModel, _unpermute, load_gguf

SHAPE = dict(vocab=64, hidden=256, ffn=512, layers=2, heads=4, kv_heads=2)   # rows of 256: TQ blocks
KINDS = {"F32": 0, "F16": 1, "Q8_0": 8, "Q6_K": 14, "TQ1_0": 34, "TQ2_0": 35, "I2_S": 36}


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_gguf(path, arch: str, meta: dict, tensors: list[tuple[str, str, tuple, bytes]]) -> None:
    """GGUF v3: tensors as (name, type, row-major shape, raw bytes)."""
    kv = b""
    for key, value in meta.items():
        if isinstance(value, str):
            kv += _string(key) + struct.pack("<I", 8) + _string(value)
        elif isinstance(value, float):
            kv += _string(key) + struct.pack("<If", 6, value)
        else:
            kv += _string(key) + struct.pack("<II", 4, value)
    infos, data = b"", b""
    for name, kind, shape, raw in tensors:
        infos += _string(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in reversed(shape))
        infos += struct.pack("<IQ", KINDS[kind], len(data))
        data += raw + b"\0" * (-len(raw) % 32)
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta)) + kv + infos
    path.write_bytes(head + b"\0" * (-len(head) % 32) + data)


def i2_s(w: np.ndarray, scale: float) -> bytes:
    """bitnet.cpp's I2_S: codes w + 1; 128-weight blocks in 32 bytes, byte j holding elements j,
    j+32, j+64, j+96 from the high bits down; then the fp32 scale (and padding to 32 bytes)."""
    codes = (w.reshape(-1, 4, 32) + 1).astype(np.uint8)
    packed = (codes[:, 0] << 6) | (codes[:, 1] << 4) | (codes[:, 2] << 2) | codes[:, 3]
    return packed.tobytes() + struct.pack("<f", scale) + b"\0" * 28


def quant(values: np.ndarray, kind: str) -> bytes:
    import gguf

    return gguf.quants.quantize(values.astype(np.float32), getattr(gguf.GGMLQuantizationType, kind)).tobytes()


def model_file(tmp_path, linear="TQ2_0", head="F16", arch="bitnet", scale=0.5, seed=1, name="m.gguf"):
    """A tiny BitNet-shaped file: ternary linears in LINEAR, the embedding in HEAD. Returns its
    path and the ternary values of every linear."""
    rng = np.random.default_rng(seed)
    s = SHAPE
    q, kv = s["hidden"], s["kv_heads"] * s["hidden"] // s["heads"]
    dims = {"attn_q": (q, s["hidden"]), "attn_k": (kv, s["hidden"]), "attn_v": (kv, s["hidden"]),
            "attn_output": (s["hidden"], q), "ffn_gate": (s["ffn"], s["hidden"]), "ffn_up": (s["ffn"], s["hidden"]),
            "ffn_down": (s["hidden"], s["ffn"])}
    embd = rng.standard_normal((s["vocab"], s["hidden"])).astype(np.float32)
    tensors = [("token_embd.weight", head, (s["vocab"], s["hidden"]),
                embd.astype(np.float16).tobytes() if head == "F16" else quant(embd, head) if head != "F32"
                else embd.tobytes()),
               ("output_norm.weight", "F32", (s["hidden"],), np.ones(s["hidden"], np.float32).tobytes())]
    ternary = {}
    for layer in range(s["layers"]):
        for norm, size in (("attn_norm", s["hidden"]), ("ffn_norm", s["hidden"]), ("attn_sub_norm", q),
                           ("ffn_sub_norm", s["ffn"])):
            tensors.append((f"blk.{layer}.{norm}.weight", "F32", (size,), np.ones(size, np.float32).tobytes()))
        for base, shape in dims.items():
            w = rng.integers(-1, 2, size=shape).astype(np.int8)
            ternary[f"blk.{layer}.{base}.weight"] = w
            raw = i2_s(w, scale) if linear == "I2_S" else (w * np.float32(scale)).astype(
                np.float16 if linear == "F16" else np.float32).tobytes() if linear in ("F16", "F32") \
                else quant(w * np.float32(scale), linear)
            tensors.append((f"blk.{layer}.{base}.weight", linear, shape, raw))
    meta = {"general.architecture": arch, f"{arch}.embedding_length": s["hidden"], f"{arch}.block_count": s["layers"],
            f"{arch}.feed_forward_length": s["ffn"], f"{arch}.attention.head_count": s["heads"],
            f"{arch}.attention.head_count_kv": s["kv_heads"], f"{arch}.context_length": 256,
            f"{arch}.rope.freq_base": 10000.0, f"{arch}.attention.layer_norm_rms_epsilon": 1e-5}
    path = tmp_path / name
    write_gguf(path, arch, meta, tensors)
    return path, ternary


@pytest.mark.parametrize("linear, fmt", [("TQ2_0", "i2s"), ("TQ1_0", "tq1"), ("I2_S", "i2s"), ("F16", "f16"),
                                         ("F32", "f32")])
def test_each_engine_type_is_read_exactly(tmp_path, linear, fmt):
    path, ternary = model_file(tmp_path, linear=linear)
    g = GgufModel(path)
    assert g.shape.hidden == 256 and g.shape.tied_embeddings and g.shape.sub_norms and g.linear_type() == linear
    for name, w in ternary.items():
        got, scale, how = g.ternary(name)
        assert np.array_equal(got, w), name
        assert scale == 0.5 and linear in how
    notes = []
    model = load_gguf(path, max_ctx=32, notes=notes)
    assert model.weight_format == fmt and model.head_format == "f16"
    assert f"linears as {fmt} from 14 {linear}" in notes[0] and "the tied head (F16) as f16" in notes[0]


def test_the_same_file_gives_the_same_tokens_in_every_format_variant_and_thread_count(tmp_path):
    path, _ = model_file(tmp_path, linear="TQ2_0", head="Q8_0")
    runs = {}
    for fmt in ("i2s", "tq1"):
        model = load_gguf(path, fmt, max_ctx=40)
        assert model.head_format == "f32"     # Q8_0 dequantised: f32 holds it exactly
        for v in runtime.variants():
            if not v.supported:
                continue
            for threads in (1, 2):
                model.reset()
                with runtime.Context(threads, v.name) as ctx:
                    runs[(fmt, v.name, threads)] = model.generate(ctx, [1, 2, 3], 16)
    assert len(set(map(tuple, runs.values()))) == 1, runs


def test_a_float_master_file_is_ternarised_and_says_so(tmp_path):
    path, _ = model_file(tmp_path, linear="F32")
    g = GgufModel(path)
    raw = np.frombuffer(bytearray(g.raw(g.tensors["blk.0.attn_q.weight"])), np.float32).copy()
    raw[0] = 0.3     # no longer ternary x one scale
    data = bytearray(path.read_bytes())
    at = g.tensors["blk.0.attn_q.weight"].offset
    data[at:at + raw.nbytes] = raw.tobytes()
    path.write_bytes(bytes(data))
    _, _, how = GgufModel(path).ternary("blk.0.attn_q.weight")
    assert how == "F32 float master weights, ternarised with absmean"


def test_llama_rope_permutation_is_undone():
    heads, head_dim, cols = 2, 8, 3
    w = np.arange(heads * head_dim * cols).reshape(heads * head_dim, cols)
    # llama.cpp's convert_hf_to_gguf.py permute()
    permuted = w.reshape(heads, 2, head_dim // 2, cols).swapaxes(1, 2).reshape(w.shape)
    assert np.array_equal(_unpermute(permuted, heads), w)


def _corrupt(tmp_path, how):
    path, _ = model_file(tmp_path)
    data = bytearray(path.read_bytes())
    g = GgufModel(path)
    if how == "magic":
        data[:4] = b"GGML"
    elif how == "truncated":
        data = data[: g.tensors["blk.1.ffn_down.weight"].offset + 10]
    elif how == "header":
        data = data[:40]
    elif how == "type":
        # the type id of the last tensor's info: just before its offset field
        at = bytes(data).index(_string("blk.1.ffn_down.weight")) + len(_string("blk.1.ffn_down.weight")) + 4 + 16
        data[at:at + 4] = struct.pack("<I", 99)
    elif how == "scales":
        t = g.tensors["blk.0.ffn_up.weight"]
        data[t.offset + 64:t.offset + 66] = np.float16(0.25).tobytes()    # the first block's scale
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("how, words", [
    ("magic", "not a GGUF file"),
    ("truncated", "tensor blk.1.ffn_down.weight (TQ2_0) runs past the end of the file"),
    ("header", "truncated header"),
    ("type", "tensor blk.1.ffn_down.weight: type 99 is not one ternbench reads"),
    ("scales", "tensor blk.0.ffn_up.weight (TQ2_0): its blocks have 2 different scales"),
])
def test_a_bad_file_is_one_line_naming_the_tensor_and_type(tmp_path, how, words):
    path = _corrupt(tmp_path, how)
    with pytest.raises(GgufError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_gguf(path, max_ctx=8)
    proc = ternbench("generate", str(path), "--tokens", "1", "-n", "2", check=False)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_i2_s_code_3_and_a_missing_tensor(tmp_path):
    path, _ = model_file(tmp_path, linear="I2_S")
    g = GgufModel(path)
    data = bytearray(path.read_bytes())
    data[g.tensors["blk.0.attn_v.weight"].offset] = 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(GgufError, match=r"blk.0.attn_v.weight \(I2_S\): code 3"):
        load_gguf(path, max_ctx=8)
    other = tmp_path / "other"
    other.mkdir()
    path, _ = model_file(other, arch="qwen2")
    with pytest.raises(GgufError, match="architecture 'qwen2' is not one ternbench runs"):
        GgufModel(path)


@pytest.mark.slow
def test_gguf_files_in_bench_and_sweeps(tmp_path):
    path, _ = model_file(tmp_path, linear="TQ1_0")
    proc = ternbench("bench", "--model", str(path), "--format", "tq1", "--pp", "8", "--tg", "4", "--reps", "1",
                     "--threads", "1", "--json", check=False)
    assert proc.returncode == 0, proc.stderr
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(f"models: [{path}]\nformats: [i2s, tq1]\nthreads: [1]\nworkloads: {{generation: [4]}}\n"
                   "repetitions: 1\nprocesses: 1\nbaseline: null\nenergy: model\n")
    ternbench("run", str(cfg), "--out", str(tmp_path / "out"), "-q")
    import json

    recs = [json.loads(x) for x in (tmp_path / "out" / "points.jsonl").read_text().splitlines()]
    assert [r["status"] for r in recs] == ["ok", "ok"] and {r["model"] for r in recs} == {"m"}
