"""What `ternbench report` shows, as plain data for the template: the claim verdicts, the
machine, the plots of each section (or why a section has no data) and the full tables."""
from __future__ import annotations

import datetime

from harness.claims.evaluate import BASELINE_VS_LLAMACPP_MIN, NOT_TESTABLE
from harness.sweep import tables

from . import plots, points, provenance

VERDICTS = {  # status -> (css class, sign): the text is always shown too, never colour alone
    "reproduced": ("ok", "\u2713"), "not reproduced": ("bad", "\u2717"),
    "partly": ("part", "\u25d0"), "not testable here": ("na", "\u2013"),
    "exceeds the published range": ("part", "\u2191"), "unreliable": ("bad", "!"),
}
CLAIM_FIELDS = ("id", "title", "source", "statement", "verdict", "status", "measured", "range", "differences", "why",
                "programs", "claimed_programs", "checks", "per_size", "short", "conditions", "line")


def section(figures, no_data: str, notes=()) -> dict:
    figures = [f for f in figures if f]
    return {"figures": figures, "no_data": None if figures else no_data, "notes": list(notes)}


def _list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else ([value] if value else [])


def claims_section(claims: list[dict] | None, error: str | None) -> dict:
    items = []
    for c in claims or []:
        c = {k: (c.get(k) if isinstance(c, dict) else None) for k in CLAIM_FIELDS}
        verdict = str(c["verdict"] or "unknown")
        css, sign = VERDICTS.get(str(c["status"] or verdict), ("na", "?"))
        c.update(verdict=verdict, css=css, sign=sign, differences=[str(d) for d in _list(c["differences"])],
                 checks=[x for x in _list(c["checks"]) if isinstance(x, dict)],
                 per_size=[x for x in _list(c["per_size"]) if isinstance(x, dict)])
        items.append(c)
    counts = {v: sum(1 for c in items if c["verdict"] == v) for v in dict.fromkeys(c["verdict"] for c in items)}
    return {"items": items, "error": error, "counts": counts, "lines": verdict_lines(items)}


def verdict_lines(items: list[dict]) -> list[dict]:
    """The first screen's verdicts, one line per claim, except that claims not testable here for
    the same reason share one line (three aarch64 claims on an x86 machine): each still shows
    its published range and the reason, in fewer lines, so the tables below start on screen."""
    groups: dict = {}
    for c in items:
        groups.setdefault(c["short"] if c["status"] == NOT_TESTABLE and c["short"] else id(c), []).append(c)
    lines = []
    for group in groups.values():     # each at its first claim's place
        c = group[0]
        text = (f"{c['verdict']}: " + ", ".join(f"{g['id']} (published {g['range']})" for g in group) + f"; {c['short']}"
                if len(group) > 1 else c["line"] or c["verdict"])
        lines.append({"css": c["css"], "sign": c["sign"], "text": text})
    return lines


def probe_lines(ok_rows: list[dict]) -> list[str]:
    """The read-bandwidth probe per thread count, as the points recorded it."""
    by_threads: dict[int, list[float]] = {}
    for r in ok_rows:
        if r.get("probe_gbps") is not None:
            by_threads.setdefault(r["threads"], []).append(r["probe_gbps"])
    out = []
    for t, v in sorted(by_threads.items()):
        span = f"{min(v):.1f}" if max(v) - min(v) < 0.05 else f"{min(v):.1f}-{max(v):.1f}"
        out.append(f"{t} thread{'s' if t != 1 else ''}: {span} GB/s")
    return out


def _speed(ok_rows, tests) -> dict:
    return {"pp": section([plots.tps_vs_size(ok_rows, t) for t in tests if t.startswith("pp")],
                          "no data: no prompt-processing point finished with a known model size"),
            "tg": section([plots.tps_vs_size(ok_rows, t) for t in tests if t.startswith("tg")],
                          "no data: no generation point finished with a known model size")}


def _speedups(ok_rows, tests, baseline, label) -> list[dict]:
    no_base = (f"no data: no {label} baseline point finished" if baseline
               else "no data: this sweep names no baseline format")
    one_thread = "no data: every point ran at the same thread count"
    threads = {r["threads"] for r in ok_rows}
    return [
        {"heading": f"Speed-up over {label or 'the baseline'} by model size",
         **section([plots.speedup_vs_size(ok_rows, t, baseline) for t in tests], no_base)},
        {"heading": f"Speed-up over {label or 'the baseline'} by thread count",
         **section([plots.speedup_vs_threads(ok_rows, t, baseline) for t in tests],
                   one_thread if len(threads) < 2 else no_base)},
        {"heading": "Thread scaling",
         **section([plots.tps_vs_threads(ok_rows, t) for t in tests], one_thread if len(threads) < 2 else
                   "no data: no point finished")},
    ]


def _energy(ok_rows, tests, baseline, energy) -> dict:
    """One group per provenance, each plotted on its own: a ratio never mixes a measured and an
    estimated figure (tables.py leaves such reductions empty too)."""
    groups = {}
    for r in ok_rows:
        if r.get("j_per_token") is not None and r.get("energy_provenance"):
            groups.setdefault(r["energy_provenance"], r.get("energy_measured") is True)
    figures = [f for prov, measured in groups.items() for t in tests
               for f in plots.energy(ok_rows, t, baseline, prov, measured)]
    notes = []
    if len(groups) > 1:
        notes.append("The points carry energy figures of more than one provenance; each is plotted on its own "
                     "and no ratio is taken across them.")
    if energy.get("backend") == "model":
        notes.append("The model backend charges every format the same watts per busy core, so its energy "
                     "reduction is close to 1 - 1/speed-up: it restates the speed-up. Only a measuring backend "
                     "can show whether ternary kernels also draw less power.")
    if groups and not any(groups.values()):
        notes.append("Every energy figure here is an ESTIMATE, not a measurement.")
    reason = ("no data: this sweep recorded no energy figures" if not energy.get("available") else
              "no data: no finished point has an energy figure and a known model size")
    return section(figures, reason, notes)


def _bandwidth(ok_rows, tests, baseline) -> dict:
    tg = [r for r in ok_rows if r["workload"] == "tg" and r.get("bandwidth_fraction") is not None]
    notes = []
    base = [r["bandwidth_fraction"] for r in tg if baseline and plots.is_baseline(r, baseline)]
    if base:
        notes.append(f"The {baseline} baseline's generation points reach {100 * min(base):.0f}-"
                     f"{100 * max(base):.0f}% of the probed read bandwidth. A baseline far below the "
                     "bandwidth limit would inflate every speed-up over it (well-tuned decoders reach 80-90%).")
    if any(r.get("fits_in_llc") for r in tg):
        notes.append("Ringed points: the model's weights fit in the last-level cache, so the figure is not a "
                     "DRAM figure and may exceed 100%.")
    figs = [plots.bandwidth(ok_rows, t) for t in tests if t.startswith("tg")]
    return section(figs, "no data: no generation point with a bandwidth figure and a known model size", notes)


def _entries(items) -> list[dict]:
    """plan.json entries as dicts with a key and a reason, whatever an older sweep wrote."""
    return [i if isinstance(i, dict) else {"key": str(i)} for i in items or []]


def when(results) -> str:
    """When the sweep ran, and for how long, from its records."""
    started = [r["started"] for r in results.records if isinstance(r.get("started"), (int, float))]
    finished = [r["finished"] for r in results.records if isinstance(r.get("finished"), (int, float))]
    if not started or not finished:
        return "when: unknown (the records carry no times)"
    utc = datetime.timezone.utc
    a, b = datetime.datetime.fromtimestamp(min(started), utc), datetime.datetime.fromtimestamp(max(finished), utc)
    minutes = (max(finished) - min(started)) / 60
    end = b.strftime("%H:%M") if a.date() == b.date() else b.strftime("%Y-%m-%d %H:%M")
    return f"measured {a.strftime('%Y-%m-%d %H:%M')}-{end} UTC ({minutes:.0f} min)"


def glance(ok_rows: list[dict], tests: list[str], baseline: str | None) -> list[dict]:
    """One compact table per test, model x engine and format x threads: what the first screen
    must answer. Every figure has its 95% interval or the reason it has none; the baseline row
    says it is the baseline."""
    out = []
    for test in tests:
        rows = [r for r in ok_rows if r["test"] == test]
        measured = any(r.get("energy_measured") is True for r in rows)
        out.append({"test": test, "energy": measured, "rows": [{
            "model": r["model"], "format": r["series"], "threads": r["threads"], "tps": r.get("tps_centre"),
            "tps_low": r.get("tps_mean_ci95_low"), "tps_high": r.get("tps_mean_ci95_high"),
            "tps_note": r.get("tps_interval_note"),
            "baseline": plots.is_baseline(r, baseline), "speedup": r.get("speedup"),
            "speedup_low": r.get("speedup_ci95_low"), "speedup_high": r.get("speedup_ci95_high"),
            "speedup_note": r.get("speedup_note") or ("no baseline point at this model, threads and test"
                                                      if baseline else "this sweep names no baseline"),
            "speedup_method": r.get("speedup_method"),
            "ceiling": r.get("speedup_ceiling"), "baseline_fraction": r.get("baseline_bandwidth_fraction"),
            "above_ceiling": r.get("above_ceiling"), "fraction": r.get("bandwidth_fraction"),
            "j_per_token": r.get("j_per_token") if r.get("energy_measured") is True else None,
            "reduction": r.get("energy_reduction") if r.get("energy_measured") is True else None,
            "reduction_low": r.get("energy_reduction_ci95_low"), "reduction_high": r.get("energy_reduction_ci95_high"),
            "engine": points.engine_label(r.get("engine")), "unstable": r.get("unstable"),
            "rounds": r.get("processes"), "extra_rounds": _extra(r)}
            for r in rows]})
    return out


def side_by_side(ok_rows: list[dict], records: dict[str, dict], tests: list[str]) -> dict | None:
    """The published claims' programs side by side, for the first screen of a sweep that ran
    more than one engine: at the model and threads where the most engines ran (then the largest
    model, the most threads), llama.cpp's F16 (the claims' baseline) and each engine's fastest
    ternary format, each with its ratio to that F16, paired by round when they shared rounds."""
    def engine(r):
        return r.get("engine") or "ternbench"

    places: dict[tuple, set] = {}
    for r in ok_rows:
        places.setdefault((r["model"], r["threads"]), set()).add(engine(r))
    if not places or max(len(e) for e in places.values()) < 2:
        return None
    size = {r["model"]: r.get("params") or 0 for r in ok_rows}
    model, threads = max(places, key=lambda k: (len(places[k]), size[k[0]], k[1]))
    here = [r for r in ok_rows if (r["model"], r["threads"]) == (model, threads)]
    tests = [t for t in tests if any(r["test"] == t for r in here)]
    ref = {r["test"]: r for r in here if engine(r) == "llamacpp" and r["format"] == "f16"}
    # each engine's fastest ternary format, by the first generation test (the claims' figure)
    judge_by = next((t for t in tests if t.startswith("tg")), tests[0])
    chosen = [ref[judge_by]] if judge_by in ref else []
    for e in sorted({engine(r) for r in here}):
        candidates = [r for r in here if engine(r) == e and r["format"] != "f16" and r["test"] == judge_by]
        if candidates:
            chosen.append(max(candidates, key=lambda r: r.get("tps_centre") or 0))

    def same(a, b):
        return engine(a) == engine(b) and a["format"] == b["format"] and a.get("head_format") == b.get("head_format")

    rows = []
    for c in chosen:
        cells = [next((_beside(r, ref.get(t), records) for r in here if r["test"] == t and same(r, c)), None)
                 for t in tests]
        label = c["series"] if engine(c) != "ternbench" else f"{points.engine_label(engine(c))} {c['series']}"
        rows.append({"label": label, "reference": c is ref.get(judge_by), "cells": cells})
    # the reference first, then the fastest at the test the formats were chosen by
    at = tests.index(judge_by)
    rows.sort(key=lambda r: (not r["reference"], -((r["cells"][at] or {}).get("tps") or 0)))
    # why a figure has no interval, once under the table rather than in every cell
    notes = sorted({n for r in rows for c in r["cells"] if c for n in (c["note"], c["ratio"] and c["ratio"].note) if n})
    return {"model": model, "threads": threads, "tests": tests, "rows": rows, "has_reference": bool(ref),
            "judged_by": judge_by, "notes": notes}


def _beside(r: dict, ref: dict | None, records: dict[str, dict]) -> dict:
    """One cell of the side-by-side table: tokens/s with its interval, and its ratio to llama.cpp's
    F16, computed as the speed-up tables compute theirs."""
    return {"tps": r.get("tps_centre"), "low": r.get("tps_mean_ci95_low"), "high": r.get("tps_mean_ci95_high"),
            "note": None if r.get("tps_mean_ci95_low") is not None else r.get("tps_interval_note") or "no interval",
            "ratio": None if ref is None or ref is r else
            tables.ratio_between(records, r, ref, "process_tokens_per_s", "tps_median")}


def _extra(r: dict) -> int:
    planned = r.get("rounds_planned")
    return max(0, (r.get("processes") or 0) - planned) if planned else 0


def measured_energy(ok_rows: list[dict]) -> list[str]:
    """The measured energy on the first screen: its provenance and the power it read."""
    out = []
    for prov in sorted({r["energy_provenance"] for r in ok_rows if r.get("energy_measured") is True}):
        watts = [r["watts"] for r in ok_rows if r.get("energy_provenance") == prov and r.get("watts")]
        span = f"{min(watts):.1f}" if max(watts) - min(watts) < 0.05 else f"{min(watts):.1f}-{max(watts):.1f}"
        out.append(f"{prov}; {span} W average over the timed passes")
    return out


def fairness(ok_rows: list[dict]) -> list[dict]:
    """ternbench's f16 beside llama.cpp's F16 at each model, threads and test both ran: is the
    baseline ternbench divides by as fast as the one the published claims used?"""
    def key(r):
        return r["model"], r["threads"], r["test"]

    theirs = {key(r): r for r in ok_rows if r.get("engine") == "llamacpp" and r["format"] == "f16"}
    out = []
    for r in ok_rows:
        other = theirs.get(key(r))
        if other is None or (r.get("engine") or "ternbench") != "ternbench" or r["format"] != "f16" \
                or r.get("head_format") != "f16":
            continue
        out.append({"model": r["model"], "threads": r["threads"], "test": r["test"], "variant": r["variant"],
                    "ours": r.get("tps_median"), "theirs": other.get("tps_median"),
                    "ratio": r["tps_median"] / other["tps_median"] if other.get("tps_median") else None,
                    "ours_fraction": r.get("bandwidth_fraction"), "theirs_fraction": other.get("bandwidth_fraction"),
                    "theirs_version": other.get("engine_version"), "theirs_function": other.get("engine_function")})
    return sorted(out, key=lambda f: (f["test"], f["model"], f["threads"]))


def context(results, claims: list[dict] | None = None, claims_error: str | None = None) -> dict:
    rows = points.rows(results)
    ok_rows = points.ok(rows)
    failed = [r for r in rows if r["status"] != "ok"]
    tests = points.tests(rows)
    baseline = results.baseline
    energy = provenance.energy_summary(results)
    unsized = sorted({r["model"] for r in ok_rows if r["params"] is None})
    size_note = ([f"Not on the model-size plots (not a preset, so no parameter count): {', '.join(unsized)}."]
                 if unsized else [])
    not_finished = points.not_finished(results, rows)
    return {
        "kind": "report",
        "title": f"ternbench report: {results.name}",
        "name": results.name, "path": str(results.path), "baseline": points.baseline_label(baseline),
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "counts": {"ok": len(ok_rows), "failed": len(failed), "skipped": len(results.skipped),
                   "not_finished": len(not_finished)},
        "claims": claims_section(claims, claims_error),
        "when": when(results),
        "glance": glance(ok_rows, tests, baseline),
        "side_by_side": side_by_side(ok_rows, {r["key"]: r for r in results.records}, tests),
        "measured_energy": measured_energy(ok_rows),
        "fairness": fairness(ok_rows),
        "engine_functions": sorted({f"{r['model']}: {r['engine_function']}" for r in ok_rows if r.get("engine_function")}),
        "fairness_min": BASELINE_VS_LLAMACPP_MIN,
        "system": {"rows": provenance.fingerprint_rows(results.fingerprint, results.manifest), "energy": energy, "probe": probe_lines(ok_rows),
                   "config": results.config_text},
        "speed": _speed(ok_rows, tests),
        "size_notes": size_note,
        "speedups": _speedups(ok_rows, tests, baseline, points.baseline_label(baseline)),
        "energy": _energy(ok_rows, tests, baseline, energy),
        "bandwidth": _bandwidth(ok_rows, tests, baseline),
        "tables": {"points": ok_rows, "failed": failed, "skipped": _entries(results.skipped),
                   "not_finished": _entries(not_finished),
                   "provenances": sorted({r["energy_provenance"] for r in ok_rows if r.get("energy_provenance")})},
    }


def summary(ctx: dict, path) -> dict:
    """What `ternbench report --json` prints."""
    return {"path": str(path), "results": ctx["path"], "points": ctx["counts"],
            "claims": [{k: c[k] for k in CLAIM_FIELDS} for c in ctx["claims"]["items"]],
            "claims_error": ctx["claims"]["error"]}
