"""Published claims judged against ternbench results: `evaluate(claims, results, lossless)` gives
one Verdict per claim.

Which points count, for speedup, energy_reduction and tokens_per_s claims. Hard conditions
(a point failing one does not count):
- the architecture of the machine that produced the results (from its sysinfo fingerprint)
  is the claim's; if no results share it, the claim is "not testable here": an ARM claim says
  nothing about an x86 machine and the other way round;
- the results' baseline is the claim's (speed-ups and energy reductions come from the results
  table, which pairs each point with the baseline point of the same model, variant, threads
  and test);
- the format is one of the claim's formats, the workload (tg or pp) is the claim's, the model
  is one of the claimed sizes, and the thread count is the claim's: `all` means every usable
  CPU of the machine the point ran on, as its fingerprint records;
- the point finished (status ok) and has the figure (a speed-up needs its baseline point; an
  energy reduction needs both figures obtained the same way).
Soft conditions (points that match are preferred; if none do, the others count and the
difference is listed): the token count (tokens: 128 with only tg32 run) and the head format.

How a range is judged. All the metrics are "more is better", and a published range is the
spread of one figure over a set of sizes, not a per-size promise: no point has to hit its own
size's figure. So each point is compared with the range's lower bound:
- reproduced: no point is below the range. Points above the range are said so in `why`
  ("above the range": better than published, which does not contradict the claim);
- partly: some points are below the range and some are not;
- not reproduced: every point is below the range.
Sizes the claim covers but the results do not are listed in `differences` (with the skip
reason when the sweep skipped them), never counted as failures.

Energy: only measured energy can test an energy claim. When the matching points' energy is
estimated, the verdict is "not testable here" and `measured` still shows the estimate,
labelled "(estimated)". Where both exist, estimated points are left out.

Not testable here also: no results point matches (`why` says which condition removed the last
ones, or the skip reasons of the sweep's plan); a 100B claim without a 100B point; a
build_comparison claim (two builds of one runtime: ternbench has one runtime build); a
lossless claim without a `ternbench lossless --json` result (`why` gives the command)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from harness.measure.point import TIMED_AS

from .differences import (
    arch_of,
    cpu_name,
    list_differences,
    machine_differences,
    skip_reasons,
    threads_match,
    threads_words,
)
from .schema import Claim, CountedPoint
from .wording import all_lie, fmt_value, measured_text, noun, ordered, plural, point_list, range_text, sizes

REPRODUCED, NOT_REPRODUCED, PARTLY, NOT_TESTABLE = "reproduced", "not reproduced", "partly", "not testable here"


@dataclass
class Verdict:
    id: str
    title: str
    source: str
    statement: str
    verdict: str
    measured: str
    range: str
    differences: list[str]
    why: str

    def to_dict(self) -> dict:
        return asdict(self)


# --- loading -------------------------------------------------------------------------------------


# --- evaluation ----------------------------------------------------------------------------------


def evaluate(claims: list[Claim], results: list, lossless: dict | None = None) -> list[Verdict]:
    return [_evaluate(c, list(results), lossless) for c in claims]


def _evaluate(c: Claim, results: list, lossless: dict | None) -> Verdict:
    def verdict(v, why, measured="", differences=()):
        return Verdict(c.id, c.title, c.source, c.statement, v, measured, range_text(c), list(differences), why)

    if c.metric == "build_comparison":
        return verdict(NOT_TESTABLE, "This claim compares two builds of the published runtime (an earlier and a "
                                     "later release); ternbench has one runtime build of its own, so there is no "
                                     "pair of builds to compare.")
    if c.metric == "lossless":
        return _lossless(c, lossless, verdict)
    if not results:
        return verdict(NOT_TESTABLE, "No results were given.")
    machines = [r for r in results if c.arch in ("any", arch_of(r.fingerprint))]
    if not machines:
        seen = ", ".join(sorted({f"{arch_of(r.fingerprint) or 'unknown'} ({cpu_name(r.fingerprint)})"
                                 for r in results}))
        return verdict(NOT_TESTABLE, f"The claim was made on {c.arch} ({' / '.join(c.cpu) or 'CPU not named'}); "
                                     f"these results come from {seen}, and another architecture cannot test it.",
                       differences=machine_differences(c, results))
    points, why_none = _points(c, machines)
    if not points:
        return verdict(NOT_TESTABLE, why_none, differences=list_differences(c, machines, []))
    if c.metric == "energy_reduction":
        measured = [p for p in points if p.measured]
        if not measured:
            prov = sorted({p.provenance or "unknown" for p in points})
            return verdict(NOT_TESTABLE, f"Energy here is estimated ({'; '.join(prov)}), not measured: only measured "
                                         "energy can test an energy claim, so the estimate is shown but not judged.",
                           measured_text(c, points, " (estimated)"), list_differences(c, machines, points))
        left_out = len(points) - len(measured)
        points = measured
    v, why = _judge(c, points)
    diffs = list_differences(c, machines, points)
    if c.metric == "energy_reduction" and left_out:
        diffs.append(f"{left_out} points with estimated energy left out")
    return verdict(v, why, measured_text(c, points), diffs)


def _points(c: Claim, machines: list) -> tuple[list[CountedPoint], str]:
    """The points that count for the claim, or none and why (the condition that removed the last
    candidates, or the sweep's own skip reasons for the points the claim needed)."""
    rows = [(r, row) for r in machines for row in r.frame().to_dict("records")]
    stages = [
        (lambda r, row: c.baseline is None or r.baseline == c.baseline,
         lambda: f"These results have no {c.baseline} baseline (theirs: "
                 f"{', '.join(sorted({str(r.baseline) for r in machines}))}), so no {noun(c)} against it."),
        (lambda r, row: row["format"] in c.formats,
         lambda: f"No {'/'.join(c.formats)} point ran."),
        (lambda r, row: row["workload"] == c.workload,
         lambda: f"No {c.workload} point ran ({c.workload} = {TIMED_AS[c.workload]})."),
        (lambda r, row: threads_match(c, r, row["threads"]),
         lambda: f"No point ran at {threads_words(c, machines)} (threads run: "
                 f"{', '.join(str(t) for t in sorted({row['threads'] for _, row in rows}))})."),
        (lambda r, row: row["model"] in c.models,
         lambda: f"No point of the claimed sizes ({sizes(c.models)}) ran; sizes run: "
                 f"{sizes(ordered(c, {row['model'] for _, row in rows}))}."),
        (lambda r, row: row["status"] == "ok",
         lambda: f"The {len(rows)} matching points failed ({rows[0][1].get('reason') or 'no reason recorded'})."),
        (lambda r, row: _value(c, row) is not None,
         lambda: {"speedup": f"The matching points have no {c.baseline} baseline point at the same model, threads "
                             "and test, so no speed-up.",
                  "energy_reduction": "The matching points have no energy reduction: no energy figures, or the "
                                      f"ternary and {c.baseline} figures were not obtained the same way.",
                  "tokens_per_s": "The matching points have no tokens/s figure."}[c.metric]),
    ]
    for keep, why in stages:
        kept = [(r, row) for r, row in rows if keep(r, row)]
        if not kept:
            skipped = skip_reasons(c, machines, c.models)
            if skipped:   # the sweep's own reasons, e.g. too big for this machine's memory
                return [], why() + " The sweep skipped " + "; ".join(
                    f"{sizes(models)} ({reason})" for reason, models in skipped.items()) + "."
            return [], why()
        rows = kept
    points = [CountedPoint(row["model"], row["format"], row["head_format"], int(row["threads"]), row["test"],
                     int(row["tokens"]), _value(c, row), _bool(row.get("energy_measured")),
                     row.get("energy_provenance") if isinstance(row.get("energy_provenance"), str) else None)
              for _, row in rows]
    # soft conditions: prefer the claimed token count and head format, fall back to what ran
    for attr, want in (("tokens", c.tokens), ("head_format", c.head_format)):
        exact = [p for p in points if getattr(p, attr) == want]
        if want is not None and exact:
            points = exact
    return points, ""




def _value(c: Claim, row: dict) -> float | None:
    column = {"speedup": "speedup", "energy_reduction": "energy_reduction", "tokens_per_s": "tps_median"}[c.metric]
    v = row.get(column)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _bool(v) -> bool | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else bool(v)


def _judge(c: Claim, points: list[CountedPoint]) -> tuple[str, str]:
    n, lo = len(points), c.lo
    below = [p for p in points if p.value < lo]
    above = [p for p in points if c.hi is not None and p.value > c.hi]
    bound = fmt_value(c, lo)
    if not below:
        if not above:
            return REPRODUCED, f"{all_lie(n)} within the published range {range_text(c)}."
        return REPRODUCED, (f"{all_lie(n)} at or above the published lower bound {bound}. "
                            f"{plural(len(above), 'point')} {'is' if len(above) == 1 else 'are'} above the range "
                            f"({point_list(c, above)}): better than published, which does not contradict the claim.")
    if len(below) == n:
        best = max(points, key=lambda p: p.value)
        return NOT_REPRODUCED, (f"{all_lie(n)} below the published lower bound {bound} "
                                f"(the best: {fmt_value(c, best.value)}, {best.model}).")
    return PARTLY, (f"{len(below)} of {n} points fall below the published lower bound {bound} ({point_list(c, below)}); "
                    f"the other {n - len(below)} reach it.")


def _lossless(c: Claim, data: dict | None, verdict) -> Verdict:
    command = (f"ternbench lossless --model {c.models[0]} --formats {','.join(c.formats)} "
               f"--prompts {c.prompts or 100} --tokens {c.tokens or 32} --json > lossless.json")
    if not data:
        return verdict(NOT_TESTABLE, f"No lossless result was given: run `{command}` and pass lossless.json "
                                     "(ternbench report RESULTS --lossless lossless.json).")
    by_format = {r.get("format"): r for r in data.get("results") or [] if isinstance(r, dict)}
    found = [by_format[f] for f in c.formats if isinstance(by_format.get(f, {}).get("exact_rate"), (int, float))]
    if not found:
        return verdict(NOT_TESTABLE, f"The lossless result has no {'/'.join(c.formats)} figure (it has: "
                                     f"{', '.join(map(str, by_format)) or 'none'}); run `{command}`.")
    model = str(data.get("model"))
    points = [CountedPoint(model, r["format"], "", 0, "", 0, float(r["exact_rate"]), None, None) for r in found]
    differences = []
    if model not in c.models:
        differences.append(f"model {model} instead of {sizes(c.models)}")
    if c.prompts and isinstance(data.get("prompts"), int) and data["prompts"] < c.prompts:
        differences.append(f"{data['prompts']} prompts instead of {c.prompts}")
    if c.tokens and data.get("tokens") != c.tokens:
        differences.append(f"{data.get('tokens')} generated tokens per prompt instead of {c.tokens}")
    measured = ", ".join(f"{r['format']} {fmt_value(c, r['exact_rate'])} of {r.get('prompts')} prompts" for r in found)
    measured += f" ({model}, {data.get('tokens')} tokens each)"
    v, why = _judge(c, points)
    return verdict(v, why, measured, differences)


# --- differences ---------------------------------------------------------------------------------


# --- text ----------------------------------------------------------------------------------------


