"""YAML that remembers where each value came from, so that a message about a bad value can
name the line it is on.

Plain `yaml.safe_load` loses positions and silently keeps the last of two equal keys; composing
the node tree first and constructing it ourselves keeps both."""
from __future__ import annotations

import math
from pathlib import Path

import yaml


class YamlProblem(Exception):
    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.message, self.line = message, line


class LDict(dict):
    """A mapping with the line of each key (`lines[key]`) and of the mapping itself (`line`)."""
    line: int
    lines: dict


class LList(list):
    """A sequence with the line of each item (`lines[i]`) and of the sequence itself (`line`)."""
    line: int
    lines: list


MAX_NODES = 100_000   # values one document may expand to (aliases of aliases can multiply them)


def load(text: str):
    """Parses one YAML document into LDict / LList / plain scalars; None for an empty document."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)   # refuses control characters already
        root = loader.get_single_node()
        return None if root is None else _build(loader, root, [0])
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1 if isinstance(e.position, int) else None
        code = e.character if isinstance(e.character, int) else ord(e.character or "\0")
        raise YamlProblem(f"invalid YAML: the control character U+{code:04X} is not allowed ({e.reason})",
                          line) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        what = getattr(e, "problem", None) or str(e)
        raise YamlProblem(f"invalid YAML: {what}", mark.line + 1 if mark else None) from None
    except RecursionError:
        raise YamlProblem("invalid YAML: nested too deeply", None) from None
    finally:
        if loader is not None:
            loader.dispose()


def load_file(path, what: str):
    """(the file's text, load() of it); YamlProblem("cannot read the WHAT: reason") when it cannot be read as
    UTF-8 text, so every YAML input reports an unreadable file the same way."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise YamlProblem(f"cannot read the {what}: {reason}", None) from None
    return text, load(text)


def _build(loader, node, built: list):
    built[0] += 1
    if built[0] > MAX_NODES:
        raise YamlProblem(f"the document expands to more than {MAX_NODES:,} values (aliases of aliases?)",
                          node.start_mark.line + 1)
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = LDict()
        out.line, out.lines = line, {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            key = _build(loader, key_node, built) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                raise YamlProblem(f"keys must be text, got {key!r}", key_line)
            if key in out:
                raise YamlProblem(f"key {key!r} appears twice (first on line {out.lines[key]})", key_line)
            out[key] = _build(loader, value_node, built)
            out.lines[key] = key_line
        return out
    if isinstance(node, yaml.SequenceNode):
        out = LList(_build(loader, item, built) for item in node.value)
        out.line, out.lines = line, [item.start_mark.line + 1 for item in node.value]
        return out
    try:
        return loader.construct_object(node, deep=True)
    except ValueError as e:   # e.g. an integer of more digits than Python converts
        raise YamlProblem(f"invalid value: {str(e).split(';')[0]}", line) from None


def number(value) -> float | None:
    """A YAML value as a finite float, or None. PyYAML follows YAML 1.1, which reads 1e-5 (no
    dot) as text, so numeric text counts too; true and false do not."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)
