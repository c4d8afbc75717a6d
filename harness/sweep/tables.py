"""The tidy table of a sweep: one row per point, flat columns, speed-ups against the baseline
format. Rebuilt from points.jsonl whenever it changes; never edited by hand."""
from __future__ import annotations

import pandas as pd

from harness.measure import stats
from harness.models.sizes import default_head_format
from runtime.tuning import describe

# How records written before these fields were measured: an f32 KV cache, and a probe pass
# that kept the fastest of three read patterns.
OLD_KV_CACHE = "f32"
OLD_REFERENCE = "fastest of three read patterns (results before the plain-read yardstick)"

COLUMNS = ["key", "status", "engine", "engine_version", "engine_function", "model", "format", "head_format", "kv_cache", "variant", "threads", "workload", "tokens",
           "test",
           "n", "tps_mean", "tps_median", "tps_stdev", "tps_ci95_low", "tps_ci95_high", "processes",
           "rounds_planned", "tps_gmean", "tps_process_ci95_low", "tps_process_ci95_high", "tps_mean_ci95_low",
           "tps_mean_ci95_high", "tps_interval_note",
           "s_per_token_median",
           "runtime_tps", "timing_vs_runtime", "weight_bytes", "bytes_per_token", "achieved_gbps", "probe_gbps",
           "bandwidth_fraction", "bandwidth_reference", "tuning", "fits_in_llc", "setup_s", "pinned", "baseline",
           "speedup", "speedup_ci95_low", "speedup_ci95_high", "speedup_method", "speedup_n", "speedup_note",
           "speedup_ceiling", "above_ceiling",
           "baseline_bandwidth_fraction", "baseline_vs_llamacpp", "unstable", "steal_fraction", "probe_drift", "spread",
           "baseline_steal_fraction", "baseline_spread",
           "j_per_token", "j_per_token_above_idle", "tokens_per_j", "watts", "energy_measured", "energy_provenance",
           "energy_reduction", "energy_reduction_ci95_low", "energy_reduction_ci95_high", "energy_reduction_above_idle",
           "energy_reduction_basis", "reason"]

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


def _is_base(row, alt: str) -> bool:
    """Whether a row is a baseline point of alternative alt ("llamacpp:f16" or "f16"): ternbench
    runs a format with several heads, and its baseline is the format's default head."""
    engine, fmt = split_baseline(alt)
    if row["format"] != fmt:
        return False
    if engine:
        return row["engine"] == engine
    return row["engine"] != "ternbench" or row["head_format"] == default_head_format(fmt)


def _shared(row, alt: str) -> tuple:
    """What a row and its baseline share: the model, threads and test; and, for a baseline within
    each engine, the same engine and variant."""
    return (row["model"], row["threads"], row["test"]) if split_baseline(alt)[0] else \
        (row["engine"], *(row[c] for c in MATCH))


def baseline_for(row: dict, candidates: list[dict], baseline: str | None) -> dict | None:
    """The candidate a row is divided by (the first alternative that has one), or None."""
    for alt in alternatives(baseline):
        found = next((c for c in candidates if _is_base(c, alt) and _shared(c, alt) == _shared(row, alt)), None)
        if found is not None:
            return found
    return None


def _matcher(frame: pd.DataFrame, baseline: str):
    """(the key a row and its baseline row share, baseline rows by that key) for one alternative."""
    ok = frame[frame.status == "ok"]
    return (lambda row: _shared(row, baseline)), \
        {_shared(row, baseline): row for _, row in ok.iterrows() if _is_base(row, baseline)}


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
    row["engine_function"] = (r.get("engine_build") or {}).get("function")   # None: the model's own function
    row["tuning"] = describe(r["tuning"]) if r.get("tuning") else None
    if r["status"] == "ok":
        row["kv_cache"] = r.get("kv_cache", OLD_KV_CACHE)
        row["bandwidth_reference"] = r.get("bandwidth_reference", OLD_REFERENCE)
        t = r["tokens_per_s"]
        row.update(n=t["n"], tps_mean=t["mean"], tps_median=t["median"], tps_stdev=t["stdev"],
                   s_per_token_median=r["seconds_per_token"]["median"], runtime_tps=r["runtime_tokens_per_s"])
        row.update(zip(("tps_ci95_low", "tps_ci95_high"), _positive(t["ci95_low"], t["ci95_high"])))
        p = r.get("tokens_per_s_processes") or {}
        means = r.get("process_tokens_per_s")
        # the interval every report shows: of the geometric mean over process means, since values
        # within one process are not independent; records written before the process means were
        # kept have Student's t over them, kept where both ends are positive
        if means:
            interval, gmean = stats.log_interval(means) or (None, None), stats.gmean(means)
        else:
            interval, gmean = _positive(p.get("ci95_low"), p.get("ci95_high")), None
        row.update(tps_gmean=gmean, tps_process_ci95_low=interval[0], tps_process_ci95_high=interval[1],
                   tps_mean_ci95_low=interval[0], tps_mean_ci95_high=interval[1],
                   tps_interval_note=None if interval[0] is not None else
                   stats.too_few(len(means) if means else int(p.get("n") or r.get("processes") or 1), "process"))
        c = r.get("conditions") or {}
        row.update(unstable="; ".join(c.get("unstable") or []) or None, steal_fraction=c.get("steal_fraction"),
                   probe_drift=c.get("probe_drift"), spread=c.get("spread"))
        e = r.get("energy")
        if e and "error" not in e:
            row.update(j_per_token=e["j_per_token"], j_per_token_above_idle=e["j_per_token_above_idle"],
                       tokens_per_j=e["tokens_per_j"], watts=e["watts"], energy_measured=e["measured"],
                       energy_provenance=e["provenance"])
    return row


def _positive(lo, hi) -> tuple:
    """An interval of a positive figure, or (None, None) when an end is missing or not positive
    (Student's t on few values, as records before the log-scale intervals had it)."""
    ok = lo is not None and hi is not None and not pd.isna(lo) and not pd.isna(hi) and lo > 0
    return (float(lo), float(hi)) if ok else (None, None)


def points_frame(records: list[dict], baseline: str | None) -> pd.DataFrame:
    frame = pd.DataFrame([_row(r) for r in records], columns=COLUMNS)
    frame["baseline"] = baseline
    if baseline and not frame.empty:
        by_key = {r["key"]: r for r in records}
        pairs, used = _baseline_pairs(frame, baseline)
        # the baseline each point was divided by (with several alternatives, the first that ran)
        frame["baseline"] = used if len(alternatives(baseline)) > 1 else baseline
        speedups = [ratio_between(by_key, row, b, "process_tokens_per_s", "tps_median") for row, b in pairs]
        for column, field in (("speedup", "value"), ("speedup_ci95_low", "low"), ("speedup_ci95_high", "high"),
                              ("speedup_method", "method"), ("speedup_n", "n"), ("speedup_note", "note")):
            frame[column] = [getattr(x, field) if x else None for x in speedups]
        ceilings = [_ceiling(row, b) for row, b in pairs]
        frame["speedup_ceiling"] = ceilings
        frame["above_ceiling"] = [None if c is None or pd.isna(s) else bool(s > c and not row["fits_in_llc"])
                                  for (row, _), c, s in zip(pairs, ceilings, frame["speedup"])]
        frame["baseline_bandwidth_fraction"] = [b["bandwidth_fraction"] if b is not None and row["workload"] == "tg"
                                                else None for row, b in pairs]
        frame["baseline_vs_llamacpp"] = _against_llamacpp(frame, pairs)
        # what the host did to the baseline too: a ratio is as noisy as both of its sides
        for column in ("steal_fraction", "spread"):
            frame["baseline_" + column] = [b[column] if b is not None else None for _, b in pairs]
        reductions = [_reduction(by_key, row, b) for row, b in pairs]
        for column, field in (("energy_reduction", "value"), ("energy_reduction_ci95_low", "low"),
                              ("energy_reduction_ci95_high", "high")):
            frame[column] = [getattr(x, field) if x else None for x in reductions]
        frame["energy_reduction_above_idle"] = [_median_reduction(row, b, "j_per_token_above_idle") for row, b in pairs]
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


# Records written before the per-process figures were kept: the ratio of medians, with no interval.
MEDIANS = "ratio of medians"
NO_PROCESS_FIGURES = "no interval: these records predate per-process figures"


def ratio_between(by_key: dict, row, base, field: str, median_column: str) -> stats.Ratio | None:
    """row / base from their per-process figures: paired round by round when both ran in one
    group run with the same rounds (the sweep interleaves them), else as independent samples."""
    if base is None or row["status"] != "ok":
        return None
    a, b = by_key[row["key"]].get(field), by_key[base["key"]].get(field)
    if a and b and min(a) > 0 and min(b) > 0:
        return stats.ratio(a, b, stats.same_rounds(by_key[row["key"]], by_key[base["key"]], field))
    if pd.isna(row[median_column]) or pd.isna(base[median_column]) or not base[median_column]:
        return None
    return stats.Ratio(float(row[median_column] / base[median_column]), None, None, 0, MEDIANS, NO_PROCESS_FIGURES)


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


def _reduction(by_key: dict, row, base) -> stats.Ratio | None:
    """1 - J/token / the baseline's J/token, with its interval, paired as the speed-up is; only
    between two measurements or two estimates made the same way: a measured and an estimated
    figure never share a ratio."""
    if base is None or row["status"] != "ok" or row["energy_provenance"] != base["energy_provenance"]:
        return None
    r = ratio_between(by_key, row, base, "process_j_per_token", "j_per_token")
    return r.inverse_complement() if r else None


def _median_reduction(row, base, column):
    """1 - the ratio of medians, for J/token above idle (an idle power subtracted from each pass
    leaves no per-process figure to pair)."""
    if base is None or row["status"] != "ok" or pd.isna(row[column]) or pd.isna(base[column]) \
            or base[column] <= 0 or row["energy_provenance"] != base["energy_provenance"]:
        return None
    return 1.0 - row[column] / base[column]
