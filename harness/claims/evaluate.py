"""Published claims judged against ternbench results: `evaluate(claims, results, lossless)` gives
one Verdict per claim.

Which points count, for speedup, energy_reduction and tokens_per_s claims. Hard conditions
(a point failing one does not count):
- the architecture of the machine that produced the results (from its sysinfo fingerprint)
  is the claim's; if no results share it, the claim is "not testable here": an ARM claim says
  nothing about an x86 machine and the other way round;
- the results' baseline is the claim's format (speed-ups and energy reductions come from the
  results table, which pairs each point with the baseline point of the same model, threads and
  test: its engine's own, or one engine's for every point);
- the point is one of the claim's own program (`engine`, in `engine_formats`) or one of
  ternbench's stand-ins (`formats`); when both ran, the claim's own are judged, and of these
  the ones against the claim's baseline engine where they exist;
- the format is one of those formats, the workload (tg or pp) is the claim's, the model
  is one of the claimed sizes, and the thread count is the claim's: `all` means every usable
  CPU of the machine the point ran on, as its fingerprint records;
- the point finished (status ok) and has the figure (a speed-up needs its baseline point; an
  energy reduction needs both figures obtained the same way).
Soft conditions (points that match are preferred; if none do, the others count and the
difference is listed): the token count (tokens: 128 with only tg32 run) and the head format.

How a range is judged. All the metrics are "more is better", and a published range is the
spread of one figure over a set of sizes, not a per-size promise: no point has to hit its own
size's figure. Both ends count:
- reproduced: every point lies within the range;
- exceeds the published range: none below it, some above (more than published is not a
  reproduction; the checks below usually say why);
- partly: some points are below the range and some are not;
- not reproduced: every point is below the range.
Then the checks (`checks`): for a generation speed-up, every point beside its bytes-per-token
ceiling, and the baseline's fraction of the probed read bandwidth against BASELINE_FRACTION_MIN;
where the claim publishes per-size figures, each measured size beside its figure and whether the
figure grows with size as published. A weak baseline, or a point above the ceiling (its model
not cache-resident), turns reproduced, exceeds and partly into "unreliable", with the reason.
Unstable points (measure/conditions.py) are left out and listed; one set of points is judged
once (on a 2-CPU machine "all threads" is "2 threads": the all-threads claim defers).
The verdict says whose figures it judges when they are not the claim's programs: "reproduced
(by ternbench's runtime against llama.cpp, not bitnet.cpp against llama.cpp FP16)". When
llama.cpp's F16 ran beside the baseline, the baseline must reach BASELINE_VS_LLAMACPP_MIN of
its tokens/s on the same shape, or the verdict is "unreliable: weak baseline" too.
Sizes the claim covers but the results do not are listed in `differences` (with the skip
reason when the sweep skipped them), never counted as failures.

Energy: only measured energy can test an energy claim. When the matching points' energy is
estimated, the verdict is "not testable here" and `why` says that the estimate restates the
speed-up; it is never set beside the published range. Where both exist, estimated points are
left out.

Not testable here also: no results point matches (`why` says which condition removed the last
ones, or the skip reasons of the sweep's plan); a 100B claim without a 100B point; a
build_comparison claim (two builds of one runtime: ternbench has one runtime build); a
lossless claim without a `ternbench lossless --json` result (`why` gives the command)."""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field

from harness.measure import stats
from harness.measure.point import TIMED_AS, WORKLOADS

from .differences import (
    arch_of,
    cpu_name,
    list_differences,
    machine_differences,
    skip_reasons,
    threads_match,
    threads_words,
)
from harness.sweep.tables import alternatives, split_baseline

from .schema import Claim, CountedPoint
from .wording import all_lie, fmt_value, measured_text, noun, ordered, plural, point_list, range_text, sizes

REPRODUCED, NOT_REPRODUCED, PARTLY, NOT_TESTABLE = "reproduced", "not reproduced", "partly", "not testable here"
EXCEEDS = "exceeds the published range"
UNRELIABLE = "unreliable"          # a weak baseline, or points above the physical ceiling: the reason follows
# A baseline reading its weights below this fraction of the probed bandwidth leaves speed-ups
# inflated by what it leaves unread: a speed-up verdict then says so instead of judging.
BASELINE_FRACTION_MIN = 0.80
THIS_RUNTIME = "ternbench's runtime"
ENGINE_LABELS = {"ternbench": THIS_RUNTIME, "llamacpp": "llama.cpp", "bitnetcpp": "bitnet.cpp"}
# When llama.cpp's F16 ran beside the baseline, the baseline must reach this share of its
# tokens/s on the same shape: a slower baseline inflates every speed-up against it.
BASELINE_VS_LLAMACPP_MIN = 0.95


@dataclass
class Verdict:
    id: str
    title: str
    source: str
    statement: str
    verdict: str              # the status, qualified by what produced the figures (see `line`)
    measured: str
    range: str
    differences: list[str]
    why: str
    status: str = ""          # the bare status: reproduced, partly, ..., for machines and colours
    programs: str = ""        # what produced the figures compared
    claimed_programs: str = ""   # what the publication compared
    checks: list = field(default_factory=list)     # [{check, ok, text}]: ceiling, baseline, trend, sizes
    per_size: list = field(default_factory=list)   # [{model, published, measured, ratio}]
    counted: list = field(default_factory=list)    # the points judged, machine:key
    short: str = ""           # the one reason in words a researcher acts on, when nothing is judged
    conditions: str = ""      # what the host did during the counted points: CPU stolen, tokens/s spread

    @property
    def line(self) -> str:
        """The verdict in one line: status, by what, the figures against the published range, or
        the reason it could not be judged."""
        figures = f"; measured {self.measured}" if self.measured else ""
        host = f"; host: {self.conditions}" if self.conditions else ""
        reason = f"; {self.short}" if self.short and self.status == NOT_TESTABLE else ""
        return f"{self.verdict}: {self.id}: published {self.range}{figures}{host}{reason}"

    def to_dict(self) -> dict:
        return {**asdict(self), "line": self.line}


def qualified(status: str, points: list[CountedPoint], c: Claim) -> str:
    """The status, saying whose figures it judges when they are not the claim's programs: a
    verdict about ternbench's runtime never reads as one about bitnet.cpp."""
    if not c.runtimes or status == NOT_TESTABLE or not points or _claims_own(c, points):
        return status
    return f"{status} (by {_by(points)}, not {c.runtimes.split(' (')[0]})"


def _claims_own(c: Claim, points: list[CountedPoint]) -> bool:
    """Whether the points are the claim's own programs: its engine, against its baseline's."""
    if not c.engine or {p.engine for p in points} != {c.engine}:
        return False
    return c.metric not in ("speedup", "energy_reduction") or not c.baseline_engine or \
        {p.baseline_engine for p in points} == {c.baseline_engine}


def _by(points: list[CountedPoint]) -> str:
    """Who produced the figures: "ternbench's runtime", "ternbench's runtime against llama.cpp"."""
    engines = sorted({p.engine for p in points})
    bases = sorted({p.baseline_engine for p in points} - set(engines))
    text = " and ".join(ENGINE_LABELS.get(e, e) for e in engines)
    return text + (f" against {' and '.join(ENGINE_LABELS.get(e, e) for e in bases)}" if bases else "")


def evaluate(claims: list[Claim], results: list, lossless: dict | None = None) -> list[Verdict]:
    verdicts = [_evaluate(c, list(results), lossless) for c in claims]
    return _judge_once(claims, verdicts)


def _judge_once(claims: list[Claim], verdicts: list[Verdict]) -> list[Verdict]:
    """On a 2-CPU machine "all threads" and "2 threads" are the same points: each claim keeps its
    own verdict (their published ranges differ), and says the two are one measurement, so that
    nobody counts them as two pieces of evidence."""
    by_id = {c.id: c for c in claims}
    for v in verdicts:
        c = by_id[v.id]
        if c.threads != "all" or not v.counted:
            continue
        twin = next((w for w in verdicts if w is not v and w.counted and set(w.counted) == set(v.counted)
                     and by_id[w.id].threads != "all" and by_id[w.id].metric == c.metric), None)
        if twin:
            same = (f"All threads here are {by_id[twin.id].threads}: these are the same {len(v.counted)} points as "
                    f"claim {twin.id}, judged against each claim's published range; one measurement, not two.")
            v.why = f"{v.why} {same}".strip()
            v.differences.append(same)
    return verdicts


def _programs(c: Claim, points: list[CountedPoint]) -> str:
    parts = []
    for engine in sorted({p.engine for p in points}):
        mine = [p for p in points if p.engine == engine]
        formats = "/".join(sorted({p.format for p in mine}, key=str))
        text = f"{ENGINE_LABELS.get(engine, engine)}: {formats}"
        if c.metric in ("speedup", "energy_reduction"):
            bases = sorted({p.baseline_engine for p in mine})
            text += " against " + " and ".join("its own " + c.baseline if b == engine else
                                               f"{ENGINE_LABELS.get(b, b)}'s {c.baseline}" for b in bases)
        elif c.metric == "lossless":
            text += " against its float reference"
        parts.append(text)
    return "; ".join(parts)


def _evaluate(c: Claim, results: list, lossless: dict | None) -> Verdict:
    def verdict(v, why, measured="", differences=(), points=(), checks=(), per_size=(), short=""):
        programs = _programs(c, list(points)) if points else ""
        return Verdict(c.id, c.title, c.source, c.statement, qualified(v, list(points), c), measured,
                       range_text(c), list(differences), why, status=v, programs=programs,
                       claimed_programs=c.runtimes or "", checks=list(checks), per_size=list(per_size),
                       counted=[p.key for p in points], short=short,
                       conditions=_conditions(list(points)) if v != NOT_TESTABLE else "")

    if c.metric == "build_comparison":
        return verdict(NOT_TESTABLE, "This claim compares two builds of the published runtime (an earlier and a "
                                     "later release); ternbench has one runtime build of its own, so there is no "
                                     "pair of builds to compare.",
                       short="compares two releases of bitnet.cpp's kernels; ternbench has one build to measure")
    if c.metric == "lossless":
        return _lossless(c, lossless, verdict)
    if not results:
        return verdict(NOT_TESTABLE, "No results were given.", short="no results were given")
    machines = [r for r in results if c.arch in ("any", arch_of(r.fingerprint))]
    if not machines:
        archs = sorted({arch_of(r.fingerprint) or "unknown" for r in results})
        seen = ", ".join(sorted({f"{arch_of(r.fingerprint) or 'unknown'} ({cpu_name(r.fingerprint)})"
                                 for r in results}))
        return verdict(NOT_TESTABLE, f"The claim was made on {c.arch} ({' / '.join(c.cpu) or 'CPU not named'}); "
                                     f"these results come from {seen}, and another architecture cannot test it.",
                       differences=machine_differences(c, results),
                       short=f"an {c.arch} claim; these results are from {'/'.join(archs)}: run the sweep on {c.arch}")
    points, why_none, short = _points(c, machines)
    if not points:
        return verdict(NOT_TESTABLE, why_none, differences=list_differences(c, machines, []), short=short)
    left_out = 0
    if c.metric == "energy_reduction":
        measured = [p for p in points if p.measured]
        if not measured:
            prov = sorted({p.provenance or "unknown" for p in points})
            estimate = measured_text(c, points, " (an estimate)")
            return verdict(NOT_TESTABLE, f"Energy here is estimated ({'; '.join(prov)}), not measured. An estimate "
                                         "that charges both formats the same watts restates the speed-up (reduction "
                                         f"= 1 - 1/speed-up: {estimate}), so it is not evidence about energy and is "
                                         "not set beside the published range.",
                           "", list_differences(c, machines, points), points,
                           short="needs measured energy: no RAPL counter was readable for this sweep, and an "
                                 "estimate only restates the speed-up (see `ternbench sysinfo`)")
        left_out = len(points) - len(measured)
        points = measured
    placed = {id(p): _place(c, p) for p in points}
    undecided = [p for p in points if placed[id(p)] == UNDECIDED]
    if len(undecided) == len(points):
        v = verdict(UNRELIABLE, f"Every matching point's 95% interval crosses a bound of the published range "
                                f"{range_text(c)} and is too wide to place it: {_interval_list(c, undecided)}. "
                                "More rounds narrow the intervals (raise processes, or max_processes).",
                    measured_text(c, points), list_differences(c, machines, points), points,
                    short="too noisy to decide: rerun with more processes")
        v.verdict = v.verdict.replace(UNRELIABLE, f"{UNRELIABLE}: too noisy to decide", 1)
        return v
    points = [p for p in points if placed[id(p)] != UNDECIDED]
    status, why = _judge(c, points)
    per_size = _per_size(c, points)
    checks = _trend(c, per_size) + _ceiling_check(c, points) + _baseline_check(c, points)
    failed = [x for x in checks if x["ok"] is False and x["check"] in ("baseline", "ceiling")]
    if failed and status in (REPRODUCED, EXCEEDS, PARTLY):
        status = UNRELIABLE
        why = " ".join(x["text"] for x in failed) + f" (Judged against the range alone: {why})"
    diffs = list_differences(c, machines, points, left_out=undecided)
    unstable = [p for p in points if p.unstable]
    if unstable:
        diffs.append(f"{plural(len(unstable), 'point')} measured on a noisy host, judged on {'its' if len(unstable) == 1 else 'their'} "
                     f"interval: {_unstable_list(unstable)}")
    if undecided:
        diffs.append(f"{plural(len(undecided), 'point')} left out, {'its' if len(undecided) == 1 else 'their'} 95% "
                     f"interval too wide to place against the range: {_interval_list(c, undecided)}")
    edge = [p for p in points if placed[id(p)] == EDGE]
    if edge:
        why += f" At a bound of the range (95% interval crossing it, judged by the figure): {_interval_list(c, edge)}."
    if left_out:
        diffs.append(f"{left_out} points with estimated energy left out")
    no_interval = [p for p in points if p.low is None]
    if no_interval:
        why += (f" {plural(len(no_interval), 'point')} {'has' if len(no_interval) == 1 else 'have'} no interval "
                f"({no_interval[0].interval_note or 'none recorded'}): judged by the figure alone.")
    v = verdict(status, why, measured_text(c, points), diffs, points, checks, per_size)
    if status == UNRELIABLE:
        v.verdict = v.verdict.replace(UNRELIABLE, f"{UNRELIABLE}: " + ("weak baseline" if any(
            x["check"] == "baseline" for x in failed) else "above the bytes ceiling"), 1)
    if unstable:
        head, sep, tail = v.verdict.partition(" (by ")
        v.verdict = f"{head}, noisy host ({_noise(unstable, len(points))}){sep}{tail}"
    return v


def _conditions(points: list[CountedPoint]) -> str:
    """What the host did during the counted points and their baselines, stated beside every verdict
    judged on them (a verdict on a quiet host and one on a noisy host read differently)."""
    steal = [p.steal for p in points if p.steal is not None]
    spread = [p.spread for p in points if p.spread is not None]
    parts = ([f"up to {max(steal):.0%} CPU stolen" if max(steal) >= 0.005 else "no CPU stolen"] if steal else []) + \
        ([f"tokens/s spread up to {max(spread):.0%} over processes"] if spread else [])
    return ", ".join(parts)


def _unstable_list(points: list[CountedPoint]) -> str:
    return "; ".join(f"{p.model} {p.format} t{p.threads} {p.test} ({p.unstable})" for p in points)


def _noise(unstable: list[CountedPoint], n: int) -> str:
    """What the host did to the counted points, in a few words: 2 of 6 points unstable, up to 17% CPU stolen."""
    steal = [p.steal for p in unstable if p.steal is not None]
    text = f"{len(unstable)} of {n} points unstable"
    return text + (f", up to {max(steal):.0%} CPU stolen" if steal and max(steal) >= 0.01 else "")


# Where a point's figure lies against a range, judged by its 95% interval: inside one zone; at a
# bound (the interval crosses it but is narrow: placed by its figure); or undecided (it crosses a
# bound and is too wide to say on which side the figure lies).
EDGE, UNDECIDED = "edge", "undecided"


def _zone(c: Claim, v: float) -> str:
    return "below" if v < c.lo else "above" if c.hi is not None and v > c.hi else "within"


def _place(c: Claim, p: CountedPoint) -> str:
    if p.low is None or p.high is None:
        return _zone(c, p.value)
    low, high = _zone(c, p.low), _zone(c, p.high)
    if low == high:
        return low
    return EDGE if p.low > 0 and p.high / p.low <= stats.NARROW else UNDECIDED


def _interval_list(c: Claim, points: list[CountedPoint]) -> str:
    return "; ".join(f"{p.model} {p.format} t{p.threads} {p.test} {fmt_value(c, p.value)} "
                     f"(95% {fmt_value(c, p.low)}-{fmt_value(c, p.high)})" for p in points)


def _per_size(c: Claim, points: list[CountedPoint]) -> list[dict]:
    """The published per-size figures beside the median measured at each size."""
    out = []
    for model, published in c.per_size:
        values = [p.value for p in points if p.model == model]
        if values:
            med = statistics.median(values)
            out.append({"model": model, "published": published, "measured": med,
                        "ratio": med / published if published else None})
    return out


def _trend(c: Claim, per_size: list[dict]) -> list[dict]:
    """Whether the figure grows with size as published: Kendall's tau over the measured sizes."""
    if len(per_size) < 2:
        return []
    pub = [s["published"] for s in per_size]
    got = [s["measured"] for s in per_size]
    want, seen = _tau(pub), _tau(got)
    words = {1: "grows", -1: "falls", 0: "does not change monotonically"}
    ends = f"{per_size[0]['model']} {fmt_value(c, got[0])} to {per_size[-1]['model']} {fmt_value(c, got[-1])}"
    text = (f"With size, the published figure {words[_sign(want)]}; measured, it {words[_sign(seen)]} "
            f"({ends}; Kendall tau {seen:+.2f} over {len(per_size)} sizes).")
    return [{"check": "trend", "ok": _sign(want) == _sign(seen), "text": text}]


def _tau(values: list[float]) -> float:
    pairs = [(i, j) for i in range(len(values)) for j in range(i + 1, len(values))]
    return sum(_sign(values[j] - values[i]) for i, j in pairs) / len(pairs)


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _ceiling_check(c: Claim, points: list[CountedPoint]) -> list[dict]:
    if c.metric != "speedup" or c.workload != "tg":
        return []
    above = [p for p in points if p.above_ceiling]
    if not above:
        cached = [p for p in points if p.ceiling and p.value > p.ceiling]
        rest = [p.ceiling for p in points if p.ceiling and p not in cached]
        span = f" ({min(rest):.2f}x-{max(rest):.2f}x)" if rest else ""
        text = f"Every speed-up is within its bytes-per-token ceiling{span}."
        if cached:   # allowed, and named: the speed-up there is the cache's, not the format's saving of bytes
            text = (f"{plural(len(cached), 'point')} above {'its' if len(cached) == 1 else 'their'} bytes-per-token "
                    "ceiling, its model small enough to stay in the last-level cache (a cache effect, not the "
                    "format's saving of bytes): " + "; ".join(
                        f"{p.model} {p.format} t{p.threads} {p.value:.2f}x over {p.ceiling:.2f}x" for p in cached) +
                    "." + (f" The others are within theirs{span}." if rest else ""))
        return [{"check": "ceiling", "ok": True, "text": text}]
    causes = "; ".join(
        f"{p.model} {p.format} t{p.threads}: {p.value:.2f}x over a ceiling of {p.ceiling:.2f}x, "
        f"reading at {_pct(p.fraction)} of the probed bandwidth against the baseline's {_pct(p.baseline_fraction)}"
        for p in above)
    return [{"check": "ceiling", "ok": False,
             "text": f"{plural(len(above), 'point')} exceed{'s' if len(above) == 1 else ''} the ratio of weight bytes "
                     f"read per token, which a generation speed-up cannot honestly pass unless the smaller model "
                     f"stays in the cache: {causes}."}]


def _baseline_check(c: Claim, points: list[CountedPoint]) -> list[dict]:
    """The baseline's share of the probed read bandwidth, and, when llama.cpp's F16 ran beside
    it, its tokens/s against llama.cpp's: either below its threshold makes the verdict unreliable."""
    if c.metric not in ("speedup", "energy_reduction") or c.workload != "tg":
        return []

    def ratio(v):
        return f"{v:.2f}x"

    return _threshold(c, points, "baseline_fraction", BASELINE_FRACTION_MIN, _pct,
                      "read its weights at {span} of the probed bandwidth",
                      "read its weights below {min} of the probed bandwidth ({where}), which inflates every "
                      "speed-up by what it leaves unread") + \
        _threshold(c, points, "baseline_vs_llamacpp", BASELINE_VS_LLAMACPP_MIN, ratio,
                   "generated at {span} llama.cpp's F16 on the same shapes",
                   "generated below {min} llama.cpp's F16 on the same shapes ({where}), which inflates every "
                   "speed-up against it")


def _threshold(c: Claim, points: list[CountedPoint], attr: str, minimum: float, show, ok: str, weak: str) -> list:
    """One baseline check: every counted (model, threads) at or above MINIMUM, or the weak ones named."""
    values = {(p.model, p.threads): getattr(p, attr) for p in points if getattr(p, attr) is not None}
    if not values:
        return []
    below = {k: v for k, v in values.items() if v < minimum}
    if not below:
        return [{"check": "baseline", "ok": True, "text": f"The {c.baseline} baseline "
                 + ok.format(span=_span(values.values(), show)) + f" (at least {show(minimum)} required)."}]
    where = ", ".join(f"{m} t{t} {show(v)}" for (m, t), v in sorted(below.items(), key=lambda kv: kv[1]))
    return [{"check": "baseline", "ok": False,
             "text": f"Weak baseline: the {c.baseline} baseline " + weak.format(min=show(minimum), where=where) + "."}]


def _span(values, show) -> str:
    lo, hi = min(values), max(values)
    return show(lo) if show(lo) == show(hi) else f"{show(lo)}-{show(hi)}"


def _pct(x) -> str:
    return "unknown" if x is None else f"{100 * x:.0f}%"


def _points(c: Claim, machines: list) -> tuple[list[CountedPoint], str, str]:
    """The points that count for the claim, or none, why (the condition that removed the last
    candidates, or the sweep's own skip reasons for the points the claim needed), and that reason
    in a few words that say what to change."""
    rows = [(r, row) for r in machines for row in r.frame().to_dict("records")]
    threads = threads_words(c, machines)
    stages = [
        (lambda r, row: c.baseline is None or any(split_baseline(b)[1] == c.baseline for b in alternatives(r.baseline)),
         lambda: f"These results have no {c.baseline} baseline (theirs: "
                 f"{', '.join(sorted({str(r.baseline) for r in machines}))}), so no {noun(c)} against it.",
         lambda: f"no {c.baseline} baseline: set baseline: {c.baseline}"),
        (lambda r, row: _ternary_side(c, row),
         lambda: f"No {_formats_text(c)} point ran.",
         lambda: f"no {_formats_text(c)} point: add {c.formats[0] if c.formats else c.engine_formats[0]} to formats"),
        (lambda r, row: row["workload"] == c.workload,
         lambda: f"No {c.workload} point ran ({c.workload} = {TIMED_AS[c.workload]}).",
         lambda: f"no {WORKLOADS[c.workload]} point: add {'generation' if c.workload == 'tg' else 'prompt'}: "
                 f"[{c.tokens or 128}] to workloads"),
        (lambda r, row: threads_match(c, r, row["threads"]),
         lambda: f"No point ran at {threads} (threads run: "
                 f"{', '.join(str(t) for t in sorted({row['threads'] for _, row in rows}))}).",
         lambda: f"no point at {threads}: add {'max' if c.threads == 'all' else c.threads} to threads"),
        (lambda r, row: row["model"] in c.models,
         lambda: f"No point of the claimed sizes ({sizes(c.models)}) ran; sizes run: "
                 f"{sizes(ordered(c, {row['model'] for _, row in rows}))}.",
         lambda: f"no {_size_span(c)} point at {threads}: add {c.models[0]} to models"),
        (lambda r, row: row["status"] == "ok",
         lambda: f"The {len(rows)} matching points failed ({rows[0][1].get('reason') or 'no reason recorded'}).",
         lambda: f"the {len(rows)} matching points failed: see the report's failed points"),
        (lambda r, row: _value(c, row) is not None,
         lambda: {"speedup": f"The matching points have no {c.baseline} baseline point at the same model, threads "
                             "and test, so no speed-up.",
                  "energy_reduction": "The matching points have no energy reduction: no energy figures, or the "
                                      f"ternary and {c.baseline} figures were not obtained the same way.",
                  "tokens_per_s": "The matching points have no tokens/s figure."}[c.metric],
         lambda: {"speedup": f"no {c.baseline} point beside the matching points: add {c.baseline} to formats",
                  "energy_reduction": "no energy reduction: the points have no like energy figures",
                  "tokens_per_s": "the matching points have no tokens/s figure"}[c.metric]),
    ]
    for keep, why, short in stages:
        kept = [(r, row) for r, row in rows if keep(r, row)]
        if not kept:
            skipped = skip_reasons(c, machines, c.models)
            if skipped:   # the sweep's own reasons, e.g. too big for this machine's memory
                first = next(iter(skipped.items()))
                return [], why() + " The sweep skipped " + "; ".join(
                    f"{sizes(models)} ({reason})" for reason, models in skipped.items()) + ".", \
                    f"{sizes(first[1])} skipped here: {first[0]}"
            return [], why(), short()
        rows = kept
    points = [CountedPoint(row["model"], row["format"], row["head_format"], int(row["threads"]), row["test"],
                           int(row["tokens"]), _value(c, row), _bool(row.get("energy_measured")),
                           row.get("energy_provenance") if isinstance(row.get("energy_provenance"), str) else None,
                           machine=str(r.path), ceiling=_number(row.get("speedup_ceiling")),
                           above_ceiling=_bool(row.get("above_ceiling")) is True,
                           fraction=_number(row.get("bandwidth_fraction")),
                           baseline_fraction=_number(row.get("baseline_bandwidth_fraction")),
                           bytes_per_token=_number(row.get("bytes_per_token")),
                           unstable=row.get("unstable") if isinstance(row.get("unstable"), str) else "",
                           engine=row["engine"], baseline_engine=_baseline_engine(row),
                           baseline_vs_llamacpp=_number(row.get("baseline_vs_llamacpp")),
                           **_interval(c, row), **_host(c, row))
              for r, row in rows]
    # the claim's own programs when the results have them: its engine, against its baseline's
    for attr, want in (("engine", c.engine), ("baseline_engine", c.baseline_engine)):
        exact = [p for p in points if getattr(p, attr) == want]
        if want is not None and exact:
            points = exact
    # soft conditions: prefer the claimed token count and head format, fall back to what ran
    for attr, want in (("tokens", c.tokens), ("head_format", c.head_format)):
        exact = [p for p in points if getattr(p, attr) == want]
        if want is not None and exact:
            points = exact
    if c.metric == "tokens_per_s" and len(c.formats) > 1:
        points = _most_compact(c, points)
    return points, "", ""


def _size_span(c: Claim) -> str:
    return c.models[0] if len(c.models) == 1 else f"{c.models[0]}-{c.models[-1]}"


def _interval(c: Claim, row: dict) -> dict:
    """The 95% interval of the figure a claim judges, how it was obtained, or why there is none."""
    if c.metric == "tokens_per_s":
        low, high = _number(row.get("tps_mean_ci95_low")), _number(row.get("tps_mean_ci95_high"))
        return {"low": low, "high": high, "method": "geometric mean of process means",
                "interval_note": _text(row.get("tps_interval_note"))}
    prefix = "speedup" if c.metric == "speedup" else "energy_reduction"
    return {"low": _number(row.get(f"{prefix}_ci95_low")), "high": _number(row.get(f"{prefix}_ci95_high")),
            "method": _text(row.get("speedup_method")), "interval_note": _text(row.get("speedup_note"))}


def _host(c: Claim, row: dict) -> dict:
    """The CPU stolen and the tokens/s spread of a point, and of its baseline for a ratio: the
    larger of the two, since a ratio is as noisy as its noisier side."""
    sides = ("", "baseline_") if c.metric in ("speedup", "energy_reduction") else ("",)
    out = {}
    for name, column in (("steal", "steal_fraction"), ("spread", "spread")):
        values = [v for v in (_number(row.get(side + column)) for side in sides) if v is not None]
        out[name] = max(values) if values else None
    return out


def _text(v) -> str:
    return v if isinstance(v, str) else ""


def _baseline_engine(row: dict) -> str:
    """The program of the baseline a row was divided by (the table's per-row `baseline`)."""
    b = row.get("baseline")
    return (split_baseline(b)[0] if isinstance(b, str) and "," not in b else None) or row["engine"]


def _ternary_side(c: Claim, row: dict) -> bool:
    """A point of the claimed kernels: the claim's engine in its formats, or ternbench's runtime
    in the claim's stand-in formats."""
    engine = row.get("engine", "ternbench")
    return (engine == c.engine and row["format"] in c.engine_formats) or \
        (engine == "ternbench" and row["format"] in c.formats)


def _formats_text(c: Claim) -> str:
    theirs = f" or {ENGINE_LABELS.get(c.engine, c.engine)} {'/'.join(c.engine_formats)}" if c.engine_formats else ""
    return f"{'/'.join(c.formats)}{theirs}"


def _most_compact(c: Claim, points: list[CountedPoint]) -> list[CountedPoint]:
    """A size claim ("100B on one CPU") is judged with the most compact of its lossless formats
    that ran at each size: fewest bytes per token, else the first in the claim's list."""
    best: dict[tuple, CountedPoint] = {}
    for p in points:
        k = (p.machine, p.model, p.threads, p.test, p.head_format)
        rank = (p.bytes_per_token or float("inf"), c.formats.index(p.format))
        if k not in best or rank < (best[k].bytes_per_token or float("inf"), c.formats.index(best[k].format)):
            best[k] = p
    return list(best.values())




def _value(c: Claim, row: dict) -> float | None:
    # tokens/s: the geometric mean over processes where the records have it (its interval's centre)
    column = {"speedup": "speedup", "energy_reduction": "energy_reduction",
              "tokens_per_s": "tps_gmean" if _number(row.get("tps_gmean")) else "tps_median"}[c.metric]
    v = row.get(column)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _number(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _bool(v) -> bool | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else bool(v)


def _judge(c: Claim, points: list[CountedPoint]) -> tuple[str, str]:
    """Both ends of the range: below it is a failure, above it is not a reproduction either."""
    n, lo = len(points), c.lo
    below = [p for p in points if p.value < lo]
    above = [p for p in points if c.hi is not None and p.value > c.hi]
    bound = fmt_value(c, lo)
    if not below:
        if not above:
            return REPRODUCED, f"{all_lie(n)} within the published range {range_text(c)}."
        return EXCEEDS, (f"{plural(len(above), 'point')} of {n} {'is' if len(above) == 1 else 'are'} above the "
                         f"published range {range_text(c)} ({point_list(c, above)}), none below it. More than "
                         "published is not a reproduction: see the ceiling and baseline checks for why.")
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
                                     "(ternbench report RESULTS --lossless lossless.json).",
                       short="needs a lossless result: `ternbench lossless ... --json > lossless.json`, then "
                             "report --lossless lossless.json")
    by_format = {r.get("format"): r for r in data.get("results") or [] if isinstance(r, dict)}
    found = [by_format[f] for f in c.formats if isinstance(by_format.get(f, {}).get("exact_rate"), (int, float))]
    if not found:
        return verdict(NOT_TESTABLE, f"The lossless result has no {'/'.join(c.formats)} figure (it has: "
                                     f"{', '.join(map(str, by_format)) or 'none'}); run `{command}`.",
                       short=f"the lossless result has no {'/'.join(c.formats)} figure: rerun ternbench lossless "
                             f"--formats {','.join(c.formats)}")
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
    return verdict(v, why, measured, differences, points)


# --- differences ---------------------------------------------------------------------------------


# --- text ----------------------------------------------------------------------------------------


