"""The tidy table of a sweep: one row per point, flat columns, speed-ups against the baseline
format. Rebuilt from points.jsonl whenever it changes; never edited by hand."""
from __future__ import annotations

import pandas as pd

from harness.models.sizes import default_head_format
from runtime.tuning import describe

# How records written before these fields were measured: an f32 KV cache, and a probe pass
# that kept the fastest of three read patterns.
OLD_KV_CACHE = "f32"
OLD_REFERENCE = "fastest of three read patterns (results before the plain-read yardstick)"

COLUMNS = ["key", "status", "engine", "engine_version", "model", "format", "head_format", "kv_cache", "variant", "threads", "workload", "tokens",
           "test",
           "n", "tps_mean", "tps_median", "tps_stdev", "tps_ci95_low", "tps_ci95_high", "processes",
           "tps_process_ci95_low", "tps_process_ci95_high", "tps_mean_ci95_low", "tps_mean_ci95_high",
           "s_per_token_median",
           "runtime_tps", "timing_vs_runtime", "weight_bytes", "bytes_per_token", "achieved_gbps", "probe_gbps",
           "bandwidth_fraction", "bandwidth_reference", "tuning", "fits_in_llc", "setup_s", "pinned", "baseline",
           "speedup", "speedup_ci95_low", "speedup_ci95_high", "speedup_ceiling", "above_ceiling",
           "baseline_bandwidth_fraction", "baseline_vs_llamacpp", "unstable", "steal_fraction", "probe_drift",
           "j_per_token", "j_per_token_above_idle", "tokens_per_j", "watts", "energy_measured", "energy_provenance",
           "energy_reduction", "energy_reduction_above_idle", "energy_reduction_basis", "reason"]

MATCH = ("model", "variant", "threads", "test")   # what a point and its baseline point share
ENGINE = "ternbench"    # the engine of records written before engines existed


def alternatives(baseline: str | None) -> list[str]:
    """A baseline's alternatives in order of preference: "llamacpp:f16,f16" is llama.cpp's f16
    where it ran, else each engine's own f16."""
    return [b for b in (baseline or "").split(",") if b]


def split_baseline(baseline: str) -> tuple[str | None, str]:
    """("llamacpp", "f16") for "llamacpp:f16": every point against that engine's f16; (None, "f16")
    for "f16": each engine's points against its own f16."""
    engine, _, fmt = baseline.rpartition(":")
    return engine or None, fmt


def _matcher(frame: pd.DataFrame, baseline: str):
    """(the key a row and its baseline row share, baseline rows by that key) for one alternative:
    same model, threads and test; and, for a baseline within each engine, the same engine and variant."""
    engine, fmt = split_baseline(baseline)
    ok = frame[(frame.status == "ok") & (frame.format == fmt)]
    if engine:
        key = lambda row: (row["model"], row["threads"], row["test"])  # noqa: E731
        ok = ok[ok.engine == engine]
    else:
        key = lambda row: (row["engine"], *(row[c] for c in MATCH))  # noqa: E731
        # ternbench runs a format with several heads: its baseline is the format's default head
        ok = ok[(ok.engine != "ternbench") | (ok.head_format == default_head_format(fmt))]
    return key, {key(row): row for _, row in ok.iterrows()}


def _baseline_pairs(frame: pd.DataFrame, baseline: str) -> tuple[list, list]:
    """Each row with its baseline row (or None), and the alternative that gave it."""
    matchers = [(alt, *_matcher(frame, alt)) for alt in alternatives(baseline)]
    pairs, used = [], []
    for _, row in frame.iterrows():
        found = next(((alt, ref[key(row)]) for alt, key, ref in matchers if key(row) in ref), (None, None))
        pairs.append((row, found[1]))
        used.append(found[0])
    return pairs, used


def _row(r: dict) -> dict:
    row = {k: r.get(k) for k in COLUMNS}
    row["engine"] = r.get("engine", ENGINE)
    row["engine_version"] = (r.get("engine_build") or {}).get("version")
    row["tuning"] = describe(r["tuning"]) if r.get("tuning") else None
    if r["status"] == "ok":
        row["kv_cache"] = r.get("kv_cache", OLD_KV_CACHE)
        row["bandwidth_reference"] = r.get("bandwidth_reference", OLD_REFERENCE)
        t = r["tokens_per_s"]
        row.update(n=t["n"], tps_mean=t["mean"], tps_median=t["median"], tps_stdev=t["stdev"],
                   tps_ci95_low=t["ci95_low"], tps_ci95_high=t["ci95_high"],
                   s_per_token_median=r["seconds_per_token"]["median"], runtime_tps=r["runtime_tokens_per_s"])
        p = r.get("tokens_per_s_processes") or {}
        row.update(tps_process_ci95_low=p.get("ci95_low"), tps_process_ci95_high=p.get("ci95_high"))
        # the interval of the mean every report and ratio uses: over process means when a point ran
        # several processes (values within one process are not independent), else over its values
        lo, hi = p.get("ci95_low"), p.get("ci95_high")
        if lo is None or hi is None or lo <= 0:
            lo, hi = t["ci95_low"], t["ci95_high"]
        row.update(tps_mean_ci95_low=lo, tps_mean_ci95_high=hi)
        c = r.get("conditions") or {}
        row.update(unstable="; ".join(c.get("unstable") or []) or None, steal_fraction=c.get("steal_fraction"),
                   probe_drift=c.get("probe_drift"))
        e = r.get("energy")
        if e and "error" not in e:
            row.update(j_per_token=e["j_per_token"], j_per_token_above_idle=e["j_per_token_above_idle"],
                       tokens_per_j=e["tokens_per_j"], watts=e["watts"], energy_measured=e["measured"],
                       energy_provenance=e["provenance"])
    return row


def points_frame(records: list[dict], baseline: str | None) -> pd.DataFrame:
    frame = pd.DataFrame([_row(r) for r in records], columns=COLUMNS)
    frame["baseline"] = baseline
    if baseline and not frame.empty:
        pairs, used = _baseline_pairs(frame, baseline)
        # the baseline each point was divided by (with several alternatives, the first that ran)
        frame["baseline"] = used if len(alternatives(baseline)) > 1 else baseline
        frame["speedup"] = [row["tps_median"] / b["tps_median"] if b is not None and row["status"] == "ok" else None
                            for row, b in pairs]
        bounds = [_speedup_interval(row, b) for row, b in pairs]
        frame["speedup_ci95_low"] = [lo for lo, _ in bounds]
        frame["speedup_ci95_high"] = [hi for _, hi in bounds]
        ceilings = [_ceiling(row, b) for row, b in pairs]
        frame["speedup_ceiling"] = ceilings
        frame["above_ceiling"] = [None if c is None or pd.isna(s) else bool(s > c and not row["fits_in_llc"])
                                  for (row, _), c, s in zip(pairs, ceilings, frame["speedup"])]
        frame["baseline_bandwidth_fraction"] = [b["bandwidth_fraction"] if b is not None and row["workload"] == "tg"
                                                else None for row, b in pairs]
        frame["baseline_vs_llamacpp"] = _against_llamacpp(frame, pairs)
        frame["energy_reduction"] = [_reduction(row, b, "j_per_token") for row, b in pairs]
        frame["energy_reduction_above_idle"] = [_reduction(row, b, "j_per_token_above_idle") for row, b in pairs]
        frame["energy_reduction_basis"] = [_basis(row, r) for (row, _), r in zip(pairs, frame["energy_reduction"])]
    return frame


# What an estimated reduction is: the `model` backend charges every busy core the same watts, so
# when both formats keep all their threads busy, J/token follows seconds/token and the
# "reduction" is 1 - 1/speed-up: the speed-up restated, not evidence about energy.
RESTATES_SPEEDUP = "estimate: restates the speed-up (1 - 1/speed-up), not an energy measurement"


def _basis(row, reduction) -> str | None:
    if reduction is None or pd.isna(reduction):
        return None
    return "measured" if row["energy_measured"] is True else RESTATES_SPEEDUP


def _against_llamacpp(frame: pd.DataFrame, pairs: list) -> list:
    """Each point's baseline against llama.cpp's F16 at the same model, threads and test, when the
    sweep ran it: a fairness check, since a baseline slower than the program the claims name
    inflates every speed-up against it."""
    ref = {(r["model"], r["threads"], r["test"]): r for _, r in
           frame[(frame.status == "ok") & (frame.engine == "llamacpp") & (frame.format == "f16")].iterrows()}
    out = []
    for row, b in pairs:
        theirs = ref.get((row["model"], row["threads"], row["test"]))
        mine = b is not None and theirs is not None and not (b["engine"] == "llamacpp" and b["format"] == "f16")
        out.append(float(b["tps_median"] / theirs["tps_median"]) if mine and row["status"] == "ok" else None)
    return out


def _interval(row) -> tuple[float, float] | None:
    lo, hi = row["tps_mean_ci95_low"], row["tps_mean_ci95_high"]
    return None if pd.isna(lo) or pd.isna(hi) or lo <= 0 else (float(lo), float(hi))


def _speedup_interval(row, base) -> tuple[float | None, float | None]:
    """A conservative 95% interval of the speed-up: the ratio of the two intervals' far ends."""
    if base is None or row["status"] != "ok":
        return None, None
    ours, theirs = _interval(row), _interval(base)
    if ours is None or theirs is None:
        return None, None
    return ours[0] / theirs[1], ours[1] / theirs[0]


def _ceiling(row, base) -> float | None:
    """The most a generation speed-up can honestly be: the ratio of weight bytes read per token
    (baseline / this point). Above it, this point read its weights faster than the baseline did:
    the baseline leaves bandwidth unused, or the smaller model sits in the cache."""
    if base is None or row["status"] != "ok" or row["workload"] != "tg":
        return None
    ours, theirs = row["bytes_per_token"], base["bytes_per_token"]
    if pd.isna(ours) or pd.isna(theirs) or not ours:
        return None
    return float(theirs) / float(ours)


def _reduction(row, base, column):
    """1 - J/token / the baseline's J/token; only between two measurements or two estimates
    made the same way: a measured and an estimated figure never share a ratio."""
    if base is None or row["status"] != "ok" or pd.isna(row[column]) or pd.isna(base[column]) \
            or base[column] <= 0:
        return None
    if row["energy_provenance"] != base["energy_provenance"]:
        return None
    return 1.0 - row[column] / base[column]
