"""HTML from the prepared data: one jinja2 environment with autoescape always on (machine
names, config values, model labels and failure reasons are untrusted text), the number
formats of the tables, and the write of DIR/index.html."""
from __future__ import annotations

import math
import re
from pathlib import Path

import jinja2
import markupsafe

from harness.sweep.results import write_atomic

from . import compare, single

TEMPLATES = Path(__file__).resolve().parent / "templates"
DASH = "\u2013"


def num(v, digits: int | None = None) -> str:
    """Tokens/s, J/token, GB/s: enough digits to compare, no more."""
    if not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v):
        return DASH
    if digits is not None:
        return f"{v:.{digits}f}"
    a = abs(v)
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def ratio(v) -> str:
    return f"{v:.2f}x" if isinstance(v, (int, float)) and not math.isnan(v) else DASH


def pct(v) -> str:
    return f"{100 * v:.0f}%" if isinstance(v, (int, float)) and not math.isnan(v) else DASH


def params(v) -> str:
    from .plots import human

    return human(v) if isinstance(v, (int, float)) and v else DASH


def show(v) -> str:
    """A claim's measured value or range, whatever shape claims.py gives it."""
    if v is None or v == "":
        return DASH
    if isinstance(v, float):
        return num(v)
    if isinstance(v, dict):
        return "; ".join(f"{k}: {show(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(show(x) for x in v)
    return str(v)


# C0 controls but tab and newline: a failed point's log tail carries terminal escapes, which
# HTML cannot hold
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _finalize(value):
    # Markup (a macro's output) was finalized piece by piece already, and must stay Markup
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return _CONTROL.sub("\ufffd", value)
    return value


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, finalize=_finalize,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=num, ratio=ratio, pct=pct, params=params, show=show)
    return env


def _write(template: str, ctx: dict, out_dir) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    write_atomic(path, environment().get_template(template).render(**ctx))
    return path


def write_single(results, out_dir, claims: list[dict] | None = None, claims_error: str | None = None):
    """DIR/index.html for one results directory; returns (path, the --json summary)."""
    ctx = single.context(results, claims, claims_error)
    path = _write("single.html.j2", ctx, out_dir)
    return path, single.summary(ctx, path)


def write_compare(results_list, out_dir, claims=None):
    """DIR/index.html comparing several results directories, with each one's claim verdicts when
    given (compare.context); returns (path, the --json summary)."""
    ctx = compare.context(results_list, claims)
    path = _write("compare.html.j2", ctx, out_dir)
    return path, compare.summary(ctx, path)
