"""Runs a sweep: each point in its own worker subprocesses (measure/execute.py), so that a crash,
SIGILL or out-of-memory in one point is recorded as a failed point and the sweep goes on. The
points compared with each other run interleaved in rounds of one process each, in a shuffled
order; their records are on disk before the next group starts."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field, replace

from harness.measure import execute, record
from harness.measure.energy_window import worker_settings
from harness.measure.fingerprint import cpu_identity
from harness.measure.point import Files, Point, Settings
from harness.sweep.config import SweepConfig, identities_differ
from harness.sweep.plan import Plan, Skipped
from harness.sweep.progress import Progress
from harness.sweep.results import ResultsDir, write_atomic
from harness.sweep.tables import baseline_for

from . import energy as sweep_energy


class ResumeRefused(Exception):
    """The results directory holds points that the new configuration would not be comparable with."""


@dataclass
class Outcome:
    ok: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)    # finished by an earlier invocation (--resume)
    over_budget: list[Point] = field(default_factory=list)
    interrupted: bool = False


def manifest(config: SweepConfig, fingerprint: dict, energy: dict) -> dict:
    """What must match for a --resume: the measurement settings and models, the machine and
    build that measured, and the energy backend that `auto` chose."""
    return {"config": config.comparability(),
            "machine": {"cpu": fingerprint["cpu"]["model_name"], "cpu_id": cpu_identity(fingerprint),
                        "runtime_build": fingerprint["runtime"]["build"],
                        "ternbench_commit": fingerprint["ternbench"]["git_commit"],
                        "energy_backend": energy["backend"]}}


def _differences(old, new, prefix=""):
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            if k in old and k in new and prefix == "config.models." and identities_differ(old[k], new[k]) is None:
                continue   # recorded by an earlier version, with the preset's location: not comparable
            if k in old and k in new:
                yield from _differences(old[k], new[k], f"{prefix}{k}.")
            elif prefix == "config.models.":
                continue   # a model added or left out only adds or leaves out points
            elif prefix == "machine." and k not in old:
                continue   # recorded since the results were written (cpu_id): nothing to compare
            else:
                yield prefix + k, old.get(k), new.get(k)
    elif old != new:
        yield prefix.rstrip("."), old, new


def check_resumable(results: ResultsDir, config: SweepConfig, fingerprint: dict, energy: dict) -> None:
    old = results.read_json("manifest.json")
    if old is None:
        raise ResumeRefused(f"{results.path} has points but no manifest.json: it was not written by "
                            "`ternbench run`; use another --out")
    for key, was, now in _differences(old, manifest(config, fingerprint, energy)):
        raise ResumeRefused(f"cannot resume {results.path}: {key!r} changed from {was!r} to {now!r}, so the "
                            "points measured before would not be comparable with new ones; run into a new --out")


def prepare(results: ResultsDir, config: SweepConfig, plan: Plan, fingerprint: dict, energy: dict,
            resume: bool) -> None:
    results.create()
    if resume:
        results.repair()
        old = results.file("config.yaml")
        if old.is_file() and old.read_text() != config.text:
            import hashlib

            sha = hashlib.sha256(old.read_bytes()).hexdigest()[:12]
            os.replace(old, results.file(f"config-{sha}.yaml"))
    write_atomic(results.file("config.yaml"), config.text)
    results.write_json("sysinfo.json", fingerprint)
    results.write_json("manifest.json", manifest(config, fingerprint, energy))
    results.write_json("energy.json", energy)
    write_plan(results, config, plan, [])


def write_plan(results: ResultsDir, config: SweepConfig, plan: Plan, over_budget: list[Point]) -> None:
    def skip(s: Skipped):
        return {"key": s.point.key, **s.point.to_dict(), "test": s.point.test, "reason": s.reason}

    budget = [Skipped(p, f"not run: the time budget ({config.time_budget_s:.0f} s) would be exceeded; "
                         "--resume runs it") for p in over_budget]
    results.write_json("plan.json", {
        "config": config.name, "baseline": config.baseline,
        "points": [{"key": p.key, **p.to_dict(), "test": p.test} for p in plan.points],
        "skipped": [skip(s) for s in plan.skipped + budget]})


def comparison_groups(points: list[Point]) -> list[list[Point]]:
    """Consecutive points that are compared with each other (the engines, variants, formats and
    heads of one model, threads and test: the plan puts them next to each other), run interleaved."""
    groups: list[list[Point]] = []
    for p in points:
        if groups and (groups[-1][0].model, groups[-1][0].threads, groups[-1][0].test) == \
                (p.model, p.threads, p.test):
            groups[-1].append(p)
        else:
            groups.append([p])
    return groups


def _label(p: Point) -> str:
    """A point within its comparison group, as the progress display names it."""
    return f"{p.format}+{p.head_format}" if p.engine == "ternbench" else f"{p.engine} {p.format}"


def _sources(group: list[Point], plan: Plan, seed: int, note) -> tuple[dict, dict]:
    """Where each point's worker finds its model: for an external engine, the GGUF of the model's
    shape and seed in the engine's format, written and quantised now (cached), outside any timed
    region. Returns the sources and, for points whose file could not be made, why."""
    from harness.engines import EngineError, gguf_model
    from harness.measure.point import Source
    from runtime.tuning import cache_dir

    ref = plan.model_refs[group[0].model]
    sources, failed, said = {}, {}, set()
    for p in group:
        if p.engine == "ternbench":
            sources[p] = ref.source
            continue
        engine = plan.engines[p.engine]
        try:
            path = ref.path if ref.kind == "gguf" else gguf_model.model_file(
                ref.spec, seed, p.format, cache_dir(), engine, note, ref.identity if ref.kind == "checkpoint" else None)
        except (EngineError, gguf_model.GgufError, OSError) as e:
            failed[p] = f"{p.engine}: no {p.format} GGUF of {p.model}: {e}"
            continue
        sources[p] = Source("gguf", str(path), ref.spec, engine)
        differs = gguf_model.engine_activation(p.engine, ref.spec.activation)
        if differs and p.engine not in said:
            said.add(p.engine)
            note(f"converted: {p.model} for {differs}")
    return sources, failed


def why_more_rounds(interim: list, baseline: str | None) -> str | None:
    """Why a sweep's group needs another round, or None: a point unstable by its conditions, or
    a speed-up (each point's process means against its baseline's, paired by round) whose
    interval is missing or wider than stats.NARROW (about +-5%)."""
    from harness.measure import stats

    for i in interim:
        if i.conditions.get("unstable"):
            return f"{_label(i.point)} unstable ({'; '.join(i.conditions['unstable'])})"
    rows = [{**i.point.to_dict(), "test": i.point.test, "interim": i} for i in interim]
    for row in rows:
        base = baseline_for(row, rows, baseline)
        tps = row["interim"].process_tps
        if base is None or base is row or not tps or len(base["interim"].process_tps) != len(tps):
            continue
        r = stats.paired_ratio(tps, base["interim"].process_tps)
        if r.low is None or r.high / r.low > stats.NARROW:
            return f"{_label(row['interim'].point)} speed-up {r.value:.2f}x, 95% {r.note or f'{r.low:.2f}x-{r.high:.2f}x'}"
    return None


def why_another_ab_round(interim: list, undecided) -> str | None:
    """An A/B run's rule instead (each point measured under two builds, the baseline build's
    first): another round while undecided(base, candidate) says more rounds could still change
    the gate's verdict on some point. A noisy point whose verdict is settled needs none: the
    pairing already cancels what the host does to a whole round."""
    seen: dict[str, list] = {}
    for i in interim:
        base = seen.setdefault(i.point.key, i.process_tps)
        if base is not i.process_tps and i.process_tps and len(base) == len(i.process_tps):
            why = undecided(base, i.process_tps)
            if why:
                return f"{_label(i.point)} candidate against baseline build {why}"
    return None


@dataclass(frozen=True)
class Arm:
    """One build measured by a sweep into its own results directory: the checkout's (workspace
    None), or another revision's in an A/B check (gate/ab.py)."""
    results: ResultsDir
    fingerprint: dict
    workspace: str | None = None


def _more_rounds(config: SweepConfig, progress: Progress, t0: float, rest: list, plan: Plan, arms: int, undecided=None):
    """The group's extra-round rule: another round while why_more_rounds (in an A/B run,
    why_another_ab_round) gives a reason and the round costs no later group that the time
    budget would otherwise still hold. (Groups the
    budget cannot hold either way do not count: when the plan is larger than the budget, the
    comparisons that do run are better measured, not traded for ones that never would.)"""
    def more(interim) -> bool:
        why = why_another_ab_round(interim, undecided) if undecided else why_more_rounds(interim, config.baseline)
        if why is None:
            return False
        one_round = sum(plan.estimate(i.point, config) for i in interim) / config.processes * progress.scale()
        if config.time_budget_s:
            left = config.time_budget_s - (time.monotonic() - t0)
            costs = [_estimate(plan, config, g, arms) * progress.scale() for g in rest]
            if one_round > left or _fitting(costs, left - one_round) < _fitting(costs, left):
                progress.note(f"no extra round ({why}): the time budget would not hold it and the groups after it")
                return False
        progress.note(f"one more round: {why}")
        return True

    return more


def _estimate(plan: Plan, config: SweepConfig, group: list, arms: int) -> float:
    """A group's seconds by the plan's typical rates, for every arm (the Progress scales it to this machine)."""
    return arms * sum(plan.estimate(p, config) for p in group)


def _fitting(costs: list[float], seconds: float) -> int:
    """How many of the next groups run within seconds: the sweep stops at the first that does not fit."""
    n = 0
    for c in costs:
        if c > seconds:
            break
        seconds -= c
        n += 1
    return n


def run(config: SweepConfig, plan: Plan, results: ResultsDir, fingerprint: dict, resume: bool,
        quiet: bool = False, on_record=None) -> Outcome:
    return run_arms(config, plan, [Arm(results, fingerprint)], resume, quiet, on_record)


def run_arms(config: SweepConfig, plan: Plan, arms: list[Arm], resume: bool, quiet: bool = False,
             on_record=None, undecided=None) -> Outcome:
    """The sweep, once per arm, each point of every arm interleaved with the points it is compared
    with, and every record on disk when its group is done. on_record(results, record), if given,
    hears of each record once it is on disk (a fleet node streams it to the driver); undecided,
    in an A/B run, is the gate's rule for another round (why_more_rounds)."""
    log = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    energy = sweep_energy.prepare(config.energy, log)
    settings = Settings(config.repetitions, config.warmups, config.processes, config.seed, config.pin_threads,
                        worker_settings(energy), energy["idle"]["watts"])
    for arm in arms:
        if resume and arm.results.has_points():
            check_resumable(arm.results, config, arm.fingerprint, energy)
        prepare(arm.results, config, plan, arm.fingerprint, energy, resume)
    outcome = Outcome()
    finished = [{k for k, r in arm.results.latest().items() if r["status"] == "ok"} for arm in arms]
    todo = [p for p in plan.points if not all(p.key in f for f in finished)]
    outcome.already = [p.key for p in plan.points if all(p.key in f for f in finished)]
    groups = comparison_groups(todo)
    progress = Progress([_estimate(plan, config, g, len(arms)) for g in groups], quiet)
    if outcome.already:
        progress.note(f"{len(outcome.already)} point(s) already finished in {arms[0].results.path}; running the "
                      f"other {len(todo)}")
    t0 = time.monotonic()
    try:
        for i, group in enumerate(groups):
            est = _estimate(plan, config, group, len(arms))
            if config.time_budget_s and time.monotonic() - t0 + est * progress.scale() > config.time_budget_s:
                outcome.over_budget = [p for g in groups[i:] for p in g]
                progress.note(f"time budget of {config.time_budget_s:.0f} s reached: {len(outcome.over_budget)} "
                              "point(s) not run (--resume runs them)")
                break
            first = group[0]
            # an engine's GGUF is written (once, then cached) before the group's clock starts: a
            # one-off file is no measure of how fast the rest of the sweep will go
            sources, unprepared = _sources(group, plan, config.seed, progress.note)
            progress.start(f"{first.model}/t{first.threads}/{first.test}: " + ", ".join(_label(p) for p in group), est)
            owners = [(arm, p) for arm, done in zip(arms, finished) for p in group
                      if p.key not in done and p not in unprepared]
            jobs = [execute.Job(p, sources[p], replace(settings, workspace=arm.workspace),
                                Files.under(arm.results.path, p)) for arm, p in owners]
            more = _more_rounds(config, progress, t0, groups[i + 1:], plan, len(arms), undecided)
            records = execute.run_group(jobs, progress.tick, config.seed, more,
                                        config.max_processes or config.processes) if jobs else []
            for p, why in unprepared.items():
                owners += [(arm, p) for arm, done in zip(arms, finished) if p.key not in done]
                records += [record.failed(p, why, "", "", time.time(), time.time())
                            for arm, done in zip(arms, finished) if p.key not in done]
            for (arm, _), rec in zip(owners, records):
                arm.results.append(rec)
                if on_record:
                    on_record(arm.results, rec)
                if arm is arms[0]:
                    (outcome.ok if rec["status"] == "ok" else outcome.failed).append(rec["key"])
            for arm in arms:
                arm.results.rebuild_tables(config.baseline)
            progress.finish("; ".join(f"{_label(p)} {r['tokens_per_s']['median']:.2f} tokens/s" if r["status"] == "ok"
                                      else f"{_label(p)} FAILED, {r['reason']}" for (_, p), r in zip(owners, records)))
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        progress.close()
        for arm in arms:
            write_plan(arm.results, config, plan, outcome.over_budget)
            arm.results.rebuild_tables(config.baseline)
    return outcome
