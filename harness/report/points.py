"""The points of one results directory as plain dicts, ready for plots and tables: the tidy
table's columns (NaN turned into None), the model's parameter count, a series label, and for
failed points the tail of their log."""
from __future__ import annotations

import math

from harness.models import presets, sizes

INTEGERS = ("n", "threads", "tokens", "weight_bytes", "bytes_per_token")


def clean(value):
    """NaN and pandas/numpy scalars -> None and plain Python (jinja2 and json need them)."""
    if value is None:
        return None
    if hasattr(value, "item"):          # numpy scalar
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def model_sizes(labels) -> dict[str, int | None]:
    """Parameter counts of presets. A checkpoint's label is not a preset name: it gets None and
    is left off the size plots (its weight bytes depend on the format, so they are no size)."""
    out = {}
    for label in labels:
        try:
            out[label] = presets.param_count(presets.find_model(label))
        except (presets.ModelSpecError, OSError, ValueError):
            out[label] = None
    return out


ENGINE_LABELS = {"ternbench": "ternbench", "llamacpp": "llama.cpp", "bitnetcpp": "bitnet.cpp"}


def engine_label(engine) -> str:
    return ENGINE_LABELS.get(engine or "ternbench", str(engine))


def baseline_label(baseline: str | None) -> str | None:
    """"f16", "llama.cpp f16" for a baseline of another engine ("llamacpp:f16"), and "llama.cpp
    f16, else f16" for alternatives."""
    if not baseline:
        return baseline
    out = []
    for alt in baseline.split(","):
        engine, _, fmt = alt.rpartition(":")
        out.append(f"{engine_label(engine)} {fmt}" if engine else fmt)
    return ", else ".join(out)


def series_label(row: dict, show_variant: bool) -> str:
    """The format, after its engine when that is not ternbench, with the head format only when it
    is not the format's default and the kernel variant only when the sweep has several: short
    legends for the common case."""
    engine = row.get("engine") or "ternbench"
    if engine != "ternbench":
        return f"{engine_label(engine)} {row['format']}"
    label = str(row["format"])
    fmt, head = row.get("format"), row.get("head_format")
    try:
        default = sizes.default_head_format(fmt)
    except (KeyError, ValueError):
        default = None
    if head and head != default:
        label += f"+{head}"
    if show_variant and row.get("variant"):
        label += f" ({row['variant']})"
    return label


def rows(results) -> list[dict]:
    """One dict per point (the newest record of each key), sorted by test, size, threads, format."""
    frame = results.frame()
    out = [{k: clean(v) for k, v in r.items()} for r in frame.to_dict("records")]
    by_key = {r.get("key"): r for r in results.records}
    params = model_sizes({r["model"] for r in out})
    variants = {r["variant"] for r in out if r["status"] == "ok" and r.get("engine", "ternbench") == "ternbench"}
    for r in out:
        for k in INTEGERS:   # a column with a gap (a failed point) comes back as float
            if isinstance(r.get(k), float) and r[k].is_integer():
                r[k] = int(r[k])
        r["params"] = params.get(r["model"])
        r["series"] = series_label(r, len(variants) > 1)
        r["log_tail"] = by_key.get(r["key"], {}).get("log_tail") if r["status"] != "ok" else None
        r["process_tps"] = by_key.get(r["key"], {}).get("process_tokens_per_s")
        r["estimated"] = r.get("energy_measured") is False
        # the figure a point's interval is centred on: the geometric mean of its process means
        # (records written before those were kept: the mean of its values)
        r["tps_centre"] = r.get("tps_gmean") if r.get("tps_gmean") is not None else r.get("tps_mean")
    out.sort(key=sort_key)
    return out


def sort_key(r: dict):
    return (str(r.get("workload")), r.get("tokens") or 0, r.get("params") or 0, str(r.get("model")),
            r.get("threads") or 0, str(r.get("engine") or ""), str(r.get("format")), str(r.get("head_format")), str(r.get("variant")))


def ok(rows_: list[dict]) -> list[dict]:
    return [r for r in rows_ if r["status"] == "ok"]


def tests(rows_: list[dict], workload: str | None = None) -> list[str]:
    """The tests present (pp128, tg32, ...), prompt processing first, then by token count."""
    found = {(r["workload"], r["tokens"], r["test"]) for r in ok(rows_) if workload in (None, r["workload"])}
    return [t for _, _, t in sorted(found)]


def not_finished(results, rows_: list[dict]) -> list[dict]:
    """Points of the plan that have no record: the sweep was interrupted (or is still running)."""
    done = {r["key"] for r in rows_}
    return [p for p in results.plan.get("points") or [] if isinstance(p, dict) and p.get("key") not in done]
