"""How claims and verdicts are worded: ranges, figures, sizes and lists of points."""
from __future__ import annotations

import math

from harness.models.presets import ModelSpecError, find_model
from harness.models.sizes import param_count

from .schema import Claim, CountedPoint


def g(x: float) -> str:
    return f"{round(x, 6):g}"


def fmt_value(c: Claim, v: float) -> str:
    if c.metric in ("energy_reduction", "lossless"):
        return f"{100 * v:.1f}%"
    if c.metric == "tokens_per_s":
        return f"{v:.2f} tokens/s"
    return f"{v:.2f}x"


def range_text(c: Claim) -> str:
    """The published range as written: 2.37x-6.17x, 71.9%-82.2%, 5-7 tokens/s, 100%."""
    pct = c.metric in ("energy_reduction", "lossless")
    unit = "%" if pct else " tokens/s" if c.metric == "tokens_per_s" else "x"
    lo, hi = (None if v is None else g(100 * v if pct else v) for v in (c.lo, c.hi))
    if hi is None:
        return f"at least {lo}{unit}"
    if lo == hi:
        return f"{lo}{unit}"
    return f"{lo}-{hi}{unit}" if unit == " tokens/s" else f"{lo}{unit}-{hi}{unit}"


def noun(c: Claim) -> str:
    return {"speedup": "speed-ups", "energy_reduction": "energy reductions"}.get(c.metric, "figures")


def ordered(c: Claim, models) -> list[str]:
    """The claim's order (smallest first), then any other label by size."""
    return sorted(models, key=lambda m: (c.models.index(m) if m in c.models else len(c.models), size_of(m), m))


def size_of(label: str) -> float:
    try:
        return param_count(find_model(label))
    except ModelSpecError:   # a checkpoint's label, not a preset
        return math.inf


def sizes(models) -> str:
    models = list(models)
    return ", ".join(models) if len(models) <= 4 else f"{models[0]}-{models[-1]} ({len(models)} sizes)"


def plural(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def all_lie(n: int) -> str:
    return "The only point lies" if n == 1 else f"All {n} points lie"


def point_list(c: Claim, points) -> str:
    return ", ".join(f"{p.model} {p.format}{f' {p.test} t{p.threads}' if p.test else ''} {fmt_value(c, p.value)}"
                     for p in points)


def measured_text(c: Claim, points: list[CountedPoint], label: str = "") -> str:
    values = [p.value for p in points]
    figure = fmt_value(c, min(values)) if min(values) == max(values) else f"{fmt_value(c, min(values))}-{fmt_value(c, max(values))}"
    threads = sorted({p.threads for p in points})
    thread_text = f"{'/'.join(map(str, threads))} thread{'s' if threads != [1] else ''}"
    used = sorted({p.format for p in points})
    # which format, when the claim allows several (a size claim judges the most compact that ran)
    fmt = f" in {'/'.join(used)}" if len(c.formats) > 1 else ""
    where = f"{sizes(ordered(c, {p.model for p in points}))}{fmt}; {'/'.join(sorted({p.test for p in points}))}, " \
            f"{thread_text}"
    return f"{figure}{label}{interval_text(c, points)} over {plural(len(points), 'point')} ({where})"


def interval_text(c: Claim, points: list[CountedPoint]) -> str:
    """The 95% intervals behind the figures and how they were obtained: " (95% 4.40x-5.30x,
    paired)", or for several points the span they cover."""
    known = [p for p in points if p.low is not None and p.high is not None]
    if not known:
        return ""
    lo, hi = fmt_value(c, min(p.low for p in known)), fmt_value(c, max(p.high for p in known))
    methods = "/".join(sorted({p.method for p in known if p.method}))
    how = f", {methods}" if methods else ""
    if len(points) == 1:
        return f" (95% {lo}-{hi}{how})"
    which = "" if len(known) == len(points) else f" for {len(known)} of them"
    return f" (95% intervals within {lo}-{hi}{which}{how})"
