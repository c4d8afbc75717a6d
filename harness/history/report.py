"""`history report`: the store's series, one per machine, configuration and point key, each
with its detected steps, as one static page (the report's template base, autoescape and plot
encoding: harness.report), and the table of steps, the largest first."""
from __future__ import annotations

import datetime
import math
from pathlib import Path

import jinja2
import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator

from harness.report import plots
from harness.report.render import environment
from harness.sweep.results import write_atomic

from . import steps as steps_mod

TEMPLATES = Path(__file__).resolve().parent / "templates"
Z95 = 1.959964   # the records' intervals are 95%: half-width / Z95 is a standard error
MAX_TICKS = 12


def series(points: list[dict]) -> list[dict]:
    """One series per (machine, config, key) of the ok points, a value per commit in commit order
    (the commit's date where the store knows it, else when it was measured). A commit measured
    more than once on a machine shows its newest run; the store keeps them all."""
    groups: dict[tuple, dict[str, dict]] = {}
    for p in points:
        if p["status"] != "ok" or not isinstance(p["median"], (int, float)) or not p["median"] > 0:
            continue
        by_commit = groups.setdefault((p["machine"], p["config"], p["key"]), {})
        old = by_commit.get(p["commit"])
        if old is None or (p["run_date"], p["run_id"]) > (old["run_date"], old["run_id"]):
            by_commit[p["commit"]] = p
    out = []
    for (machine, config, key), by_commit in sorted(groups.items()):
        entries = sorted(by_commit.values(), key=lambda p: (p["commit_date"] or p["run_date"], p["run_date"]))
        values = [e["median"] for e in entries]
        rel_se = [(e["ci_high"] - e["ci_low"]) / 2 / Z95 / e["median"]
                  if isinstance(e["ci_low"], (int, float)) and isinstance(e["ci_high"], (int, float)) else None
                  for e in entries]
        found = steps_mod.detect(values, rel_se)
        out.append({"machine": machine, "config": config, "key": key, "entries": entries,
                    "steps": [{"commit": entries[s.index]["commit"], "previous": entries[s.index - 1]["commit"],
                               "index": s.index, "before": s.before, "after": s.after, "change": s.change,
                               "date": entries[s.index]["commit_date"] or entries[s.index]["run_date"]}
                              for s in found]})
    return out


def step_table(all_series: list[dict]) -> list[dict]:
    rows = [{"machine": s["machine"], "config": s["config"], "key": s["key"], **st}
            for s in all_series for st in s["steps"]]
    return sorted(rows, key=lambda r: -abs(r["change"]))


def plot(s: dict) -> dict:
    """Median tokens/s per commit with its 95% interval as a band, each step a dashed line at
    the commit where it starts, labelled with its size."""
    entries = s["entries"]
    xs = list(range(len(entries)))
    with matplotlib.rc_context(plots.RC):
        fig = Figure(figsize=(6.8, 3.4), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        ys = [e["median"] for e in entries]
        lows = [e["ci_low"] if isinstance(e["ci_low"], (int, float)) else e["median"] for e in entries]
        highs = [e["ci_high"] if isinstance(e["ci_high"], (int, float)) else e["median"] for e in entries]
        ax.fill_between(xs, lows, highs, color=plots.PALETTE[0], alpha=0.2, linewidth=0, label="95% interval")
        ax.plot(xs, ys, color=plots.PALETTE[0], marker="o", markersize=4, linewidth=1.4, label="median")
        for st in s["steps"]:
            colour = plots.PALETTE[5] if st["change"] < 0 else plots.PALETTE[2]
            ax.axvline(st["index"] - 0.5, color=colour, linestyle="--", linewidth=1.3)
            ax.annotate(f"{st['change']:+.1%} at {st['commit'][:8]}", (st["index"] - 0.5, 1.0),
                        xycoords=("data", "axes fraction"), xytext=(4, -4), textcoords="offset points",
                        ha="left", va="top", color=colour, fontsize=11)
        every = max(1, math.ceil(len(xs) / MAX_TICKS))
        ticks = xs[::every]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.set_xticklabels([entries[i]["commit"][:7] for i in ticks], rotation=60, fontsize=9)
        ax.set_xlabel("commit (oldest first)")
        ax.set_ylabel("tokens/s")
        ax.set_ylim(bottom=0)
        fig.suptitle(plots.text(s["key"]), fontsize=12)
    width, height = (round(v * plots.DPI) for v in fig.get_size_inches())
    steps_alt = "; ".join(f"step {st['change']:+.1%} at {st['commit'][:12]}" for st in s["steps"]) or "no step"
    return {"title": s["key"], "src": plots._encode(fig), "width": width, "height": height, "note": None,
            "alt": f"tokens/s of {s['key']} on {s['machine']} over {len(entries)} commits; {steps_alt}"}


def context(store, branch: str | None = None) -> dict:
    all_series = series(store.points(branch))
    runs = [r for r in store.runs() if branch is None or r["branch"] == branch]
    machines: dict[str, list[dict]] = {}
    for s in all_series:
        machines.setdefault(s["machine"], []).append(s | {"figure": plot(s)})
    return {"title": "ternbench performance history" + (f": branch {branch}" if branch else ""),
            "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "store": str(store.file), "runs": len(runs), "branch": branch,
            "commits": len({r["commit_sha"] for r in runs}), "machines": machines,
            "steps": step_table(all_series), "series_count": len(all_series),
            "method": ("the segmentation of log tokens/s by exact dynamic programming (ruptures), the number of "
                       f"steps by the Schwarz criterion with {steps_mod.PENALTY} log n per step; a step must hold "
                       f"for {steps_mod.MIN_SIZE} commits")}


def summary(ctx: dict, path: Path) -> dict:
    return {"path": str(path), "runs": ctx["runs"], "commits": ctx["commits"], "series": ctx["series_count"],
            "steps": [{k: r[k] for k in ("machine", "config", "key", "commit", "previous", "before", "after",
                                         "change", "date")} for r in ctx["steps"]]}


def write(store, out_dir, branch: str | None = None) -> tuple[Path, dict]:
    ctx = context(store, branch)
    env = environment()
    env.loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(TEMPLATES), env.loader])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    write_atomic(path, env.get_template("history.html.j2").render(**ctx))
    return path, summary(ctx, path)
