"""What differs between a claim's published conditions and the results judged against it:
the machine, the threads, the sizes measured, the token counts, the head format, the programs."""
from __future__ import annotations

import json
import re

from .schema import Claim, CountedPoint
from .wording import ordered, sizes


def arch_of(fp: dict) -> str | None:
    machine = str((fp.get("os") or {}).get("machine") or "").lower()
    if machine:
        return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return {"x86": "x86_64", "arm": "aarch64"}.get((fp.get("cpu") or {}).get("arch"))


def cpu_name(fp: dict) -> str:
    return (fp.get("cpu") or {}).get("model_name") or "unknown CPU"


def same_cpu(claimed: str, name: str) -> bool:
    """'Intel Core i7-13700H' names '13th Gen Intel(R) Core(TM) i7-13700H': every word of the
    claimed name appears in the model name, ignoring (R)/(TM) and case."""
    words = re.sub(r"\((r|tm)\)", " ", name.lower()).split()
    return all(w in words for w in claimed.lower().split())


def machine_differences(c: Claim, machines) -> list[str]:
    out = []
    for fp in {json.dumps(r.fingerprint.get("cpu") or {}, sort_keys=True): r.fingerprint for r in machines}.values():
        name = cpu_name(fp)
        if c.cpu and not any(same_cpu(x, name) for x in c.cpu):
            claimed = " / ".join(c.cpu) + (f" ({c.arch})" if c.arch != "any" else "")
            out.append(f"CPU: {name} ({arch_of(fp) or 'unknown architecture'}), not {claimed}")
    vms = sorted({(r.fingerprint.get("virtualisation") or {}).get("hypervisor") or "hypervisor unknown"
                  for r in machines if (r.fingerprint.get("virtualisation") or {}).get("virtualised")})
    if vms:
        out.append(f"ran in a virtual machine ({', '.join(vms)}): other guests may share its memory bandwidth")
    return out


def list_differences(c: Claim, machines, points: list[CountedPoint], left_out=()) -> list[str]:
    """What differs between the claim's setting and these POINTS; LEFT_OUT: points measured but
    not judged (their own line says why), whose sizes are not "not measured"."""
    out = machine_differences(c, machines)
    usable = sorted({usable_cpus(r) for r in machines if usable_cpus(r)})
    of_cpu = f"; the {' / '.join(c.cpu)} has {c.cpu_threads} hardware threads" if c.cpu and c.cpu_threads else ""
    if c.threads == "all":
        out.append(f"all threads here means {'/'.join(map(str, usable))} usable CPUs{of_cpu} "
                   "(how many the published runs used is not stated)")
    elif c.threads in usable:
        out.append(f"{c.threads} threads are every usable CPU here{of_cpu}")
    missing = [m for m in c.models if m not in {p.model for p in [*points, *left_out]}]
    if missing:
        reasons = skip_reasons(c, machines, missing)
        skipped = {m for ms in reasons.values() for m in ms}
        groups = [f"{', '.join(ms)} ({reason})" for reason, ms in reasons.items()]
        rest = [m for m in missing if m not in skipped]
        if rest:
            groups.append(f"{', '.join(rest)} (not in these results)")
        covered = ordered(c, {p.model for p in points})
        out.append(f"sizes: {', '.join(covered) if covered else 'none'} measured of the claimed {sizes(c.models)}; "
                   f"not measured: {'; '.join(groups)}")
    if c.tokens and points and any(p.tokens != c.tokens for p in points):
        tests = sorted({p.test for p in points})
        out.append(f"{'/'.join(tests)} instead of {c.workload}{c.tokens}")
    heads = sorted({p.head_format for p in points if p.head_format != c.head_format})
    if c.head_format and heads:
        out.append(f"the ternary points' embedding/output head is {'/'.join(heads)}; the claimed models keep it "
                   f"in {c.head_format}")
    if c.runtimes and any("ternbench" in (p.engine, p.baseline_engine) for p in points):
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


def usable_cpus(r) -> int | None:
    cpu = r.fingerprint.get("cpu") or {}
    return cpu.get("usable_cpus") or cpu.get("logical_cpus")


def threads_match(c: Claim, r, threads) -> bool:
    return threads == (usable_cpus(r) if c.threads == "all" else c.threads)


def threads_words(c: Claim, machines) -> str:
    if c.threads != "all":
        return f"{c.threads} threads"
    return "all threads (" + "/".join(sorted({str(usable_cpus(r)) for r in machines})) + " usable CPUs)"


def skip_reasons(c: Claim, machines, models) -> dict[str, list[str]]:
    """reason -> models, for the sweep-plan skips of points the claim would have used (its
    formats or the baseline; memory reasons merged, since their figures differ per size)."""
    out: dict[str, list[str]] = {}
    for r in machines:
        for s in r.skipped:
            if (s.get("model") in models and s.get("workload") == c.workload
                    and s.get("format") in (*c.formats, c.baseline) and threads_match(c, r, s.get("threads"))):
                reason = str(s.get("reason", "no reason recorded"))
                reason = f"{s['format']} skipped: not enough memory" if "memory" in reason \
                    else f"{s['format']} skipped: {reason}"
                if s["model"] not in out.setdefault(reason, []):
                    out[reason].append(s["model"])
    return out
