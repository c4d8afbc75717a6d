"""Every plot of the reports, drawn with matplotlib's object API on the Agg canvas (no pyplot:
no global backend to set, nothing shown) and returned as a base64 PNG data URI, so the HTML
needs no file beside it and no network.

Each function takes plain row dicts (see points.py) and returns a figure dict
{"title", "src", "alt"} or None when it has nothing to draw; the caller says "no data"."""
from __future__ import annotations

import base64
import io
import math
import textwrap
from collections.abc import Callable

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator, PercentFormatter

from harness.measure.point import WORKLOADS
from harness.models.sizes import default_head_format
from harness.sweep.tables import split_baseline

from .points import baseline_label

# Okabe-Ito: distinguishable with the common colour-vision deficiencies; markers and line
# styles separate the second dimension, so no line is told apart by colour alone
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">"]
LINESTYLES = ["-", "--", ":", "-."]
FORMAT_ORDER = ["i2s", "tq1", "tl1", "tl2", "f16", "f32"]
DPI = 110

# large type for the figure size: the page scales images down to the screen width, to about
# half on a phone
RC = {"font.size": 13, "axes.titlesize": 13, "figure.titlesize": 14, "legend.fontsize": 12,
      "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}


def workload_title(test: str) -> str:
    return f"{WORKLOADS.get(test[:2], test)} ({test})"


def text(label) -> str:
    """Any text from the results (labels, names) as matplotlib should show it: a '$' escaped,
    so that '$...$' is not parsed as mathtext (or fails to parse); a leading '_' padded,
    since legends hide such labels."""
    s = str(label).replace("$", r"\$")
    return " " + s if s.startswith("_") else s


def human(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            v = n / scale
            return f"{v:.3g}{unit}"
    return f"{n:.0f}"


def _models(rows) -> list:
    """Model labels from the smallest model up (a label without a size last)."""
    sizes = {r["model"]: r.get("params") or float("inf") for r in rows}
    return sorted(sizes, key=lambda m: (sizes[m], str(m)))


def _series_order(rows) -> list:
    """Ternary formats first, the float baselines after, anything else last (by name)."""
    def rank(series: str):
        fmt = series.split("+")[0].split(" ")[0]
        return (FORMAT_ORDER.index(fmt) if fmt in FORMAT_ORDER else len(FORMAT_ORDER), series)

    return sorted(dict.fromkeys(r["series"] for r in rows), key=rank)


def is_baseline(row: dict, baseline: str | None) -> bool:
    """The baseline's own points (speed-up 1 by definition): left off speed-up plots. A baseline
    "f16" is every engine's f16; "llamacpp:f16" is llama.cpp's only; of several alternatives,
    the one the point itself was divided by."""
    baseline = row.get("baseline") or baseline
    if not baseline or "," in baseline:
        return False
    engine, fmt = split_baseline(baseline)
    mine = row.get("engine") or "ternbench"
    if row["format"] != fmt or (engine and mine != engine):
        return False
    return mine != "ternbench" or row.get("head_format") == default_head_format(fmt)


def _new() -> tuple[Figure, list]:
    """One plot per figure: several panels side by side would be unreadable on a phone."""
    fig = Figure(figsize=(6.8, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.subplots()]


def _encode(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})   # no version: reproducible bytes
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _done(fig: Figure, axes: list, title: str, alt: str, legend_title: str | None = None,
          note: str | None = None) -> dict:
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if handles:
        # as many columns as fit the figure's width at the legend's type size
        ncols = max(1, min(len(labels), 4, 58 // (max(len(lab) for lab in labels) + 7)))
        fig.legend([handles[lab] for lab in labels], labels, loc="outside lower center",
                   ncols=ncols, title=legend_title, frameon=False)
        # a tall legend gets its own height, so the plot above it keeps its size
        rows = -(-len(labels) // ncols) + (1 if legend_title else 0)
        fig.set_figheight(fig.get_figheight() + max(0, rows - 3) * 0.27)
    fig.suptitle("\n".join(textwrap.wrap(text(title), 56)))   # long titles wrap instead of being cut
    width, height = (round(v * DPI) for v in fig.get_size_inches())
    return {"title": title, "src": _encode(fig), "alt": alt, "width": width, "height": height, "note": note}


def _lines(ax, rows: list[dict], x: str, y: str, colour_of: Callable, style_of: Callable,
           colour_keys: list, style_keys: list, label_of: Callable, hollow: Callable | None = None,
           err: tuple[str, str] | None = None) -> int:
    """One line per (colour key, style key), points joined in x order; returns how many drawn."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get(x) is not None and r.get(y) is not None:
            groups.setdefault((colour_of(r), style_of(r)), []).append(r)
    for (ck, sk), grp in sorted(groups.items(), key=lambda kv: (colour_keys.index(kv[0][0]),
                                                                 style_keys.index(kv[0][1]))):
        grp.sort(key=lambda r: r[x])
        colour = PALETTE[colour_keys.index(ck) % len(PALETTE)]
        i = style_keys.index(sk)
        xs, ys = [r[x] for r in grp], [r[y] for r in grp]
        kw = dict(color=colour, marker=MARKERS[i % len(MARKERS)], linestyle=LINESTYLES[i % len(LINESTYLES)],
                  label=text(label_of(ck, sk)), markersize=6, linewidth=1.4)
        if err and all(r.get(err[0]) is not None and r.get(err[1]) is not None for r in grp):
            yerr = [[max(0.0, r[y] - r[err[0]]) for r in grp], [max(0.0, r[err[1]] - r[y]) for r in grp]]
            ax.errorbar(xs, ys, yerr=yerr, capsize=3, **kw)
        else:
            ax.plot(xs, ys, **kw)
        if hollow:
            hx = [r[x] for r in grp if hollow(r)]
            hy = [r[y] for r in grp if hollow(r)]
            if hx:
                ax.plot(hx, hy, linestyle="none", marker="o", markersize=13, markerfacecolor="none",
                        markeredgecolor="#444", markeredgewidth=1.2, label="ringed: fits in the last-level cache")
    return len(groups)


def _size_axis(ax, rows: list[dict]) -> None:
    """Log x axis by parameter count, each tick named as the tables name the model (125M, not
    the 128M parameters it has)."""
    ax.set_xscale("log")
    names = {r["params"]: r["model"] for r in rows if r.get("params")}
    sizes = sorted(names)
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: names.get(v, human(v))))
    ax.xaxis.set_minor_locator(NullLocator())
    if len(sizes) == 1:
        ax.set_xlim(sizes[0] / 2, sizes[0] * 2)
    if len(sizes) > 6:   # a dozen sizes (the paper's sweep) would overlap side by side
        ax.tick_params(axis="x", labelrotation=60)
    ax.set_xlabel("model (placed by parameter count, log scale)")


def _plain(v: float) -> str:
    return f"{v:g}"


def _log_y(ax) -> None:
    """Log y axis labelled in plain numbers (not 10^k, not 6x10^-1). Within a decade every
    minor tick is labelled, within two the 2s and 5s, so every plot has values to read."""
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    span = hi / lo if lo > 0 else math.inf

    def minor(v, _):
        lead = round(v / 10 ** math.floor(math.log10(v) + 1e-9), 6)
        return _plain(v) if span < 10 or (span < 150 and lead in (2.0, 5.0)) else ""

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _plain(v)))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def _threads_axis(ax, rows: list[dict]) -> None:
    threads = sorted({r["threads"] for r in rows if r.get("threads")})
    if threads and threads[-1] / threads[0] >= 8:
        ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(threads))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("threads")


def _threads_style(rows):
    return (lambda r: r["threads"]), sorted({r["threads"] for r in rows})


def _plot(fn):
    """Runs a plot function under the report's rc settings (mathtext off, sizes)."""
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return fn(*args, **kwargs)
    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


# --- one results directory --------------------------------------------------------------------

def _bars(r: dict, figure: str, prefix: str) -> dict:
    """The point with the 95% interval of its plotted figure as error-bar ends (PREFIX_ci95_low
    and _high); a bar of zero length where it has no interval."""
    lo, hi = r.get(f"{prefix}_ci95_low"), r.get(f"{prefix}_ci95_high")
    return {**r, "_ci_low": r[figure] if lo is None else lo, "_ci_high": r[figure] if hi is None else hi}


def _mean_interval(r: dict) -> dict:
    """tokens/s: the geometric mean over process means, with its interval."""
    return _bars(r, "tps_centre", "tps_mean")


def _speedup_interval(r: dict) -> dict:
    return _bars(r, "speedup", "speedup")


@_plot
def tps_vs_size(rows: list[dict], test: str) -> dict | None:
    rows = [_mean_interval(r) for r in rows if r["test"] == test and r.get("params") and r.get("tps_centre")]
    if not rows:
        return None
    fig, (ax,) = _new()
    series = _series_order(rows)
    style, threads = _threads_style(rows)
    _lines(ax, rows, "params", "tps_centre", lambda r: r["series"], style, series, threads,
           lambda s, t: f"{s}, {t} thread{'s' if t != 1 else ''}", err=("_ci_low", "_ci_high"))
    _size_axis(ax, rows)
    _log_y(ax)
    ax.set_ylabel("tokens/s (geometric mean over processes; log scale)")
    title = f"Tokens/s by model size: {workload_title(test)}"
    return _done(fig, [ax], title, f"{title}; lines per format and thread count, bars the 95% interval of the "
                                   "plotted figure over process means (none with fewer than 3 processes)")


@_plot
def speedup_vs_size(rows: list[dict], test: str, baseline: str) -> dict | None:
    rows = [_speedup_interval(r) for r in rows if r["test"] == test and r.get("params")
            and r.get("speedup") is not None and not is_baseline(r, baseline)]
    if not rows:
        return None
    fig, (ax,) = _new()
    style, threads = _threads_style(rows)
    _lines(ax, rows, "params", "speedup", lambda r: r["series"], style, _series_order(rows), threads,
           lambda s, t: f"{s}, {t} thread{'s' if t != 1 else ''}", err=("_ci_low", "_ci_high"))
    ax.axhline(1.0, color="#444", linewidth=1, linestyle="--", label=text(f"{baseline_label(baseline)} (1x)"))
    _size_axis(ax, rows)
    ax.set_ylim(bottom=0)
    ax.set_ylabel(text(f"speed-up over {baseline_label(baseline)} (x)"))
    title = f"Speed-up over {baseline_label(baseline)} by model size: {workload_title(test)}"
    return _done(fig, [ax], title, f"{title}; bars the 95% interval (paired over rounds where both ran in one)")


@_plot
def speedup_vs_threads(rows: list[dict], test: str, baseline: str) -> dict | None:
    rows = [r for r in rows if r["test"] == test and r.get("speedup") is not None
            and not is_baseline(r, baseline)]
    if len({r["threads"] for r in rows}) < 2:
        return None
    fig, (ax,) = _new()
    models = _models(rows)
    _lines(ax, rows, "threads", "speedup", lambda r: r["series"], lambda r: r["model"], _series_order(rows),
           models, lambda s, m: f"{s}, {m}")
    ax.axhline(1.0, color="#444", linewidth=1, linestyle="--", label=text(f"{baseline_label(baseline)} (1x)"))
    _threads_axis(ax, rows)
    ax.set_ylim(bottom=0)
    ax.set_ylabel(text(f"speed-up over {baseline_label(baseline)} (x)"))
    title = f"Speed-up over {baseline_label(baseline)} by thread count: {workload_title(test)}"
    return _done(fig, [ax], title, title)


@_plot
def tps_vs_threads(rows: list[dict], test: str) -> dict | None:
    rows = [_mean_interval(r) for r in rows if r["test"] == test and r.get("tps_centre")]
    if len({r["threads"] for r in rows}) < 2:
        return None
    fig, (ax,) = _new()
    models = _models(rows)
    _lines(ax, rows, "threads", "tps_centre", lambda r: r["series"], lambda r: r["model"], _series_order(rows),
           models, lambda s, m: f"{s}, {m}", err=("_ci_low", "_ci_high"))
    _threads_axis(ax, rows)
    _log_y(ax)
    ax.set_ylabel("tokens/s (geometric mean over processes; log scale)")
    title = f"Thread scaling: {workload_title(test)}"
    return _done(fig, [ax], title, f"{title}; tokens/s against threads per format and model, bars the 95% "
                                   "interval of the plotted figure")


@_plot
def energy(rows: list[dict], test: str, baseline: str | None, provenance: str, measured: bool) -> list[dict]:
    """J/token, and the energy reduction over the baseline, for the points of one provenance
    only: a measured and an estimated figure never share a plot."""
    rows = [r for r in rows if r["test"] == test and r.get("params") and r.get("j_per_token") is not None
            and r.get("energy_provenance") == provenance]
    if not rows:
        return []
    kind = "measured" if measured else "ESTIMATED"
    style, threads = _threads_style(rows)
    series = _series_order(rows)

    def label(s, t):
        return f"{s}, {t} thread{'s' if t != 1 else ''}"

    legend = f"{kind} figures"
    note = f"provenance: {provenance}"

    fig, (ax,) = _new()
    _lines(ax, rows, "params", "j_per_token", lambda r: r["series"], style, series, threads, label)
    _size_axis(ax, rows)
    _log_y(ax)
    ax.set_ylabel(f"J/token ({'measured' if measured else 'estimated'}; median; log scale)")
    title = f"Energy per token ({kind}): {workload_title(test)}"
    out = [_done(fig, [ax], title, f"{title}; {provenance}", legend_title=legend, note=note)]
    reduced = [{**r, "reduction_pct": 100.0 * r["energy_reduction"]} for r in rows
               if r.get("energy_reduction") is not None and not is_baseline(r, baseline)]
    if reduced:
        fig, (ax,) = _new()
        _lines(ax, reduced, "params", "reduction_pct", lambda r: r["series"], style, series, threads, label)
        _size_axis(ax, reduced)
        ax.set_ylim(min(0.0, min(r["reduction_pct"] for r in reduced) - 5), 100)   # a rise shows below 0
        ax.yaxis.set_major_formatter(PercentFormatter())
        ax.set_ylabel(text(f"1 - J/token / {baseline_label(baseline)}'s J/token (%)"))
        title = f"Energy reduction vs {baseline_label(baseline)} ({kind}): {workload_title(test)}"
        out.append(_done(fig, [ax], title, f"{title}; {provenance}", legend_title=legend, note=note))
    return out


@_plot
def bandwidth(rows: list[dict], test: str) -> dict | None:
    rows = [{**r, "bw_pct": 100.0 * r["bandwidth_fraction"]} for r in rows
            if r["test"] == test and r.get("params") and r.get("bandwidth_fraction") is not None]
    if not rows:
        return None
    fig, (ax,) = _new()
    style, threads = _threads_style(rows)
    _lines(ax, rows, "params", "bw_pct", lambda r: r["series"], style, _series_order(rows), threads,
           lambda s, t: f"{s}, {t} thread{'s' if t != 1 else ''}", hollow=lambda r: bool(r.get("fits_in_llc")))
    ax.axhline(100.0, color="#B00020", linewidth=1.2, linestyle="--", label="100%: read-bandwidth probe")
    _size_axis(ax, rows)
    ax.set_ylim(0, max(110.0, max(r["bw_pct"] for r in rows) * 1.08))
    ax.yaxis.set_major_formatter(PercentFormatter())
    ax.set_ylabel("of the probed read bandwidth (%)")
    title = f"Bandwidth used by {workload_title(test)}"
    return _done(fig, [ax], title, f"{title}; the dashed line is the read bandwidth probe (100%)")


# --- several machines -------------------------------------------------------------------------

@_plot
def machines_metric(per_machine: list[tuple[str, list[dict]]], test: str, metric: str) -> dict | None:
    """tokens/s ("tps_median") or bandwidth fraction ("bandwidth_fraction") by model size, one
    colour per machine and one marker and line style per format."""
    rows = [{**r, "machine": name, "_y": r[metric] * (100.0 if metric == "bandwidth_fraction" else 1.0)}
            for name, rs in per_machine for r in rs
            if r["test"] == test and r.get("params") and r.get(metric) is not None]
    if not rows:
        return None
    fig, (ax,) = _new()
    machines = [name for name, _ in per_machine]
    threads = {name: {r["threads"] for r in rows if r["machine"] == name} for name in machines}
    _lines(ax, rows, "params", "_y", lambda r: r["machine"], lambda r: r["series"], machines,
           _series_order(rows), lambda m, s: f"{m} ({'/'.join(map(str, sorted(threads[m])))} threads), {s}")
    _size_axis(ax, rows)
    if metric == "bandwidth_fraction":
        ax.axhline(100.0, color="#B00020", linewidth=1.2, linestyle="--", label="100%: each machine's probe")
        ax.set_ylim(0, max(110.0, max(r["_y"] for r in rows) * 1.08))
        ax.yaxis.set_major_formatter(PercentFormatter())
        ax.set_ylabel("of the probed read bandwidth (%)")
        title = f"Bandwidth used by {workload_title(test)}: each machine at its most threads"
    else:
        _log_y(ax)
        ax.set_ylabel("tokens/s (median; log scale)")
        title = f"Tokens/s per machine, {workload_title(test)}: each machine at its most threads"
    return _done(fig, [ax], title, title)
