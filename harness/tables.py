"""The tidy table of a sweep: one row per point, flat columns, speed-ups against the baseline
format. Rebuilt from points.jsonl whenever it changes; never edited by hand."""
from __future__ import annotations

import pandas as pd

from .models import default_head_format

COLUMNS = ["key", "status", "model", "format", "head_format", "variant", "threads", "workload", "tokens", "test",
           "n", "tps_mean", "tps_median", "tps_stdev", "tps_ci95_low", "tps_ci95_high", "s_per_token_median",
           "runtime_tps", "timing_vs_runtime", "weight_bytes", "bytes_per_token", "achieved_gbps", "probe_gbps",
           "bandwidth_fraction", "fits_in_llc", "setup_s", "pinned", "baseline", "speedup", "reason"]

MATCH = ("model", "variant", "threads", "test")   # what a point and its baseline point share


def _row(r: dict) -> dict:
    row = {k: r.get(k) for k in COLUMNS}
    if r["status"] == "ok":
        t = r["tokens_per_s"]
        row.update(n=t["n"], tps_mean=t["mean"], tps_median=t["median"], tps_stdev=t["stdev"],
                   tps_ci95_low=t["ci95_low"], tps_ci95_high=t["ci95_high"],
                   s_per_token_median=r["seconds_per_token"]["median"], runtime_tps=r["runtime_tokens_per_s"])
    return row


def points_frame(records: list[dict], baseline: str | None) -> pd.DataFrame:
    frame = pd.DataFrame([_row(r) for r in records], columns=COLUMNS)
    frame["baseline"] = baseline
    if baseline and not frame.empty:
        base = frame[(frame.status == "ok") & (frame.format == baseline)
                     & (frame.head_format == default_head_format(baseline))]
        ref = {tuple(row[k] for k in MATCH): row["tps_median"] for _, row in base.iterrows()}
        frame["speedup"] = [
            row["tps_median"] / ref[k] if row["status"] == "ok" and (k := tuple(row[c] for c in MATCH)) in ref
            else None
            for _, row in frame.iterrows()]
    return frame
