"""What `ternbench compare` shows: several results directories (one per machine) side by side.

Points match on model, format, head format, threads and test, not on the full key: the kernel
variant is the machine's (avx512vnni on one CPU, neon on another), so each cell shows its own.
Ratios are against the first machine. Energy ratios are taken only between like figures: two
measurements of the same domains (package + DRAM is not package alone), or two estimates made by
the same model with the same parameters."""
from __future__ import annotations

import datetime
import math
import re

from harness.measure import stats
from harness.measure.fingerprint import cpu_identity

from . import plots, points, provenance
from .single import claims_section

MATCH = ("model", "format", "head_format", "threads", "test")


def match_key(r: dict) -> tuple:
    return tuple(r.get(k) for k in MATCH)


def _labels(results_list) -> list[str]:
    """Directory names, numbered when two are the same."""
    names = [r.path.resolve().name or str(r.path) for r in results_list]
    return [n if names.count(n) == 1 else f"{n} #{i + 1}" for i, n in enumerate(names)]


def _index(rows: list[dict], best_variant) -> tuple[dict, list[dict]]:
    """match key -> row. A sweep over several variants has several rows per match key: the
    runtime's best variant is compared, the others are listed as not compared."""
    index, extra = {}, []
    for r in rows:
        k = match_key(r)
        if k in index:
            keep, drop = (r, index[k]) if r.get("variant") == best_variant else (index[k], r)
            index[k] = keep
            extra.append(drop)
        else:
            index[k] = r
    return index, extra


_DOMAINS = re.compile(r"package|dram|uncore|core|psys")


def meter_domains(provenance) -> frozenset:
    """What a measurement covers (package, dram, ...), whatever the backend or socket count."""
    return frozenset(_DOMAINS.findall(provenance or ""))


def like_energy(a: dict, b: dict) -> bool:
    """Two J/token figures share a ratio only when they were obtained alike: two measurements of
    the same domains (package + DRAM against package alone is not like), or two identical
    estimates."""
    if a.get("j_per_token") is None or b.get("j_per_token") is None:
        return False
    if a.get("energy_measured") is True and b.get("energy_measured") is True:
        da, db = meter_domains(a.get("energy_provenance")), meter_domains(b.get("energy_provenance"))
        return bool(da) and da == db
    return a.get("energy_provenance") is not None and a.get("energy_provenance") == b.get("energy_provenance")


def _interval(lo, hi) -> tuple | None:
    def finite(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    return (lo, hi) if finite(lo) and finite(hi) else None


def _across(r: dict, first: dict) -> stats.Ratio | None:
    """Tokens/s on this machine over the first's: two machines' processes are independent
    samples (nothing pairs them), so the interval is the unpaired one; records without process
    means give the ratio of medians and no interval."""
    a, b = r.get("process_tps"), first.get("process_tps")
    if a and b and min(a) > 0 and min(b) > 0:
        return stats.unpaired_ratio(a, b)
    if first.get("tps_median"):
        return stats.Ratio(r["tps_median"] / first["tps_median"], None, None, 0, "ratio of medians")
    return None


def _cell(r: dict | None, first: dict | None, skipped: dict) -> dict:
    if r is None:
        return {"status": "missing",
                "reason": f"skipped: {skipped['reason']}" if skipped.get("reason") else "not in this sweep"}
    if r["status"] != "ok":
        return {"status": "failed", "reason": f"failed: {r.get('reason') or 'no reason recorded'}",
                "variant": r.get("variant")}
    base_ok = first is not None and first["status"] == "ok"
    across = _across(r, first) if base_ok else None
    return {"status": "ok", "variant": r.get("variant"), "tps": r["tps_centre"],
            "ci": _interval(r.get("tps_mean_ci95_low"), r.get("tps_mean_ci95_high")), "n": r.get("n"),
            "ci_note": r.get("tps_interval_note") or "no interval",
            "unstable": r.get("unstable"),
            "per_thread": r["tps_centre"] / r["threads"] if r.get("threads") else None,
            "ratio": across.value if across else None,
            "ratio_ci": _interval(across.low, across.high) if across and r is not first else None,
            "speedup": r.get("speedup"), "speedup_ci": _interval(r.get("speedup_ci95_low"), r.get("speedup_ci95_high")),
            "j": r.get("j_per_token"), "estimated": r.get("energy_measured") is False,
            "j_ratio": (r["j_per_token"] / first["j_per_token"]
                        if base_ok and like_energy(r, first) and first["j_per_token"] > 0 else None),
            "bw": r.get("bandwidth_fraction"), "fits_in_llc": r.get("fits_in_llc")}


def _table(indexes, skipped_by_machine, keys) -> list[dict]:
    out = []
    for k in keys:
        present = [ix.get(k) for ix in indexes]
        any_row = next(r for r in present if r is not None)
        cells = [_cell(r, present[0], skipped_by_machine[i].get(k, {})) for i, r in enumerate(present)]
        out.append({"model": any_row["model"], "params": any_row.get("params"), "format": any_row["format"],
                    "head_format": any_row.get("head_format"), "threads": any_row.get("threads"),
                    "test": any_row["test"], "series": any_row["series"], "cells": cells})
    return out


def _top(index: dict) -> dict[tuple, dict]:
    """A machine's ok points at its highest thread count per model/format/head/test: what "all
    cores" gives on each machine, the comparison a buyer makes."""
    top: dict[tuple, dict] = {}
    for (m, f, h, t, test), r in index.items():
        if r["status"] == "ok" and ((m, f, h, test) not in top or t > top[(m, f, h, test)]["threads"]):
            top[(m, f, h, test)] = r
    return top


def _max_threads_table(tops: list[dict]) -> list[dict]:
    keys = sorted({k for top in tops for k in top},   # thread counts differ here: not part of the order
                  key=lambda k: points.sort_key({**next(top[k] for top in tops if k in top), "threads": 0}))
    out = []
    for k in keys:
        present = [top.get(k) for top in tops]
        if sum(r is not None for r in present) < 2:
            continue
        any_row = next(r for r in present if r is not None)
        out.append({"model": any_row["model"], "params": any_row.get("params"), "format": any_row["format"],
                    "head_format": any_row.get("head_format"), "test": any_row["test"],
                    "series": any_row["series"],
                    "cells": [_cell(r, present[0], {}) | {"threads": r["threads"]} if r else
                              {"status": "missing", "reason": "not in this sweep"} for r in present]})
    return out


def _machine(label: str, res, rows: list[dict]) -> dict:
    fp = res.fingerprint if isinstance(res.fingerprint, dict) else {}
    ident = cpu_identity(fp)   # "AMD EPYC" names a Zen 4 and a Zen 5: the ids tell them apart
    return {"label": label, "path": str(res.path), "name": res.name,
            "cpu": provenance.cpu_name(fp) + (f" ({ident})" if ident else ""),
            "cores": provenance.cores(fp), "virtualisation": provenance.virtualisation(fp),
            "rows": provenance.fingerprint_rows(res.fingerprint, res.manifest), "energy": provenance.energy_summary(res),
            "points": len(rows), "ok": len(points.ok(rows)), "baseline": res.baseline,
            "best_variant": (fp.get("runtime") or {}).get("best_variant") if isinstance(fp.get("runtime"), dict)
            else None}


def _only_one(keys, indexes, skipped_by_machine, labels) -> list[dict]:
    """Points one machine has: listed, with why the others lack them when their plan says."""
    out = []
    for k in keys:
        i = next(i for i, ix in enumerate(indexes) if k in ix)
        r = indexes[i][k]
        elsewhere = [f"{labels[j]}: skipped ({skipped_by_machine[j][k].get('reason')})"
                     for j in range(len(indexes)) if j != i and k in skipped_by_machine[j]]
        out.append({"machine": labels[i], "key": r["key"], "status": r["status"], "reason": r.get("reason"),
                    "elsewhere": elsewhere})
    return out


def context(results_list, claims=None) -> dict:
    """claims: per machine, (verdict dicts, or None and the error) of its own results; None: not judged."""
    labels = _labels(results_list)
    all_rows = [points.rows(r) for r in results_list]
    for rows in all_rows:
        for r in rows:   # the variant is shown per machine; it is no part of a series here
            r["series"] = points.series_label(r, show_variant=False)
    machines = [_machine(label, res, rows) for label, res, rows in zip(labels, results_list, all_rows)]
    for m, judged in zip(machines, claims or [None] * len(machines)):
        m["claims"] = claims_section(*judged) if judged else None
    indexes, not_compared = [], []
    for m, rows in zip(machines, all_rows):
        index, extra = _index(rows, m["best_variant"])
        indexes.append(index)
        not_compared += [{"machine": m["label"], "key": r["key"], "why": "another kernel variant of a compared point"}
                         for r in extra]
    skipped_by_machine = [{match_key(s): s for s in res.skipped or [] if isinstance(s, dict)} for res in results_list]
    counts: dict[tuple, int] = {}
    for ix in indexes:
        for k in ix:
            counts[k] = counts.get(k, 0) + 1
    order = sorted(counts, key=lambda k: points.sort_key(next(ix[k] for ix in indexes if k in ix)))
    tops = [_top(ix) for ix in indexes]
    per_machine = [(label, list(top.values())) for label, top in zip(labels, tops)]
    tests = points.tests([r for rows in all_rows for r in rows])
    figures = {
        "tps": [plots.machines_metric(per_machine, t, "tps_median") for t in tests],
        "bw": [plots.machines_metric(per_machine, t, "bandwidth_fraction") for t in tests if t.startswith("tg")],
    }
    return {
        "kind": "compare",
        "title": "ternbench compare: " + " vs ".join(labels),
        "labels": labels, "machines": machines, "first": labels[0],
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "shared": _table(indexes, skipped_by_machine, [k for k in order if counts[k] >= 2]),
        "top": _max_threads_table(tops),
        "only_one": _only_one([k for k in order if counts[k] == 1], indexes, skipped_by_machine, labels),
        "not_compared": not_compared,
        "figures": {k: [f for f in v if f] for k, v in figures.items()},
        "energy_kinds": sorted({m["energy"]["label"] for m in machines}),
    }


def summary(ctx: dict, path) -> dict:
    """What `ternbench compare --json` prints."""
    return {"path": str(path),
            "machines": [{"label": m["label"], "results": m["path"], "cpu": m["cpu"], "points": m["points"],
                          "ok": m["ok"], "energy": m["energy"]["label"],
                          "claims": [{"id": c["id"], "verdict": c["verdict"], "line": c["line"]}
                                     for c in m["claims"]["items"]] if m["claims"] else None,
                          "claims_error": m["claims"]["error"] if m["claims"] else None} for m in ctx["machines"]],
            "shared_points": len(ctx["shared"]), "at_most_threads": len(ctx["top"]),
            "only_one_machine": len(ctx["only_one"]), "not_compared": len(ctx["not_compared"])}
