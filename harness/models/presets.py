"""Model presets: transformer shapes read from small YAML files.

A preset is one YAML file in configs/models/ (copy one to define a new model). Keys, all required
unless marked optional:

    name             what users type, e.g. 2B4T (letters, digits, . _ + -; safe as a file name)
    aliases          optional list of other names, e.g. [2.5B]
    description      one line: what the model is
    source           where the figures come from, and which of them could not be confirmed
    hidden, ffn, layers, heads, kv_heads, vocab     positive integers
    head_dim         optional; default hidden / heads, which must then divide evenly
    activation       relu2 (BitNet b1.58 2B4T) or silu (LLaMA-style gated FFN)
    sub_norms        true: an extra RMSNorm before o_proj and before down_proj (BitNet b1.58)
    tied_embeddings  true: the output head is the embedding matrix
    rope_theta, norm_eps   positive numbers
    max_context      positive integer: the longest context the model was trained for

A directory holding a config.json is a checkpoint, not a preset: the loader handles those.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

import harness
from harness import yaml_source
from harness.inputs import user_path
from runtime import ModelShape

from .sizes import param_count

PRESETS_DIR = Path(harness.ROOT) / "configs" / "models"

ACTIVATIONS = ("relu2", "silu")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class ModelSpecError(ValueError):
    """A preset file that cannot be read or is not a valid model description."""


class UnknownModelError(ModelSpecError, LookupError):
    """A name that is no preset, alias or file; `suggestions` holds close matches."""

    def __init__(self, message: str, suggestions: list[str]):
        super().__init__(message)
        self.suggestions = suggestions


@dataclass(frozen=True)
class ModelSpec:
    name: str
    aliases: tuple[str, ...]
    description: str
    source: str
    hidden: int
    ffn: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    activation: str
    sub_norms: bool
    tied_embeddings: bool
    rope_theta: float
    norm_eps: float
    max_context: int
    path: Path | None = field(default=None, compare=False)

    @property
    def shape(self) -> ModelShape:
        """What the runtime needs of this preset to build a model of its shape."""
        return ModelShape(vocab=self.vocab, hidden=self.hidden, ffn=self.ffn, layers=self.layers, heads=self.heads,
                          kv_heads=self.kv_heads, head_dim=self.head_dim, rope_theta=self.rope_theta,
                          norm_eps=self.norm_eps, activation=self.activation, sub_norms=self.sub_norms,
                          tied_embeddings=self.tied_embeddings)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "path"}
        d["aliases"] = list(self.aliases)
        d["path"] = str(self.path) if self.path else None
        return d


# --- loading and validation -------------------------------------------------------------------

_INT_KEYS = ("hidden", "ffn", "layers", "heads", "kv_heads", "head_dim", "vocab", "max_context")
_FLOAT_KEYS = ("rope_theta", "norm_eps")
_BOOL_KEYS = ("sub_norms", "tied_embeddings")
_TEXT_KEYS = ("name", "description", "source")
OPTIONAL_KEYS = ("aliases", "head_dim")
ALLOWED_KEYS = ("name", "aliases", "description", "source", "hidden", "ffn", "layers", "heads", "kv_heads",
                "head_dim", "vocab", "activation", "sub_norms", "tied_embeddings", "rope_theta", "norm_eps",
                "max_context")
REQUIRED_KEYS = tuple(k for k in ALLOWED_KEYS if k not in OPTIONAL_KEYS)


def display_path(path: Path) -> str:
    """The path as a user would type it: relative to the working directory when under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class _Problems:
    """Builds messages of the form 'file: line N: what is wrong'."""

    def __init__(self, path: Path):
        self.where = display_path(path)

    def error(self, message: str, line: int | None = None) -> ModelSpecError:
        at = f" line {line}:" if line else ""
        return ModelSpecError(f"{self.where}:{at} {message}")


def load_spec(path) -> ModelSpec:
    """Reads and validates one preset file; raises ModelSpecError naming the file, key and line."""
    path = Path(path)
    problems = _Problems(path)
    entries, first_line = _parse(path, problems)
    return _validate(entries, first_line, path, problems)


def _parse(path: Path, problems: _Problems) -> tuple[dict[str, tuple[object, int]], int]:
    """A preset file -> ({key: (value, line)}, the mapping's first line), keeping each key's
    line for messages and refusing keys given twice (plain loading keeps the last)."""
    try:
        _, root = yaml_source.load_file(path, "model preset")
    except yaml_source.YamlProblem as e:
        raise problems.error(e.message, e.line) from None
    if root is None:
        raise problems.error("the file is empty; expected a mapping of keys to values", 1)
    if not isinstance(root, yaml_source.LDict):
        raise problems.error("expected a mapping of keys to values (key: value lines)", getattr(root, "line", 1))
    return {k: (v, root.lines[k]) for k, v in root.items()}, root.line


def _validate(entries: dict[str, tuple[object, int]], first_line: int, path: Path,
              problems: _Problems) -> ModelSpec:
    for key, (_, line) in entries.items():
        if key not in ALLOWED_KEYS:
            close = difflib.get_close_matches(key, ALLOWED_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise problems.error(f"unknown key {key!r}{hint}; allowed keys: {', '.join(ALLOWED_KEYS)}", line)
    missing = [k for k in REQUIRED_KEYS if k not in entries]
    if missing:
        raise problems.error(f"missing key {missing[0]!r}"
                             + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else "")
                             + f"; required keys: {', '.join(REQUIRED_KEYS)}", first_line)

    values: dict[str, object] = {}
    for key, (value, line) in entries.items():
        values[key] = _check_value(key, value, line, problems)
    values.setdefault("aliases", ())
    line_of = {k: line for k, (_, line) in entries.items()}

    if "head_dim" not in values:
        if values["hidden"] % values["heads"]:
            raise problems.error(f"key 'heads' ({values['heads']}) does not divide hidden ({values['hidden']}); "
                                 "give head_dim explicitly", line_of["heads"])
        values["head_dim"] = values["hidden"] // values["heads"]
    if values["heads"] % values["kv_heads"]:
        raise problems.error(f"key 'kv_heads' ({values['kv_heads']}) must divide heads ({values['heads']}): "
                             "each key/value head serves a whole group of query heads", line_of["kv_heads"])
    return ModelSpec(path=path, **values)


def _check_value(key: str, value, line: int, problems: _Problems):
    def bad(expected: str):
        return problems.error(f"key {key!r} must be {expected}, got {value!r}", line)

    if key in _INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise bad("a positive integer")
        return value
    if key in _FLOAT_KEYS:
        number = yaml_source.number(value)
        if number is None or number <= 0:
            raise bad("a positive number")
        return number
    if key in _BOOL_KEYS:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if key == "activation":
        if value not in ACTIVATIONS:
            raise bad(" or ".join(ACTIVATIONS))
        return value
    if key == "aliases":
        if not isinstance(value, list):
            raise bad("a list of names, e.g. [2.5B]")
        for alias in value:
            if not isinstance(alias, str) or not _NAME_RE.match(alias):
                raise problems.error(f"key 'aliases': {alias!r} is not a valid name (letters, digits, "
                                     ". _ + -, starting with a letter or digit)", line)
        return tuple(value)
    if key in _TEXT_KEYS:
        if not isinstance(value, str) or not value.strip():
            raise bad("non-empty text" + (' (quote names that look like numbers: name: "100")'
                                          if key == "name" and value is not None else ""))
        if key == "name" and not _NAME_RE.match(value):
            raise bad("a name safe as a file name (letters, digits, . _ + -, starting with a letter or digit)")
        return value.strip()
    raise AssertionError(f"no check for key {key!r}")  # ALLOWED_KEYS and the checks disagree


# --- finding presets --------------------------------------------------------------------------

def all_presets(directory: Path = PRESETS_DIR) -> list[ModelSpec]:
    """Every preset in `directory`, sorted by parameter count; names and aliases must be unique."""
    specs = [load_spec(p) for p in sorted(directory.glob("*.yaml"))]
    seen: dict[str, ModelSpec] = {}
    for spec in specs:
        for label in (spec.name, *spec.aliases):
            other = seen.get(label.lower())
            if other is not None:
                raise ModelSpecError(f"{display_path(spec.path)}: name {label!r} is already used by "
                                     f"{display_path(other.path)} (names and aliases are case-insensitive)")
            seen[label.lower()] = spec
    return sorted(specs, key=lambda s: (param_count(s), s.name))


def path_kind(path: Path) -> str | None:
    """"dir", "file" or None; a name the OS refuses (too long, a NUL byte) is no file either."""
    try:
        return "dir" if path.is_dir() else "file" if path.is_file() else None
    except (OSError, ValueError):
        return None


def find_model(name_or_path, directory: Path = PRESETS_DIR) -> ModelSpec:
    """A preset by name or alias (any case), or a preset YAML file by path."""
    text = str(name_or_path)
    path = user_path(text)
    kind = path_kind(path)
    if kind == "dir":
        if path_kind(path / "config.json") == "file":
            raise ModelSpecError(f"{text} is a checkpoint directory (it holds config.json); checkpoint "
                                 "directories are handled by the model loader, not by presets")
        raise ModelSpecError(f"{text} is a directory, not a model preset (.yaml file)")
    if kind == "file":
        if path.suffix.lower() not in (".yaml", ".yml"):
            raise ModelSpecError(f"{text} is not a model preset (.yaml file); checkpoints and GGUF files "
                                 "are handled by the model loader")
        return load_spec(path)

    presets = all_presets(directory)
    by_label = {label.lower(): spec for spec in presets for label in (spec.name, *spec.aliases)}
    if text.lower() in by_label:
        return by_label[text.lower()]
    if path.suffix.lower() in (".yaml", ".yml") or "/" in text or "\\" in text:
        raise ModelSpecError(f"{text}: no such model preset file")
    labels = {label.lower(): label for spec in presets for label in (spec.name, *spec.aliases)}
    # Names containing what was typed first ('falcon' -> every Falcon3), then similar spellings.
    close = [spec.name for spec in presets if text.lower() in spec.name.lower()]
    close += [labels[m] for m in difflib.get_close_matches(text.lower(), labels, n=5, cutoff=0.5)]
    close = list(dict.fromkeys(close))[:5]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownModelError(f"unknown model {text!r}{hint} (`ternbench models` lists them all; "
                            "a path to a .yaml file works too)", close)
