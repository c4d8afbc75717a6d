"""The same model in every engine: a synthetic GGUF of a preset's shape (or a checkpoint directory
converted), in llama.cpp's `bitnet` architecture (sub-norms before o_proj and down_proj, the
embedding as the output head when tied), streamed to disk with the `gguf` package one tensor at a
time, then quantised by the engine's own `llama-quantize`.

The linear weights are ternary values times one scale per tensor, stored as F16, so a ternary
quantisation (TQ1_0, TQ2_0, I2_S) holds them exactly. The file carries a dummy SentencePiece
vocabulary (`<unk>`, `<s>`, `</s>`, `<t3>`, ...: every engine loads it; bitnet.cpp's 2024 llama.cpp
refuses a file without one) and the model's FFN activation under `ternbench.activation`, which
ternbench honours when it reads the file back. llama.cpp's `bitnet` architecture (1bitLLM's
models, the only one bitnet.cpp's 2024 fork has) computes a SiLU-gated FFN whatever the file says:
a relu2 model (2B4T) has the same weights and bytes per token there, which is what a speed
measurement compares, but not the same function (`engine_activation` says so). Files are cached
by shape, seed (or the checkpoint's content) and writer version (the F16 file) and by the engine
build too (the quantised ones)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from harness.models.gguf_file import ACTIVATION_KEY, GgufError, GgufFile

from . import bitnetcpp, tl2
from .gguf_layout import dummy_vocabulary, tensors
from .llamacpp import EngineError, Installation, run_into

__all__ = ["GgufError", "EngineError", "model_file", "bytes_per_token", "weight_bytes", "head_type",
           "engine_activation", "tensors", "dummy_vocabulary"]

WRITER_VERSION = 2             # 2: a dummy SentencePiece vocabulary and ternbench.activation
# the FFN activation an engine computes for the `bitnet` architecture ternbench writes
ENGINE_ACTIVATION = {"llamacpp": "silu", "bitnetcpp": "silu"}
# llama-quantize's names for the formats ternbench asks for (llama.cpp's, and bitnet.cpp's fork's)
QUANT_TYPES = {"tq1_0": "TQ1_0", "tq2_0": "TQ2_0", "f16": "F16", "i2_s": "I2_S", "tl1": "TL1", "tl2": "TL2"}
# bitnet.cpp's I2_S quantiser writes one scale per call at the end of the rows it was given: with
# several threads each chunk's scale lands on the next chunk's weights (found as code 3, which no
# ternary value has), so it runs on one thread, as bitnet.cpp's setup_env.py runs it.
SINGLE_THREADED = {"i2_s": ("1",)}
# formats no llama-quantize writes: bitnet.cpp's converter does (tl2.py); the value goes into the
# file's cache key, so a change of ternbench's checkpoint writer makes a new file
CONVERTED = {"tl2": f"tl2-writer-{tl2.WRITER_VERSION}".encode()}


def _header(file) -> GgufFile:
    """FILE: a path, or a GgufFile already read (a caller asking several questions reads it once)."""
    return file if isinstance(file, GgufFile) else GgufFile(file)


def head_type(file) -> str:
    """The type of the tensor the output head reads: output.weight, or the embedding when tied."""
    tensors = _header(file).tensors
    t = tensors.get("output.weight", tensors.get("token_embd.weight"))
    return t.type.lower() if t is not None else "unknown"


def weight_bytes(file) -> int:
    return sum(t.nbytes for t in _header(file).tensors.values())


def identity(spec, seed: int, checkpoint: str | None = None) -> str:
    """A digest of everything the written file depends on: the shape and seed of a preset, or a
    checkpoint's content identity."""
    shape = {k: getattr(spec, k) for k in ("vocab", "hidden", "ffn", "layers", "heads", "kv_heads", "head_dim",
                                           "rope_theta", "norm_eps", "tied_embeddings", "max_context", "activation")}
    source = {"checkpoint": checkpoint} if checkpoint else {"seed": seed}
    blob = json.dumps({"shape": shape, **source, "writer": WRITER_VERSION}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]




def _add_dummy_vocabulary(w, vocab: int) -> None:
    """The dummy vocabulary as a SentencePiece ("llama") tokenizer in the GGUF header."""
    pieces, types = dummy_vocabulary(vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(pieces)
    w.add_token_scores([0.0] * vocab)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)


def engine_activation(engine: str, activation: str) -> str | None:
    """Why ENGINE computes another function than a model with ACTIVATION, or None when it does not."""
    runs = ENGINE_ACTIVATION.get(engine)
    if runs is None or runs == activation:
        return None
    return (f"{engine} runs the `bitnet` architecture's {runs} FFN where the model has {activation}: "
            "same weights and bytes per token, not the same function")


def _write(spec, path: Path, name: str, produce) -> Path:
    """Streams the model to PATH (atomically), one tensor in memory at a time: PRODUCE(name, kind,
    runtime name, shape) gives each tensor's array (float16 linears and heads, float32 norms),
    called in the order of `tensors`."""
    import gguf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    plan = tensors(spec)
    w = gguf.GGUFWriter(str(tmp), "bitnet")
    w.add_name(name)
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
    w.add_string(ACTIVATION_KEY, spec.activation)
    _add_dummy_vocabulary(w, spec.vocab)
    for tname, kind, _, shape in plan:
        dtype = np.dtype(np.float32 if kind == "norm" else np.float16)
        w.add_tensor_info(tname, shape, dtype, int(np.prod(shape)) * dtype.itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for tname, kind, runtime_name, shape in plan:
        w.write_tensor_data(np.ascontiguousarray(produce(tname, kind, runtime_name, shape)))
    w.close()
    os.replace(tmp, path)
    return path


def write_f16(spec, seed: int, path: Path) -> Path:
    """Writes the preset's synthetic model as an F16 GGUF at PATH: ternary linears (seeded) times
    0.02, random embeddings, norms of ones."""
    rng = np.random.default_rng(seed)

    def produce(name, kind, _, shape):
        if kind == "norm":
            return np.ones(shape, np.float32)
        if kind == "linear":
            return (rng.integers(-1, 2, size=shape, dtype=np.int8) * np.float32(0.02)).astype(np.float16)
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)

    return _write(spec, path, f"ternbench synthetic {spec.name}", produce)


def write_checkpoint_f16(spec, path: Path) -> Path:
    """A Hugging Face checkpoint directory (spec.path) as an F16 GGUF at PATH: each linear its
    ternary values times its scale (the scale rounded to f16: a ternary quantisation keeps the
    values), the embedding, head and norms as read by the checkpoint loader."""
    from harness.models.checkpoint import EMBEDDING, FINAL_NORM, OUTPUT, Checkpoint

    ckpt = Checkpoint(spec.path)
    linears = {(s.layer, s.which): s for s in ckpt.linears}
    norms = {(layer, which): name for layer, which, name, _ in ckpt.vectors}

    def produce(name, kind, runtime_name, shape):
        layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
        if kind == "linear":
            w, scale = ckpt.ternary(linears[(layer, runtime_name)])
            return (w * np.float32(scale)).astype(np.float16)
        if kind == "norm":
            return ckpt.vector(FINAL_NORM if runtime_name == "final" else norms[(layer, runtime_name)])
        return ckpt.vector(EMBEDDING if kind == "embedding" else OUTPUT).astype(np.float16)

    return _write(spec, path, f"ternbench conversion of {spec.path}", produce)


def _base(spec, seed: int, cache: Path, checkpoint: str | None) -> Path:
    return Path(cache) / "gguf" / f"{spec.name}-{identity(spec, seed, checkpoint)}"


def disk_needed(spec, seed: int, fmt: str, cache: Path, bytes_of, checkpoint: str | None = None) -> int:
    """Bytes the GGUF files of the model in FMT still need in the cache (0 when cached):
    the F16 file, and the quantised one (and for TL2 the checkpoint written for the converter,
    while it converts). BYTES_OF(format) estimates a file's size."""
    base = _base(spec, seed, cache, checkpoint)
    need = 0 if base.with_name(base.name + "-f16.gguf").is_file() else bytes_of("f16")
    if fmt != "f16" and not any(base.parent.glob(f"{base.name}-{fmt}-*.gguf")):
        need += bytes_of(fmt) + (tl2.checkpoint_bytes(spec) if fmt in CONVERTED else 0)
    return need


def model_file(spec, seed: int, fmt: str, cache: Path, engine: Installation | None = None, log=lambda m: None,
               checkpoint: str | None = None) -> Path:
    """The cached GGUF of the model in FMT, written (F16) and quantised (with ENGINE's
    llama-quantize) when missing: a preset's synthetic model, or with CHECKPOINT (its content
    identity) the checkpoint directory at spec.path, converted."""
    if fmt not in QUANT_TYPES:
        raise EngineError(f"llama.cpp format {fmt!r} unknown; known: {', '.join(QUANT_TYPES)}")
    base = _base(spec, seed, cache, checkpoint)
    f16 = base.with_name(base.name + "-f16.gguf")
    if not f16.is_file():
        log(f"writing {f16.name} ...")
        if checkpoint:
            write_checkpoint_f16(spec, f16)
        else:
            write_f16(spec, seed, f16)
    if fmt == "f16":
        return f16
    if engine is None:
        raise EngineError(f"quantising to {fmt} needs llama.cpp's llama-quantize")
    build = hashlib.sha256(json.dumps(engine.record, sort_keys=True).encode() + str(engine.bin).encode()
                           + CONVERTED.get(fmt, b"")).hexdigest()[:8]
    out = base.with_name(f"{base.name}-{fmt}-{build}.gguf")
    if out.is_file():
        return out
    if fmt in CONVERTED:
        _convert_tl2(spec, f16, out, engine, log)
    else:
        log(f"quantising {f16.name} to {QUANT_TYPES[fmt]} with {engine.program('llama-quantize')} ...")
        run_into(out, lambda tmp: [str(engine.program("llama-quantize")), str(f16), str(tmp), QUANT_TYPES[fmt],
                                   *SINGLE_THREADED.get(fmt, ())], f"llama-quantize {f16.name} {QUANT_TYPES[fmt]}")
    return out


def _convert_tl2(spec, f16: Path, out: Path, engine: Installation, log) -> None:
    """The TL2 file of the model whose F16 GGUF is F16, by ENGINE's own converter (bitnet.cpp's),
    through a checkpoint directory beside OUT that is removed afterwards."""
    why = bitnetcpp.cannot_write("tl2", spec, engine)
    if why:
        raise EngineError(why)
    root = bitnetcpp.converter_root(engine, log)
    checkpoint = out.with_name(out.name + ".checkpoint")
    try:
        log(f"writing {f16.name} as a checkpoint for bitnet.cpp's TL2 converter ...")
        tl2.write_checkpoint(spec, f16, checkpoint)
        log(f"converting to TL2 with {root / tl2.CONVERTER} ...")
        tl2.convert(root, checkpoint, out)
    finally:
        shutil.rmtree(checkpoint, ignore_errors=True)


def bytes_per_token(file) -> int:
    """The weight bytes an engine reads to generate one token from this GGUF: every tensor once,
    except that the embedding table is read one row per token when a separate output head exists
    (tied, it is the output head and read whole). So bandwidth fractions compare across engines
    even where embeddings differ (llama.cpp keeps a TQ model's embedding in Q6_K)."""
    tensors = _header(file).tensors
    total = sum(t.nbytes for t in tensors.values())
    embd = tensors.get("token_embd.weight")
    if embd is not None and "output.weight" in tensors:
        rows = embd.shape[0]
        total -= embd.nbytes - embd.nbytes // rows
    return total
