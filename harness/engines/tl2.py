"""bitnet.cpp's TL2 files, written by bitnet.cpp's own converter (utils/convert-hf-to-gguf-bitnet.py
--outtype tl2): its llama-quantize cannot write TL2, and the converter lays each matrix out in the
tiles of the kernels a build was generated with (include/kernel_config.ini), so the file belongs
to one build.

The converter reads a Hugging Face checkpoint directory, so ternbench writes one from the model's
F16 GGUF (the same tensors every other engine gets): config.json naming BitnetForCausalLM,
model.safetensors, and the dummy vocabulary as a SentencePiece tokenizer.model. The converter
ternarises each linear with absmean (scale = mean |W|) and keeps that scale, so a linear of
ternary values t times s is written as t * s * N / nonzeros: its absmean is s again, up to float32
rounding (the converter's own arithmetic), which `scale_error` measures.

What the converter needs from a bitnet.cpp source (KEPT) is kept with an installation, in the
source's own layout, so the installed build converts with the very kernel configuration it was
compiled with."""
from __future__ import annotations

import configparser
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

from .llamacpp import EngineError, Installation, run_into

WRITER_VERSION = 1            # the checkpoint written for the converter: part of a TL2 file's cache key
CONVERTER = "utils/convert-hf-to-gguf-bitnet.py"
GGUF_PY = "3rdparty/llama.cpp/gguf-py"       # the fork's gguf package: the one that knows TL2 (type 39)
KERNEL_CONFIG = "include/kernel_config.ini"  # written by codegen_tl2.py; the converter reads it from its cwd
KEPT = (CONVERTER, "utils/convert.py", GGUF_PY, KERNEL_CONFIG)
NEEDS = ("torch", "sentencepiece")     # the converter's imports beyond ternbench's own dependencies
NEEDS_FIX = "pip install -e '.[tl2]' in ternbench's checkout (CPU torch and sentencepiece)"
# the Hugging Face names bitnet.cpp's converter maps (its gguf-py tensor_mapping, `bitnet`)
HF_LINEARS = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
              "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
HF_NORMS = {"attn": "input_layernorm", "ffn": "post_attention_layernorm", "attn_sub": "self_attn.inner_attn_ln",
            "ffn_sub": "mlp.ffn_layernorm"}


def hf_name(gguf_name: str) -> str:
    """The checkpoint's name of a GGUF tensor of ternbench's `bitnet` files."""
    from harness.models.gguf_file import LINEARS, NORMS

    fixed = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    if gguf_name in fixed:
        return fixed[gguf_name]
    _, layer, base, _ = gguf_name.split(".")
    by_gguf = {v: HF_LINEARS[k] for k, v in LINEARS.items()} | {v: HF_NORMS[k] for k, v in NORMS.items()}
    return f"model.layers.{layer}.{by_gguf[base]}.weight"


def keep_converter(root: Path, into: Path) -> None:
    """Copies what the converter needs from the source tree ROOT (after codegen_tl2.py ran) into
    INTO, in the same layout."""
    for rel in KEPT:
        src, dst = root / rel, into / rel
        if not src.exists():
            raise EngineError(f"{root}: no {rel}: not a bitnet.cpp source, or codegen_tl2.py did not run")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)


def has_converter(root: Path) -> bool:
    return all((root / rel).exists() for rel in KEPT)


def kernel_shapes(root: Path) -> list[tuple[int, int]]:
    """The (M, K) matrix shapes the build's TL2 kernels take, from its kernel_config.ini."""
    config = configparser.ConfigParser()
    config.read(root / KERNEL_CONFIG)
    return [(int(config.get(s, "m")), int(config.get(s, "k"))) for s in config.sections()]


def linear_shapes(spec) -> list[tuple[int, int]]:
    """Every distinct (out, in) shape of the model's linears, as bitnet.cpp's TL2 kernels name them (M, K)."""
    from .gguf_layout import tensors

    return sorted({shape for _, kind, _, shape in tensors(spec) if kind == "linear"})


def unfit(spec, shapes: list[tuple[int, int]], kernels_for: str, fix: str) -> str:
    """Why bitnet.cpp cannot run SPEC in TL2 with kernels for SHAPES (generated for the model
    KERNELS_FOR; FIX says what would), or ""."""
    missing = [s for s in linear_shapes(spec) if tuple(s) not in {tuple(k) for k in shapes}]
    if missing:
        return (f"no TL2 kernels for {spec.name}'s {', '.join(f'{m}x{k}' for m, k in missing)} matrices: this "
                f"build's TL2 kernels were generated for {kernels_for} "
                f"({', '.join(f'{m}x{k}' for m, k in shapes)}); {fix}")
    if not spec.tied_embeddings:
        return (f"{spec.name} has an output head of its own: bitnet.cpp's `bitnet` architecture reads the "
                "embedding as its head, and its TL2 converter would tile the head as a linear")
    if spec.head_dim * spec.heads != spec.hidden:
        return (f"{spec.name}'s heads of {spec.head_dim} do not make up its hidden size {spec.hidden}: "
                "bitnet.cpp's converter writes no head size, so its llama.cpp assumes hidden / heads")
    return ""


# --- the checkpoint directory the converter reads ------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (strings, nested messages)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def sentencepiece_model(pieces: list[bytes], types: list[int]) -> bytes:
    """A SentencePiece ModelProto holding PIECES (score 0) of TYPES: what `tokenizer.model` is.
    Written by hand (three fields of its protobuf) so ternbench needs no protobuf package; only
    the converter's sentencepiece reads it."""
    def piece(text: bytes, kind: int) -> bytes:
        return _field(1, text) + _varint(2 << 3 | 5) + struct.pack("<f", 0.0) + _varint(3 << 3) + _varint(kind)

    normalizer = _field(1, b"identity")
    return b"".join(_field(1, piece(p, t)) for p, t in zip(pieces, types)) + _field(3, normalizer)


def _converter_values(w: np.ndarray) -> np.ndarray:
    """A linear of ternary values times one scale as the float32 the converter's absmean turns
    back into the same: the nonzeros at scale * count / nonzeros, so that mean |W| = scale."""
    scale = float(np.max(np.abs(w.astype(np.float32))))
    t = np.sign(w).astype(np.float32)
    nonzero = int(np.count_nonzero(t))
    if nonzero == 0:
        return t
    return t * np.float32(scale * t.size / nonzero)


def _write_safetensors(path: Path, items) -> None:
    """ITEMS: (name, shape, numpy dtype, produce) in order; each array is produced and written one
    at a time (a 700M model in float32 is 2.8 GB), in the safetensors layout: an 8-byte header
    length, the JSON header, the raw little-endian data."""
    codes = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}
    header, at = {}, 0
    for name, shape, dtype, _ in items:
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        header[name] = {"dtype": codes[np.dtype(dtype)], "shape": list(shape), "data_offsets": [at, at + size]}
        at += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for name, shape, dtype, produce in items:
            a = np.ascontiguousarray(produce(), dtype=dtype)
            assert a.shape == tuple(shape), name
            f.write(a.tobytes())


def checkpoint_bytes(spec) -> int:
    """The size of the checkpoint `write_checkpoint` writes: float32 linears and norms, the float16
    embedding."""
    from .gguf_layout import tensors

    return sum(int(np.prod(shape)) * (2 if kind == "embedding" else 4) for _, kind, _, shape in tensors(spec))


def write_checkpoint(spec, f16: Path, into: Path) -> Path:
    """The Hugging Face checkpoint directory bitnet.cpp's converter reads, written into INTO from
    F16, the model's F16 GGUF (ternbench's file of the same weights every engine gets)."""
    from harness.models.gguf_file import GgufFile

    from .gguf_layout import dummy_vocabulary, tensors

    into.mkdir(parents=True, exist_ok=True)
    g = GgufFile(f16)
    config = {"architectures": ["BitnetForCausalLM"], "model_type": "bitnet", "hidden_size": spec.hidden,
              "intermediate_size": spec.ffn, "num_hidden_layers": spec.layers, "num_attention_heads": spec.heads,
              "num_key_value_heads": spec.kv_heads, "vocab_size": spec.vocab, "rms_norm_eps": spec.norm_eps,
              "rope_theta": spec.rope_theta, "max_position_embeddings": spec.max_context,
              "hidden_act": spec.activation, "tie_word_embeddings": spec.tied_embeddings,
              "unk_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}
    (into / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (into / "tokenizer.model").write_bytes(sentencepiece_model(*dummy_vocabulary(spec.vocab)))

    def item(name, kind):
        t = g.tensors[name]
        raw = g.raw(t).view(np.float32 if t.type == "F32" else np.float16).reshape(t.shape)
        if kind == "linear":
            return hf_name(name), t.shape, np.float32, lambda: _converter_values(raw)
        # norms float32; the embedding float16, which the converter keeps with --quant-embd
        return hf_name(name), t.shape, raw.dtype, lambda: raw

    _write_safetensors(into / "model.safetensors", [item(name, kind) for name, kind, _, _ in tensors(spec)])
    return into


# --- running the converter -----------------------------------------------------------------------

def converter_python() -> str:
    """The Python that runs the converter (ternbench's own), or EngineError naming what it lacks."""
    missing = [m for m in NEEDS if subprocess.run([sys.executable, "-c", f"import {m}"],
                                                  capture_output=True).returncode != 0]
    if missing:
        raise EngineError(f"bitnet.cpp's TL2 converter needs {', '.join(missing)}, which ternbench's Python "
                          f"lacks: {NEEDS_FIX}")
    return sys.executable


def convert(root: Path, checkpoint: Path, out: Path) -> Path:
    """Runs the converter kept at ROOT on CHECKPOINT: a TL2 GGUF at OUT (atomically), the
    embedding (the tied head) in F16 as bitnet.cpp's I2_S files have it."""
    python = converter_python()
    env = {**os.environ, "PYTHONPATH": str(root / GGUF_PY)}
    return run_into(out, lambda tmp: [python, str(root / CONVERTER), str(checkpoint), "--outtype", "tl2",
                                      "--quant-embd", "--outfile", str(tmp)],
                    "bitnet.cpp's TL2 converter", cwd=root, env=env)


def scales(file) -> dict[str, float]:
    """Each TL2 matrix's scale: the float32 in the 32 bytes after its codes (ggml's TL2 layout)."""
    from harness.models.gguf_file import GgufFile

    g = GgufFile(file)
    return {name: float(g.raw(t)[-32:-28].view(np.float32)[0]) for name, t in g.tensors.items() if t.type == "TL2"}


def scale_error(tl2_file, f16_file) -> float:
    """The largest relative difference between a TL2 file's per-matrix scales and the F16 file's
    (ternary times one scale): the converter's float32 absmean against ternbench's scale."""
    from harness.models.gguf_file import GgufFile

    f16 = GgufFile(f16_file)
    worst = 0.0
    for name, theirs in scales(tl2_file).items():
        ours = float(np.max(np.abs(f16.raw(f16.tensors[name]).view(np.float16).astype(np.float32))))
        worst = max(worst, abs(theirs / ours - 1))
    return worst


def installed_root(inst: Installation) -> Path | None:
    """Where the installation's converter is: kept beside ternbench's build (bin/../converter),
    or a user's checkout holding the build (BitNet/build/bin: the checkout two levels up)."""
    for root in (inst.bin.parent / "converter", inst.bin.parent.parent):
        if has_converter(root):
            return root
    return None
