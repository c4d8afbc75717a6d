"""config.json of a Hugging Face BitNet b1.58 (or LLaMA) checkpoint, read into the runtime's ModelShape."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from runtime import ModelShape

LINEAR_CLASSES = ("bitlinear", "autobitlinear")


# Per model_type: whether the layers have BitNet's sub-norms, and transformers' config defaults.
MODEL_TYPES = {
    "bitnet": dict(sub_norms=True, rope_theta=500000.0, rms_norm_eps=1e-5, hidden_act="relu2"),
    "llama": dict(sub_norms=False, rope_theta=10000.0, rms_norm_eps=1e-6, hidden_act="silu"),
}


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded; the message names the file and the tensor."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What config.json says, beyond the shape."""
    model_type: str
    linear_class: str
    max_position_embeddings: int | None


def read_config(path: Path) -> tuple[ModelShape, CheckpointInfo]:
    """The ModelShape of a checkpoint directory, from its config.json."""
    cfg = load_json(Path(path) / "config.json")
    where = f"{Path(path) / 'config.json'}"
    model_type = cfg.get("model_type")
    if model_type not in MODEL_TYPES:
        raise CheckpointError(f"{where}: model_type {model_type!r} is not supported; "
                              f"one of {', '.join(MODEL_TYPES)}")
    defaults = MODEL_TYPES[model_type]

    def integer(key, default=None):
        v = cfg.get(key, default)
        if v is None:
            raise CheckpointError(f"{where}: missing {key!r}")
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise CheckpointError(f"{where}: {key} must be a positive integer, got {v!r}")
        return v

    def number(key, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise CheckpointError(f"{where}: {key} must be a positive number, got {value!r}")
        return float(value)

    hidden, heads = integer("hidden_size"), integer("num_attention_heads")
    if cfg.get("head_dim") is None and hidden % heads:
        raise CheckpointError(f"{where}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
                              " and no head_dim is given")
    kv_heads = integer("num_key_value_heads", heads)
    if heads % kv_heads:
        raise CheckpointError(f"{where}: num_attention_heads {heads} is not a multiple of "
                              f"num_key_value_heads {kv_heads}")
    act = cfg.get("hidden_act", defaults["hidden_act"])
    if act not in ("relu2", "silu"):
        raise CheckpointError(f"{where}: hidden_act {act!r} is not supported; relu2 or silu")
    for key in ("attention_bias", "mlp_bias"):
        if cfg.get(key):
            raise CheckpointError(f"{where}: {key} is set; the runtime has no biases")
    shape = ModelShape(
        vocab=integer("vocab_size"), hidden=hidden, ffn=integer("intermediate_size"),
        layers=integer("num_hidden_layers"), heads=heads, kv_heads=kv_heads,
        head_dim=integer("head_dim", hidden // heads),
        rope_theta=number("rope_theta", _rope_theta(cfg, where, defaults["rope_theta"])),
        norm_eps=number("rms_norm_eps", cfg.get("rms_norm_eps", defaults["rms_norm_eps"])),
        activation=act, sub_norms=defaults["sub_norms"],
        tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
    )
    max_pos = cfg.get("max_position_embeddings")
    info = CheckpointInfo(model_type, _linear_class(cfg, where), max_pos if isinstance(max_pos, int) else None)
    return shape, info


def load_json(file: Path) -> dict:
    if not file.parent.is_dir():
        raise CheckpointError(f"{file.parent}: not a directory (a checkpoint directory holds config.json "
                              "and *.safetensors files) nor a .gguf file")
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise CheckpointError(f"{file}: not found (a Hugging Face checkpoint directory holds config.json "
                              "and *.safetensors files)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file}: cannot read: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{file}: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{file}: expected a JSON object, found {type(data).__name__}")
    return data


def _rope_theta(cfg: dict, where: str, default: float):
    """rope_theta sits at the top level (transformers 4) or in rope_parameters (5); only
    plain RoPE is supported (llama3 / yarn scaling change the frequencies)."""
    params = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    if not isinstance(params, dict):
        raise CheckpointError(f"{where}: rope_parameters must be an object, got {params!r}")
    kind = params.get("rope_type", params.get("type", "default"))
    if kind not in (None, "default"):
        raise CheckpointError(f"{where}: RoPE scaling {kind!r} is not supported (plain RoPE only)")
    return cfg.get("rope_theta", params.get("rope_theta", default))


def _linear_class(cfg: dict, where: str) -> str:
    q = cfg.get("quantization_config") or {}
    if not isinstance(q, dict):
        raise CheckpointError(f"{where}: quantization_config must be an object")
    if q and q.get("quant_method", "bitnet") != "bitnet":
        raise CheckpointError(f"{where}: quant_method {q.get('quant_method')!r} is not supported (bitnet only)")
    if q.get("use_rms_norm"):
        raise CheckpointError(f"{where}: quantization_config.use_rms_norm (an RMSNorm inside every linear) "
                              "is not supported")
    # transformers' BitNetQuantConfig defaults to bitlinear
    cls = q.get("linear_class", "bitlinear")
    if cls not in LINEAR_CLASSES:
        raise CheckpointError(f"{where}: linear_class {cls!r} is not one of {', '.join(LINEAR_CLASSES)}")
    return cls
