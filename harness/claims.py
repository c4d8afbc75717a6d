"""Published claims (configs/claims/*.yaml) judged against ternbench results.

`load_claims(path)` reads and validates a claims file (the schema is documented at the top of
configs/claims/bitnet-cpp.yaml); a bad file raises ClaimsError, one line naming the file, the
line and the key. `evaluate(claims, results, lossless)` gives one Verdict per claim.

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

import difflib
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from . import yaml_source
from .models import HEAD_FORMATS, LINEAR_FORMATS, ModelSpecError, display_path, find_model, param_count

REPRODUCED, NOT_REPRODUCED, PARTLY, NOT_TESTABLE = "reproduced", "not reproduced", "partly", "not testable here"
METRICS = ("speedup", "energy_reduction", "tokens_per_s", "lossless", "build_comparison")
POINT_METRICS = ("speedup", "energy_reduction", "tokens_per_s")
ARCHES = ("x86_64", "aarch64", "any")
WORKLOADS = ("tg", "pp")

KEYS = ("id", "title", "source", "statement", "metric", "range", "min", "arch", "cpu", "cpu_threads", "threads",
        "models", "workload", "tokens", "prompts", "baseline", "formats", "head_format", "runtimes", "energy",
        "energy_method", "note")
# keys a metric requires (besides id, title, source, statement, metric and range or min)
REQUIRED = {"speedup": ("arch", "threads", "models", "workload", "formats", "baseline"),
            "energy_reduction": ("arch", "threads", "models", "workload", "formats", "baseline", "energy"),
            "tokens_per_s": ("arch", "threads", "models", "workload", "formats"),
            "lossless": ("models", "formats"),
            "build_comparison": ()}
# keys that mean something for some metrics only
ONLY_FOR = {"energy": ("energy_reduction",), "energy_method": ("energy_reduction",), "prompts": ("lossless",),
            "baseline": ("speedup", "energy_reduction")}


class ClaimsError(Exception):
    """A claims file that cannot be used; the message names the file, the line and the key."""


@dataclass(frozen=True)
class Claim:
    id: str
    title: str
    source: str
    statement: str
    metric: str
    lo: float
    hi: float | None                 # None: only a lower bound (`min`)
    arch: str = "any"
    cpu: tuple[str, ...] = ()
    cpu_threads: int | None = None
    threads: str | int | None = None  # "all" or a count
    models: tuple[str, ...] = ()      # canonical preset names (2.5B -> 2B4T), in the file's order
    workload: str | None = None
    tokens: int | None = None
    prompts: int | None = None
    baseline: str | None = None
    formats: tuple[str, ...] = ()
    head_format: str | None = None
    runtimes: str | None = None
    energy: str | None = None
    energy_method: str | None = None
    note: str | None = None
    line: int = 0


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

def load_claims(path) -> list[Claim]:
    path = Path(path)
    where = display_path(path)

    def error(message, line=None, key=None):
        return ClaimsError(f"{where}:{f' line {line}:' if line else ''}{f' key {key!r}:' if key else ''} {message}")

    try:
        _, doc = yaml_source.load_file(path, "claims file")
    except yaml_source.YamlProblem as e:
        raise error(e.message, e.line) from None
    if not isinstance(doc, yaml_source.LDict):
        raise error("expected a mapping with claims: [...] (and optionally description)", 1)
    for key in doc:
        if key not in ("description", "claims"):
            raise error("unknown key; allowed keys: description, claims", doc.lines[key], key)
    items = doc.get("claims")
    if not isinstance(items, yaml_source.LList) or not items:
        raise error("must be a non-empty list of claims", doc.lines.get("claims", doc.line), "claims")
    claims, seen = [], {}
    for i, (item, line) in enumerate(zip(items, items.lines)):
        if not isinstance(item, yaml_source.LDict):
            raise error(f"each claim must be a mapping of keys, got {item!r}", line, f"claims[{i}]")
        claim = _Entry(item, f"claims[{i}]", error).claim()
        if claim.id in seen:
            raise error(f"id {claim.id!r} is used twice (first on line {seen[claim.id]})", item.lines["id"],
                        f"{claim.id}.id")
        seen[claim.id] = item.lines["id"]
        claims.append(claim)
    return claims


class _Entry:
    """One claim of the file, validated key by key."""

    def __init__(self, item, label, error):
        self.item, self.label, self.error = item, label, error

    def fail(self, key, message, line=None):
        return self.error(message, line or self.item.lines.get(key, self.item.line), f"{self.label}.{key}")

    def claim(self) -> Claim:
        item = self.item
        cid = self.text("id", required=True)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", cid):
            raise self.fail("id", f"{cid!r} must be letters, digits, - and _")
        self.label = cid   # later messages name the claim by its id
        for key in item:
            if key not in KEYS:
                close = difflib.get_close_matches(key, KEYS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.fail(key, f"unknown key{hint}; allowed keys: {', '.join(KEYS)}")
        metric = self.choice("metric", METRICS, required=True)
        for key in ("title", "source", "statement", *REQUIRED[metric]):
            if key not in item:
                raise self.fail(key, f"missing; a {metric} claim needs {', '.join(REQUIRED[metric]) or 'no conditions'}"
                                     " besides id, title, source, statement, metric and range", item.line)
        for key, metrics in ONLY_FOR.items():
            if key in item and metric not in metrics:
                raise self.fail(key, f"only means something for metric {' or '.join(metrics)}")
        lo, hi = self.bounds()
        energy = self.choice("energy", ("measured",))
        return Claim(
            id=cid, title=self.text("title"), source=self.text("source"), statement=self.text("statement"),
            metric=metric, lo=lo, hi=hi, arch=self.choice("arch", ARCHES) or "any", cpu=self.texts("cpu"),
            cpu_threads=self.count("cpu_threads"), threads=self.threads(), models=self.models(),
            workload=self.choice("workload", WORKLOADS), tokens=self.count("tokens"), prompts=self.count("prompts"),
            baseline=self.choice("baseline", LINEAR_FORMATS), formats=self.formats(),
            head_format=self.choice("head_format", HEAD_FORMATS), runtimes=self.text("runtimes"), energy=energy,
            energy_method=self.text("energy_method"), note=self.text("note"), line=item.line)

    def text(self, key, required=False):
        value = self.item.get(key)
        if value is None and not required:
            return None
        if key not in self.item:
            raise self.fail(key, "missing; every claim needs id, title, source, statement, metric and range")
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"must be non-empty text, got {value!r}")
        return value.strip()

    def texts(self, key):
        value = self.item.get(key)
        values = value if isinstance(value, list) else [] if value is None else [value]
        if any(not isinstance(v, str) or not v.strip() for v in values):
            raise self.fail(key, f"must be text or a list of text, got {value!r}")
        return tuple(v.strip() for v in values)

    def choice(self, key, allowed, required=False):
        if key not in self.item and not required:
            return None
        value = self.item.get(key)
        if value not in allowed:
            close = difflib.get_close_matches(str(value), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.fail(key, f"unknown value {value!r}{hint}; choose from {', '.join(allowed)}")
        return value

    def count(self, key):
        if key not in self.item:
            return None
        value = self.item[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(key, f"must be an integer >= 1, got {value!r}")
        return value

    def number(self, key, value, line=None):
        number = yaml_source.number(value)
        if number is None or number < 0:
            raise self.fail(key, f"must be a number >= 0, got {value!r}", line)
        return number

    def bounds(self):
        item = self.item
        if ("range" in item) == ("min" in item):
            raise self.fail("range", "give either range: [lo, hi] or min: lo" if "range" not in item else
                            "give range or min, not both", item.line if "range" not in item else None)
        if "min" in item:
            return self.number("min", item["min"]), None
        value = item["range"]
        if not isinstance(value, list) or len(value) != 2:
            raise self.fail("range", f"must be [lo, hi], got {value!r}")
        lo, hi = (self.number("range", v, line) for v, line in zip(value, value.lines))
        if lo > hi:
            raise self.fail("range", f"lo {lo:g} is above hi {hi:g}")
        return lo, hi

    def threads(self):
        if "threads" not in self.item:
            return None
        value = self.item["threads"]
        if value == "all":
            return "all"
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail("threads", f"must be all or an integer >= 1, got {value!r}")
        return value

    def names(self, key):
        value = self.item.get(key)
        if not isinstance(value, yaml_source.LList) or not value:
            raise self.fail(key, f"must be a non-empty list, got {value!r}")
        return list(zip(value, value.lines))

    def models(self):
        if "models" not in self.item:
            return ()
        out = []
        for name, line in self.names("models"):
            try:
                label = find_model(str(name)).name   # 2.5B and 2B4T name one preset: results say 2B4T
            except ModelSpecError as e:
                raise self.fail("models", str(e), line) from None
            if label in out:
                raise self.fail("models", f"{name!r} is listed twice (as {label})", line)
            out.append(label)
        return tuple(out)

    def formats(self):
        if "formats" not in self.item:
            return ()
        out = []
        for name, line in self.names("formats"):
            if name not in LINEAR_FORMATS:
                raise self.fail("formats", f"unknown format {name!r}; choose from {', '.join(LINEAR_FORMATS)}", line)
            out.append(name)
        return tuple(out)


# --- evaluation ----------------------------------------------------------------------------------

@dataclass
class _Point:
    """One results row that counts for a claim, with its figure."""
    model: str
    format: str
    head_format: str
    threads: int
    test: str
    tokens: int
    value: float
    measured: bool | None     # energy measured (True) or estimated (False); None: no energy
    provenance: str | None


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
    machines = [r for r in results if c.arch in ("any", _arch(r.fingerprint))]
    if not machines:
        seen = ", ".join(sorted({f"{_arch(r.fingerprint) or 'unknown'} ({_cpu_name(r.fingerprint)})"
                                 for r in results}))
        return verdict(NOT_TESTABLE, f"The claim was made on {c.arch} ({' / '.join(c.cpu) or 'CPU not named'}); "
                                     f"these results come from {seen}, and another architecture cannot test it.",
                       differences=_machine_differences(c, results))
    points, why_none = _points(c, machines)
    if not points:
        return verdict(NOT_TESTABLE, why_none, differences=_differences(c, machines, []))
    if c.metric == "energy_reduction":
        measured = [p for p in points if p.measured]
        if not measured:
            prov = sorted({p.provenance or "unknown" for p in points})
            return verdict(NOT_TESTABLE, f"Energy here is estimated ({'; '.join(prov)}), not measured: only measured "
                                         "energy can test an energy claim, so the estimate is shown but not judged.",
                           _measured(c, points, " (estimated)"), _differences(c, machines, points))
        left_out = len(points) - len(measured)
        points = measured
    v, why = _judge(c, points)
    diffs = _differences(c, machines, points)
    if c.metric == "energy_reduction" and left_out:
        diffs.append(f"{left_out} points with estimated energy left out")
    return verdict(v, why, _measured(c, points), diffs)


def _points(c: Claim, machines: list) -> tuple[list[_Point], str]:
    """The points that count for the claim, or none and why (the condition that removed the last
    candidates, or the sweep's own skip reasons for the points the claim needed)."""
    rows = [(r, row) for r in machines for row in r.frame().to_dict("records")]
    stages = [
        (lambda r, row: c.baseline is None or r.baseline == c.baseline,
         lambda: f"These results have no {c.baseline} baseline (theirs: "
                 f"{', '.join(sorted({str(r.baseline) for r in machines}))}), so no {_noun(c)} against it."),
        (lambda r, row: row["format"] in c.formats,
         lambda: f"No {'/'.join(c.formats)} point ran."),
        (lambda r, row: row["workload"] == c.workload,
         lambda: f"No {c.workload} point ran ({c.workload} = {_WORKLOAD_WORDS[c.workload]})."),
        (lambda r, row: _threads_match(c, r, row["threads"]),
         lambda: f"No point ran at {_threads_words(c, machines)} (threads run: "
                 f"{', '.join(str(t) for t in sorted({row['threads'] for _, row in rows}))})."),
        (lambda r, row: row["model"] in c.models,
         lambda: f"No point of the claimed sizes ({_sizes(c.models)}) ran; sizes run: "
                 f"{_sizes(_ordered(c, {row['model'] for _, row in rows}))}."),
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
            skipped = _skip_reasons(c, machines, c.models)
            if skipped:   # the sweep's own reasons, e.g. too big for this machine's memory
                return [], why() + " The sweep skipped " + "; ".join(
                    f"{_sizes(models)} ({reason})" for reason, models in skipped.items()) + "."
            return [], why()
        rows = kept
    points = [_Point(row["model"], row["format"], row["head_format"], int(row["threads"]), row["test"],
                     int(row["tokens"]), _value(c, row), _bool(row.get("energy_measured")),
                     row.get("energy_provenance") if isinstance(row.get("energy_provenance"), str) else None)
              for _, row in rows]
    # soft conditions: prefer the claimed token count and head format, fall back to what ran
    for attr, want in (("tokens", c.tokens), ("head_format", c.head_format)):
        exact = [p for p in points if getattr(p, attr) == want]
        if want is not None and exact:
            points = exact
    return points, ""


_WORKLOAD_WORDS = {"tg": "tokens generated one at a time", "pp": "the prompt as one batch"}


def _value(c: Claim, row: dict) -> float | None:
    column = {"speedup": "speedup", "energy_reduction": "energy_reduction", "tokens_per_s": "tps_median"}[c.metric]
    v = row.get(column)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _bool(v) -> bool | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else bool(v)


def _usable(r) -> int | None:
    cpu = r.fingerprint.get("cpu") or {}
    return cpu.get("usable_cpus") or cpu.get("logical_cpus")


def _threads_match(c: Claim, r, threads) -> bool:
    return threads == (_usable(r) if c.threads == "all" else c.threads)


def _threads_words(c: Claim, machines) -> str:
    if c.threads != "all":
        return f"{c.threads} threads"
    return "all threads (" + "/".join(sorted({str(_usable(r)) for r in machines})) + " usable CPUs)"


def _skip_reasons(c: Claim, machines, models) -> dict[str, list[str]]:
    """reason -> models, for the sweep-plan skips of points the claim would have used (its
    formats or the baseline; memory reasons merged, since their figures differ per size)."""
    out: dict[str, list[str]] = {}
    for r in machines:
        for s in r.skipped:
            if (s.get("model") in models and s.get("workload") == c.workload
                    and s.get("format") in (*c.formats, c.baseline) and _threads_match(c, r, s.get("threads"))):
                reason = str(s.get("reason", "no reason recorded"))
                reason = f"{s['format']} skipped: not enough memory" if "memory" in reason \
                    else f"{s['format']} skipped: {reason}"
                if s["model"] not in out.setdefault(reason, []):
                    out[reason].append(s["model"])
    return out


def _judge(c: Claim, points: list[_Point]) -> tuple[str, str]:
    n, lo = len(points), c.lo
    below = [p for p in points if p.value < lo]
    above = [p for p in points if c.hi is not None and p.value > c.hi]
    bound = _fmt(c, lo)
    if not below:
        if not above:
            return REPRODUCED, f"{_all(n)} within the published range {range_text(c)}."
        return REPRODUCED, (f"{_all(n)} at or above the published lower bound {bound}. "
                            f"{_n(len(above), 'point')} {'is' if len(above) == 1 else 'are'} above the range "
                            f"({_list(c, above)}): better than published, which does not contradict the claim.")
    if len(below) == n:
        best = max(points, key=lambda p: p.value)
        return NOT_REPRODUCED, (f"{_all(n)} below the published lower bound {bound} "
                                f"(the best: {_fmt(c, best.value)}, {best.model}).")
    return PARTLY, (f"{len(below)} of {n} points fall below the published lower bound {bound} ({_list(c, below)}); "
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
    points = [_Point(model, r["format"], "", 0, "", 0, float(r["exact_rate"]), None, None) for r in found]
    differences = []
    if model not in c.models:
        differences.append(f"model {model} instead of {_sizes(c.models)}")
    if c.prompts and isinstance(data.get("prompts"), int) and data["prompts"] < c.prompts:
        differences.append(f"{data['prompts']} prompts instead of {c.prompts}")
    if c.tokens and data.get("tokens") != c.tokens:
        differences.append(f"{data.get('tokens')} generated tokens per prompt instead of {c.tokens}")
    measured = ", ".join(f"{r['format']} {_fmt(c, r['exact_rate'])} of {r.get('prompts')} prompts" for r in found)
    measured += f" ({model}, {data.get('tokens')} tokens each)"
    v, why = _judge(c, points)
    return verdict(v, why, measured, differences)


# --- differences ---------------------------------------------------------------------------------

def _arch(fp: dict) -> str | None:
    machine = str((fp.get("os") or {}).get("machine") or "").lower()
    if machine:
        return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return {"x86": "x86_64", "arm": "aarch64"}.get((fp.get("cpu") or {}).get("arch"))


def _cpu_name(fp: dict) -> str:
    return (fp.get("cpu") or {}).get("model_name") or "unknown CPU"


def _same_cpu(claimed: str, name: str) -> bool:
    """'Intel Core i7-13700H' names '13th Gen Intel(R) Core(TM) i7-13700H': every word of the
    claimed name appears in the model name, ignoring (R)/(TM) and case."""
    words = re.sub(r"\((r|tm)\)", " ", name.lower()).split()
    return all(w in words for w in claimed.lower().split())


def _machine_differences(c: Claim, machines) -> list[str]:
    out = []
    for fp in {json.dumps(r.fingerprint.get("cpu") or {}, sort_keys=True): r.fingerprint for r in machines}.values():
        name = _cpu_name(fp)
        if c.cpu and not any(_same_cpu(x, name) for x in c.cpu):
            claimed = " / ".join(c.cpu) + (f" ({c.arch})" if c.arch != "any" else "")
            out.append(f"CPU: {name} ({_arch(fp) or 'unknown architecture'}), not {claimed}")
    vms = sorted({(r.fingerprint.get("virtualisation") or {}).get("hypervisor") or "hypervisor unknown"
                  for r in machines if (r.fingerprint.get("virtualisation") or {}).get("virtualised")})
    if vms:
        out.append(f"ran in a virtual machine ({', '.join(vms)}): other guests may share its memory bandwidth")
    return out


def _differences(c: Claim, machines, points: list[_Point]) -> list[str]:
    out = _machine_differences(c, machines)
    usable = sorted({_usable(r) for r in machines if _usable(r)})
    of_cpu = f"; the {' / '.join(c.cpu)} has {c.cpu_threads} hardware threads" if c.cpu and c.cpu_threads else ""
    if c.threads == "all":
        out.append(f"all threads here means {'/'.join(map(str, usable))} usable CPUs{of_cpu} "
                   "(how many the published runs used is not stated)")
    elif c.threads in usable:
        out.append(f"{c.threads} threads are every usable CPU here{of_cpu}")
    missing = [m for m in c.models if m not in {p.model for p in points}]
    if missing:
        reasons = _skip_reasons(c, machines, missing)
        skipped = {m for ms in reasons.values() for m in ms}
        groups = [f"{', '.join(ms)} ({reason})" for reason, ms in reasons.items()]
        rest = [m for m in missing if m not in skipped]
        if rest:
            groups.append(f"{', '.join(rest)} (not in these results)")
        covered = _ordered(c, {p.model for p in points})
        out.append(f"sizes: {', '.join(covered) if covered else 'none'} measured of the claimed {_sizes(c.models)}; "
                   f"not measured: {'; '.join(groups)}")
    if c.tokens and points and any(p.tokens != c.tokens for p in points):
        tests = sorted({p.test for p in points})
        out.append(f"{'/'.join(tests)} instead of {c.workload}{c.tokens}")
    heads = sorted({p.head_format for p in points if p.head_format != c.head_format})
    if c.head_format and heads:
        out.append(f"the ternary points' embedding/output head is {'/'.join(heads)}; the claimed models keep it "
                   f"in {c.head_format}")
    if c.runtimes:
        ours = "/".join(c.formats) + (f" and {c.baseline}" if c.baseline else "")
        out.append(f"compares ternbench's own {ours} kernels, not {c.runtimes}")
    if c.metric == "energy_reduction" and points:
        if any(p.measured for p in points):
            prov = "; ".join(sorted({p.provenance or "" for p in points if p.measured}))
            if c.energy_method:
                out.append(f"the published energy was {c.energy_method}; these figures are measured ({prov})")
        else:
            prov = "; ".join(sorted({p.provenance or "provenance unknown" for p in points}))
            out.append(f"energy is estimated here ({prov}), not measured")
    return out


# --- text ----------------------------------------------------------------------------------------

def _g(x: float) -> str:
    return f"{round(x, 6):g}"


def _fmt(c: Claim, v: float) -> str:
    if c.metric in ("energy_reduction", "lossless"):
        return f"{100 * v:.1f}%"
    if c.metric == "tokens_per_s":
        return f"{v:.2f} tokens/s"
    return f"{v:.2f}x"


def range_text(c: Claim) -> str:
    """The published range as written: 2.37x-6.17x, 71.9%-82.2%, 5-7 tokens/s, 100%."""
    pct = c.metric in ("energy_reduction", "lossless")
    unit = "%" if pct else " tokens/s" if c.metric == "tokens_per_s" else "x"
    lo, hi = (None if v is None else _g(100 * v if pct else v) for v in (c.lo, c.hi))
    if hi is None:
        return f"at least {lo}{unit}"
    if lo == hi:
        return f"{lo}{unit}"
    return f"{lo}-{hi}{unit}" if unit == " tokens/s" else f"{lo}{unit}-{hi}{unit}"


def _noun(c: Claim) -> str:
    return {"speedup": "speed-ups", "energy_reduction": "energy reductions"}.get(c.metric, "figures")


def _ordered(c: Claim, models) -> list[str]:
    """The claim's order (smallest first), then any other label by size."""
    return sorted(models, key=lambda m: (c.models.index(m) if m in c.models else len(c.models), _size(m), m))


def _size(label: str) -> float:
    try:
        return param_count(find_model(label))
    except ModelSpecError:   # a checkpoint's label, not a preset
        return math.inf


def _sizes(models) -> str:
    models = list(models)
    return ", ".join(models) if len(models) <= 4 else f"{models[0]}-{models[-1]} ({len(models)} sizes)"


def _n(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _all(n: int) -> str:
    return "The only point lies" if n == 1 else f"All {n} points lie"


def _list(c: Claim, points) -> str:
    return ", ".join(f"{p.model} {p.format}{f' {p.test} t{p.threads}' if p.test else ''} {_fmt(c, p.value)}"
                     for p in points)


def _measured(c: Claim, points: list[_Point], label: str = "") -> str:
    values = [p.value for p in points]
    figure = _fmt(c, min(values)) if min(values) == max(values) else f"{_fmt(c, min(values))}-{_fmt(c, max(values))}"
    threads = sorted({p.threads for p in points})
    thread_text = f"{'/'.join(map(str, threads))} thread{'s' if threads != [1] else ''}"
    where = f"{_sizes(_ordered(c, {p.model for p in points}))}; {'/'.join(sorted({p.test for p in points}))}, " \
            f"{thread_text}"
    return f"{figure}{label} over {_n(len(points), 'point')} ({where})"
