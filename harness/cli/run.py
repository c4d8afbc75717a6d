"""`ternbench run CONFIG.yaml`: a configured sweep, into a results directory."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness.cli.common import EXIT_FAILURE, EXIT_OK, UsageError, print_json

HELP = """\
Run a sweep configured in YAML (see configs/*.yaml): models x engines x weight formats x head
formats x kernel variants x thread counts x workloads. Engines: ternbench's bundled runtime, and
llama.cpp and bitnet.cpp measured through their llama-bench on a GGUF of the same shape and seed. Points this machine cannot run (too little memory,
a variant the CPU lacks, more threads than CPUs) are listed as skipped, with the reason. Each
point runs in its own worker process under pyperf; each finished point is saved at once, so an
interrupted sweep loses nothing and --resume finishes it.

exit status: 0 every runnable point finished; 1 some point failed; 2 bad configuration or
arguments; 130 interrupted."""


def add_parser(sub):
    p = sub.add_parser("run", help="run a sweep configured in YAML", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path, metavar="CONFIG.yaml", help="the sweep configuration")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="results directory (default: results/NAME-DATE-TIME, and results/latest points to it)")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep in --out: run only the points it does not have yet")
    p.add_argument("--dry-run", action="store_true",
                   help="print the points, the skipped ones with reasons, and an estimated duration; run nothing")
    p.add_argument("--yes", action="store_true",
                   help=f"run even when the estimated duration exceeds {LONG_RUN_S // 3600} h and no time_budget is set")
    p.add_argument("--llamacpp-bin", metavar="DIR",
                   help="measure this llama.cpp build (its bin directory) instead of the one `ternbench engines "
                        "install llamacpp` built; for sweeps whose `engines` list llamacpp")
    p.add_argument("--bitnetcpp-bin", metavar="DIR",
                   help="the bitnet.cpp build to measure (a checkout's build/bin), for sweeps whose `engines` list "
                        "bitnetcpp")
    p.add_argument("--json", action="store_true", help="print the outcome (or the dry run) as JSON on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=run)


LONG_RUN_S = 24 * 3600   # past this estimate, without a time budget, a run asks for --yes


def skip_lines(skipped) -> list[str]:
    """The skipped points, one line per reason: twelve points skipped because llama.cpp is not
    installed are one line with the count and the fix, not twelve."""
    by_reason: dict[str, list[str]] = {}
    for s in skipped:
        by_reason.setdefault(s.reason, []).append(s.point.key)
    out = []
    for reason, keys in by_reason.items():
        what = keys[0] if len(keys) == 1 else f"{len(keys)} points ({keys[0]} and {len(keys) - 1} more)"
        out.append(f"  skip  {what}: {reason}")
    return out


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min" if seconds >= 3600 else \
        f"{seconds // 60} min {seconds % 60:02d} s"


def dry_run(config, plan, as_json: bool, energy_plan: str) -> int:
    estimates = {p.key: plan.estimate(p, config) for p in plan.points}
    if as_json:
        print_json({"config": str(config.path), "name": config.name,
                    "points": [{"key": p.key, **p.to_dict(), "estimate_s": round(estimates[p.key], 1)}
                               for p in plan.points],
                    "skipped": [{"key": s.point.key, **s.point.to_dict(), "reason": s.reason} for s in plan.skipped],
                    "unused_exclusions": plan.unused_exclusions, "energy": energy_plan,
                    "estimate_s": round(sum(estimates.values()), 1)})
        return EXIT_OK
    print(f"{config.name}: {len(plan.points)} point(s) to run, {len(plan.skipped)} skipped; "
          f"{config.processes} process(es) x ({config.warmups} warm-up + {config.repetitions} values) each")
    for p in plan.points:
        print(f"  run   {p.key:<52} ~{estimates[p.key]:7.1f} s")
    for line in skip_lines(plan.skipped):
        print(line)
    for line in plan.unused_exclusions:
        print(f"  note: the exclusion on line {line} of {config.path.name} matches no point")
    print(f"energy: {energy_plan}")
    total = sum(estimates.values())
    budget = f" (time budget {_duration(config.time_budget_s)})" if config.time_budget_s else ""
    print(f"estimated duration: about {_duration(total)}{budget}; a rough figure from typical rates, "
          "not a measurement")
    if total > LONG_RUN_S and not config.time_budget_s:
        print(f"note: more than {LONG_RUN_S // 3600} h without a time_budget: `ternbench run` will ask for --yes")
    return EXIT_OK


def energy_refusal(config, path, error) -> str:
    return f"{path}: energy backend {config.energy.backend!r} cannot be used here: {error}"


def check_energy(config, path) -> str:
    """Which energy backend the sweep would use, without measuring anything; a backend named in
    the configuration that cannot work here is refused before anything runs."""
    from harness import energy
    from harness.sweep.energy import settings

    try:
        meter, _ = energy.open_meter(settings(config.energy))
    except energy.EnergyUnavailable as e:
        raise UsageError(energy_refusal(config, path, e)) from None
    with meter:
        kind = "measured" if meter.measured else "ESTIMATED (no measuring backend works here; see ternbench sysinfo)"
        return f"{meter.name}, {kind}"


def default_out(config) -> Path:
    return Path("results") / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def point_latest(out: Path) -> None:
    """results/latest -> the newest sweep, for `make bench` and for people."""
    link = out.parent / "latest"
    try:
        if link.is_symlink() or not link.exists():
            tmp = out.parent / ".latest.tmp"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(out.name)
            tmp.replace(link)
    except OSError:
        pass


def run(args) -> int:
    from harness.energy import EnergyUnavailable
    from harness.measure.fingerprint import fingerprint as machine_fingerprint
    from harness.measure.point import tune
    from harness.sweep import plan as sweep_plan
    from harness.sweep import runner
    from harness.sweep.config import ConfigError, load_config, with_engine_bins
    from harness.sweep.results import ResultsDir, ResultsError

    try:
        config = with_engine_bins(load_config(args.config), llamacpp=args.llamacpp_bin, bitnetcpp=args.bitnetcpp_bin)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    plan = sweep_plan.expand(config)
    if not plan.points and not plan.skipped:
        raise UsageError(f"{args.config}: every point is excluded; nothing to run")
    energy_plan = check_energy(config, args.config)   # what the run would refuse, the dry run refuses too
    if args.dry_run:
        return dry_run(config, plan, args.json, energy_plan)
    estimate = sum(plan.estimate(p, config) for p in plan.points)
    if estimate > LONG_RUN_S and not config.time_budget_s and not args.yes:
        raise UsageError(f"{args.config}: the estimated duration is about {_duration(estimate)}, more than "
                         f"{LONG_RUN_S // 3600} h; set time_budget in the configuration, or add --yes to run it all "
                         "(--dry-run lists the points)")
    if not plan.points:
        for line in skip_lines(plan.skipped):
            print(line, file=sys.stderr)
        raise UsageError(f"{args.config}: no point of this sweep can run on this machine (reasons above)")
    if args.resume and not args.out:
        raise UsageError("--resume needs --out DIR: the results directory to continue")
    out = args.out or default_out(config)
    results = ResultsDir(out)
    if results.has_points() and not args.resume:
        raise UsageError(f"{out} already holds results; add --resume to finish that sweep, or choose another --out")
    if args.resume and not results.path.is_dir():
        raise UsageError(f"--resume: {out} does not exist")
    log = (lambda m: None) if args.quiet or args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    log(f"{config.name}: {len(plan.points)} point(s), {len(plan.skipped)} skipped; results in {out}")
    for line in skip_lines(plan.skipped):
        log(line)
    fingerprint = machine_fingerprint()
    tune(plan.points, log)
    try:
        outcome = runner.run(config, plan, results, fingerprint, args.resume, quiet=args.quiet or args.json)
    except runner.ResumeRefused as e:
        raise UsageError(str(e)) from None
    except EnergyUnavailable as e:
        raise UsageError(energy_refusal(config, args.config, e)) from None
    except ResultsError as e:
        raise UsageError(str(e)) from None
    if not args.out:
        point_latest(out)
    return report(outcome, out, config, plan, args.json)


def report(outcome, out: Path, config, plan, as_json: bool) -> int:
    status = 130 if outcome.interrupted else EXIT_FAILURE if outcome.failed else EXIT_OK
    if as_json:
        print_json({"results": str(out), "ok": outcome.ok, "failed": outcome.failed,
                    "already_finished": outcome.already,
                    "skipped": [{"key": s.point.key, "reason": s.reason} for s in plan.skipped],
                    "not_run_over_budget": [p.key for p in outcome.over_budget],
                    "interrupted": outcome.interrupted, "exit_status": status})
        return status
    done = len(outcome.ok) + len(outcome.already)
    print(f"{out}: {done} point(s) finished, {len(outcome.failed)} failed, {len(plan.skipped)} skipped"
          + (f", {len(outcome.over_budget)} left by the time budget" if outcome.over_budget else ""))
    for key in outcome.failed:
        print(f"  FAILED {key} (see {out}/points.jsonl and logs/)")
    if outcome.interrupted or outcome.over_budget:
        print(f"to finish: ternbench run {config.path} --out {out} --resume")
    print(f"table: {out / 'points.csv'}")
    return status
