"""The same model in every engine: a synthetic GGUF of a preset's shape, in llama.cpp's `bitnet`
architecture (sub-norms before o_proj and down_proj, the embedding as the output head when tied),
written with the `gguf` package, then quantised by the engine's own `llama-quantize`.

The linear weights are ternary values (seeded) times one scale per tensor, stored as F16, so a
ternary quantisation (TQ1_0, TQ2_0) holds them exactly. Files are cached by shape, seed and
writer version (the F16 file) and by the engine build too (the quantised ones)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np

from .llamacpp import EngineError, Installation

WRITER_VERSION = 1
# llama-quantize's names for the formats ternbench asks for (llama.cpp's, and bitnet.cpp's fork's)
QUANT_TYPES = {"tq1_0": "TQ1_0", "tq2_0": "TQ2_0", "f16": "F16", "i2_s": "I2_S", "tl1": "TL1", "tl2": "TL2"}


class GgufError(Exception):
    """A GGUF file that cannot be read as a model: the message names the file and what is wrong."""


def _reader(path):
    import gguf

    try:
        return gguf.GGUFReader(str(path))
    except (OSError, ValueError, KeyError, IndexError, TypeError, OverflowError, MemoryError) as e:
        raise GgufError(f"{path}: not a readable GGUF file ({type(e).__name__}: {e})") from None


def head_type(path) -> str:
    """The type of the tensor the output head reads: output.weight, or the embedding when tied."""
    tensors = {t.name: t for t in _reader(path).tensors}
    t = tensors.get("output.weight", tensors.get("token_embd.weight"))
    return t.tensor_type.name.lower() if t is not None else "unknown"


def weight_bytes(path) -> int:
    return sum(int(t.n_bytes) for t in _reader(path).tensors)


def identity(spec, seed: int) -> str:
    """A digest of everything the written file depends on."""
    shape = {k: getattr(spec, k) for k in ("vocab", "hidden", "ffn", "layers", "heads", "kv_heads", "head_dim",
                                           "rope_theta", "norm_eps", "tied_embeddings", "max_context")}
    blob = json.dumps({"shape": shape, "seed": seed, "writer": WRITER_VERSION}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def write_f16(spec, seed: int, path: Path) -> Path:
    """Writes the preset's synthetic model as an F16 GGUF at PATH (atomically)."""
    import gguf

    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    w = gguf.GGUFWriter(str(tmp), "bitnet")
    w.add_name(f"ternbench synthetic {spec.name}")
    w.add_context_length(spec.max_context)
    w.add_embedding_length(spec.hidden)
    w.add_block_count(spec.layers)
    w.add_feed_forward_length(spec.ffn)
    w.add_head_count(spec.heads)
    w.add_head_count_kv(spec.kv_heads)
    w.add_rope_dimension_count(spec.head_dim)
    w.add_layer_norm_rms_eps(spec.norm_eps)
    w.add_rope_freq_base(spec.rope_theta)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("none")
    w.add_vocab_size(spec.vocab)

    def ternary(name: str, rows: int, cols: int) -> None:
        t = rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
        w.add_tensor(name, (t * np.float32(0.02)).astype(np.float16))

    def ones(name: str, size: int) -> None:
        w.add_tensor(name, np.ones(size, np.float32))

    q, kv = spec.heads * spec.head_dim, spec.kv_heads * spec.head_dim
    w.add_tensor("token_embd.weight", (rng.standard_normal((spec.vocab, spec.hidden), dtype=np.float32)
                                       * 0.02).astype(np.float16))
    ones("output_norm.weight", spec.hidden)
    if not spec.tied_embeddings:
        w.add_tensor("output.weight", (rng.standard_normal((spec.vocab, spec.hidden), dtype=np.float32)
                                       * 0.02).astype(np.float16))
    for i in range(spec.layers):
        p = f"blk.{i}."
        for name, size in (("attn_norm", spec.hidden), ("attn_sub_norm", q), ("ffn_norm", spec.hidden),
                           ("ffn_sub_norm", spec.ffn)):
            ones(p + name + ".weight", size)
        for name, rows, cols in (("attn_q", q, spec.hidden), ("attn_k", kv, spec.hidden), ("attn_v", kv, spec.hidden),
                                 ("attn_output", spec.hidden, q), ("ffn_gate", spec.ffn, spec.hidden),
                                 ("ffn_up", spec.ffn, spec.hidden), ("ffn_down", spec.hidden, spec.ffn)):
            ternary(p + name + ".weight", rows, cols)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, path)
    return path


def disk_needed(spec, seed: int, fmt: str, cache: Path, bytes_of) -> int:
    """Bytes the GGUF files of the preset in FMT still need in the cache (0 when cached):
    the F16 file, and the quantised one. BYTES_OF(format) estimates a file's size."""
    base = Path(cache) / "gguf" / f"{spec.name}-{identity(spec, seed)}"
    need = 0 if base.with_name(base.name + "-f16.gguf").is_file() else bytes_of("f16")
    if fmt != "f16" and not any(base.parent.glob(f"{base.name}-{fmt}-*.gguf")):
        need += bytes_of(fmt)
    return need


def model_file(spec, seed: int, fmt: str, cache: Path, engine: Installation | None = None, log=lambda m: None) -> Path:
    """The cached GGUF of the preset in FMT, written (F16) and quantised (with ENGINE's
    llama-quantize) when missing."""
    if fmt not in QUANT_TYPES:
        raise EngineError(f"llama.cpp format {fmt!r} unknown; known: {', '.join(QUANT_TYPES)}")
    base = Path(cache) / "gguf" / f"{spec.name}-{identity(spec, seed)}"
    f16 = base.with_name(base.name + "-f16.gguf")
    if not f16.is_file():
        log(f"writing {f16.name} ...")
        write_f16(spec, seed, f16)
    if fmt == "f16":
        return f16
    if engine is None:
        raise EngineError(f"quantising to {fmt} needs llama.cpp's llama-quantize")
    build = hashlib.sha256(json.dumps(engine.record, sort_keys=True).encode() + str(engine.bin).encode()).hexdigest()[:8]
    out = base.with_name(f"{base.name}-{fmt}-{build}.gguf")
    if not out.is_file():
        log(f"quantising {f16.name} to {QUANT_TYPES[fmt]} with {engine.program('llama-quantize')} ...")
        tmp = out.with_name(out.name + ".tmp")
        proc = subprocess.run([str(engine.program("llama-quantize")), str(f16), str(tmp), QUANT_TYPES[fmt]],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise EngineError(f"llama-quantize {f16.name} {QUANT_TYPES[fmt]} failed: {tail}")
        os.replace(tmp, out)
    return out


def bytes_per_token(path: Path) -> int:
    """The weight bytes an engine reads to generate one token from this GGUF: every tensor once,
    except that the embedding table is read one row per token when a separate output head exists
    (tied, it is the output head and read whole). So bandwidth fractions compare across engines
    even where embeddings differ (llama.cpp keeps a TQ model's embedding in Q6_K)."""
    tensors = {t.name: t for t in _reader(path).tensors}
    total = sum(int(t.n_bytes) for t in tensors.values())
    embd = tensors.get("token_embd.weight")
    if embd is not None and "output.weight" in tensors:
        rows = int(embd.shape[-1])               # GGUF orders dims innermost first: (hidden, vocab)
        total -= int(embd.n_bytes) - int(embd.n_bytes) // rows
    return total
