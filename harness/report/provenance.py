"""How a result was obtained, as short labelled lines: the machine fingerprint (for
`ternbench sysinfo` and every report) and the energy method. One renderer for both: every
field is read with .get, since a fingerprint from an older or foreign sweep may lack any of
them, and what is missing shows as "unknown" rather than breaking the report."""
from __future__ import annotations

UNKNOWN = "unknown"


def _d(value) -> dict:
    return value if isinstance(value, dict) else {}


def _l(value) -> list:
    return value if isinstance(value, list) else []


def known(value) -> str:
    return UNKNOWN if value is None or value == "" else str(value)


def size(n) -> str:
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return UNKNOWN
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n:.0f} B"


def _shared_by_many(cpulist) -> bool:
    return isinstance(cpulist, str) and ("," in cpulist or "-" in cpulist)


# --- the machine fingerprint --------------------------------------------------------------------

def cpu_name(fp: dict) -> str:
    cpu = _d(fp.get("cpu"))
    return known(cpu.get("model_name") or cpu.get("vendor"))


def cores(fp: dict) -> str:
    cpu = _d(fp.get("cpu"))
    return (f"{known(cpu.get('logical_cpus'))} logical CPUs, {known(cpu.get('physical_cores'))} physical cores, "
            f"{known(cpu.get('sockets'))} socket(s); {known(cpu.get('usable_cpus'))} usable")


def virtualisation(fp: dict) -> str:
    v = _d(fp.get("virtualisation"))
    text = {True: "virtual machine", False: "bare metal"}.get(v.get("virtualised"), UNKNOWN)
    if v.get("virtualised") and v.get("hypervisor"):
        text += f" ({v['hypervisor']} guest)"
    if v.get("container"):
        text += f", in a {v['container']} container"
    return text


def _cpu(fp: dict) -> str:
    cpu = _d(fp.get("cpu"))
    ids = ", ".join(f"{k} {v}" for k, v in _d(cpu.get("ids")).items() if v is not None and k != "microcode")
    return f"{cpu_name(fp)} ({known(cpu.get('vendor'))}; {known(cpu.get('arch'))}" + (f"; {ids}" if ids else "") + ")"


def _isa(fp: dict) -> str:
    isa = _d(_d(fp.get("cpu")).get("isa"))
    if not isa:
        return UNKNOWN
    have = " ".join(k for k, v in isa.items() if v) or "none of them"
    lacking = " ".join(k for k, v in isa.items() if not v)
    return have + (f" (lacks {lacking})" if lacking else "")


def _caches(fp: dict) -> str:
    c = _d(fp.get("caches"))
    kinds = {"Data": "d", "Instruction": "i"}
    parts = [f"L{known(x.get('level'))}{kinds.get(x.get('type'), '')} {size(x.get('size_bytes'))}"
             + (f" (shared by CPUs {x['shared_cpu_list']})" if _shared_by_many(x.get("shared_cpu_list")) else "")
             for x in _l(c.get("levels")) if isinstance(x, dict)]
    llc = f"benchmarks size working sets by {size(c.get('llc_bytes'))}" if c.get("llc_bytes") else ""
    if c.get("llc_source") and not parts:
        llc += f" ({c['llc_source']})"
    return "; ".join(filter(None, [", ".join(parts), llc])) or UNKNOWN


def _memory(fp: dict) -> str:
    m = _d(fp.get("memory"))
    numa = "; ".join(f"node{n.get('node')}: CPUs {known(n.get('cpulist'))}" for n in _l(m.get("numa"))
                     if isinstance(n, dict))
    nodes = f"{m['numa_nodes']} NUMA node(s)" + (f" ({numa})" if numa else "") if m.get("numa_nodes") \
        else "NUMA unknown"
    return f"{size(m.get('total_bytes'))}; {nodes}; transparent huge pages {known(m.get('transparent_hugepages'))}"


def _frequency(fp: dict) -> str:
    f = _d(fp.get("frequency"))
    limits = (f"{f['min_khz'] / 1e6:.2f}-{f['max_khz'] / 1e6:.2f} GHz"
              if isinstance(f.get("min_khz"), (int, float)) and isinstance(f.get("max_khz"), (int, float))
              else "limits unknown")
    turbo = {True: "on", False: "off"}.get(f.get("turbo"), UNKNOWN)
    return f"governor {known(f.get('governor'))}, {limits}, turbo {turbo}"


def _os(fp: dict) -> str:
    o = _d(fp.get("os"))
    return (f"{known(o.get('distribution'))}; {known(o.get('system'))} {known(o.get('kernel'))} "
            f"{known(o.get('machine'))}; {known(o.get('python'))}")


def _runtime(fp: dict) -> str:
    rt = _d(fp.get("runtime"))
    usable = " ".join(str(v.get("name")) for v in _l(rt.get("variants")) if isinstance(v, dict) and v.get("usable"))
    return (f"{known(rt.get('version'))}, built with {known(rt.get('build'))}; variants usable: "
            f"{usable or UNKNOWN}; best: {known(rt.get('best_variant'))}")


def _ternbench(fp: dict, manifest: dict) -> str:
    tb = _d(fp.get("ternbench"))
    commit = tb.get("git_commit") or _d(manifest.get("machine")).get("ternbench_commit")
    dirty = ", uncommitted changes" if tb.get("git_dirty") else ""
    return f"{known(tb.get('version'))}, commit {known(commit)}{dirty}"


def fingerprint_rows(fp: dict, manifest: dict | None = None) -> list[tuple[str, str]]:
    """(label, text) rows of a fingerprint; `manifest` fills in what old fingerprints lack."""
    fp = fp if isinstance(fp, dict) else {}
    if not fp:
        return [("fingerprint", "no sysinfo.json in this results directory: the machine is unknown")]
    virt = _d(fp.get("virtualisation"))
    evidence = "; ".join(str(e) for e in _l(virt.get("evidence")))
    rows = [("CPU", _cpu(fp)), ("cores", cores(fp)), ("kernel ISA", _isa(fp)), ("caches", _caches(fp)),
            ("memory", _memory(fp)), ("frequency", _frequency(fp)),
            ("virtualised", virtualisation(fp) + (f" (evidence: {evidence})" if evidence else "")),
            ("OS", _os(fp)), ("runtime build", _runtime(fp)), ("ternbench", _ternbench(fp, _d(manifest)))]
    return rows + [("note", str(n)) for n in _l(fp.get("notes"))]


def summary_lines(fp: dict) -> list[str]:
    """The fingerprint as labelled lines for a terminal."""
    return [f"{label:<14}{text}" for label, text in fingerprint_rows(fp)]


# --- the energy method --------------------------------------------------------------------------
def energy_summary(results) -> dict:
    """How the energy figures were obtained: the backend, measured or ESTIMATED, provenance,
    idle power, and why every other backend was not used."""
    e = results.energy if isinstance(results.energy, dict) else None
    if not e:
        return {"available": False, "backend": None, "measured": None, "label": "none",
                "provenance": None, "idle_watts": None, "idle_seconds": None, "not_used": [],
                "note": "no energy.json: this sweep recorded no energy figures"}
    idle = _d(e.get("idle"))
    measured = e.get("measured") is True
    return {"available": True, "backend": known(e.get("backend")), "measured": measured,
            "label": "measured" if measured else "ESTIMATED",
            "provenance": known(e.get("provenance")),
            "idle_watts": idle.get("watts") if isinstance(idle.get("watts"), (int, float)) else None,
            "idle_seconds": idle.get("seconds") if isinstance(idle.get("seconds"), (int, float)) else None,
            "not_used": [(str(k), str(v)) for k, v in _d(e.get("not_used")).items()],
            "note": None if measured else
            "an estimate, not a measurement: this machine exposes no energy counter ternbench can read"}
