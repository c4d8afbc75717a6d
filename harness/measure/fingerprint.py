"""A fingerprint of this machine: everything a ternbench result depends on, as plain JSON.

Hardware facts are read through two roots, `proc` and `sys`, so that tests can point them
at fake trees; psutil and systemd-detect-virt look at the live system, so they are only
consulted when the roots are the live ones. Facts about this process and its software
(usable CPUs, kernel release, Python, the runtime build, the git commit) always come from
the live system. No reader raises: what cannot be read is None, and `notes` says why.
"""
from __future__ import annotations

import importlib.metadata
import platform
import re
import shutil
import subprocess
from pathlib import Path

import psutil

import harness
import runtime
from runtime.cpu import ARM_ISA, X86_ISA, parse_cpuinfo  # noqa: F401  (re-exported for tests)

SCHEMA = 1
LIVE_PROC, LIVE_SYS = Path("/proc"), Path("/sys")
COMMAND_TIMEOUT_S = 10
PACKAGE_ROOT = Path(harness.ROOT)

# MIDR implementer codes and a few common part numbers (linux arch/arm64/include/asm/cputype.h).
ARM_IMPLEMENTERS = {0x41: "ARM", 0x42: "Broadcom", 0x43: "Cavium", 0x46: "Fujitsu", 0x48: "HiSilicon",
                    0x4E: "NVIDIA", 0x50: "APM", 0x51: "Qualcomm", 0x53: "Samsung", 0x61: "Apple",
                    0x6D: "Microsoft", 0xC0: "Ampere"}
ARM_PARTS = {(0x41, 0xD08): "Cortex-A72", (0x41, 0xD0B): "Cortex-A76", (0x41, 0xD0C): "Neoverse-N1",
             (0x41, 0xD40): "Neoverse-V1", (0x41, 0xD49): "Neoverse-N2", (0x41, 0xD4F): "Neoverse-V2",
             (0x41, 0xD84): "Neoverse-V3"}

# systemd-detect-virt identifiers, and DMI strings (checked in this order), to display names
HYPERVISOR_NAMES = {"kvm": "KVM", "qemu": "QEMU", "vmware": "VMware", "microsoft": "Hyper-V", "xen": "Xen",
                    "oracle": "VirtualBox", "amazon": "Amazon EC2 (Nitro)", "google": "Google Compute Engine",
                    "parallels": "Parallels", "bhyve": "bhyve", "apple": "Apple Virtualization"}
DMI_HYPERVISORS = (("kvm", "KVM"), ("qemu", "QEMU"), ("vmware", "VMware"), ("virtualbox", "VirtualBox"),
                   ("innotek", "VirtualBox"), ("xen", "Xen"), ("virtual machine", "Hyper-V"),
                   ("amazon ec2", "Amazon EC2 (Nitro)"), ("google compute engine", "Google Compute Engine"))

CPUFREQ_NOTE = "not readable (cpufreq not exposed, typical in VMs and containers)"


def fingerprint(proc: Path = LIVE_PROC, sys: Path = LIVE_SYS) -> dict:
    """The machine as a JSON-serialisable dict; `notes` lists what could not be read."""
    proc, sys = Path(proc), Path(sys)
    live = proc == LIVE_PROC and sys == LIVE_SYS
    notes: list[str] = []
    cpus = read_cpuinfo(proc, notes)
    return {
        "schema": SCHEMA,
        "cpu": cpu_section(cpus, sys, notes, live),
        "caches": cache_section(sys, notes),
        "memory": memory_section(proc, sys, notes, live),
        "os": os_section(),
        "frequency": frequency_section(sys, notes),
        "virtualisation": virtualisation_section(cpus, sys, notes, live),
        "runtime": runtime_section(),
        "ternbench": ternbench_section(PACKAGE_ROOT, notes),
        "notes": notes,
    }


# --- small readers: None when missing, unreadable or malformed --------------------------------

def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(path: Path) -> int | None:
    try:
        return int(_read(path))
    except (TypeError, ValueError):
        return None


def _int(text: str | None, base: int = 10) -> int | None:
    try:
        return int(text, base)
    except (TypeError, ValueError):
        return None


def _numbered(base: Path, pattern: str, prefix: str) -> list[Path]:
    """base/pattern matches sorted by their number (index10 after index9)."""
    found = [p for p in base.glob(pattern) if p.name[len(prefix):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(prefix):]))


def cpulist_count(text: str | None) -> int | None:
    """'0-3,8-11' -> 8; None when not a CPU list."""
    if text is None:
        return None
    count = 0
    try:
        for part in filter(None, text.split(",")):
            lo, _, hi = part.partition("-")
            count += int(hi or lo) - int(lo) + 1
    except ValueError:
        return None
    return count


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, cwd=cwd)
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return None


# --- CPU ----------------------------------------------------------------------------------------

def read_cpuinfo(proc: Path, notes: list[str]) -> list[dict[str, str]]:
    text = _read(proc / "cpuinfo")
    cpus = parse_cpuinfo(text) if text else []
    if not cpus:
        notes.append(f"cpu: {proc / 'cpuinfo'} not readable: model, ISA flags and core ids unknown")
    return cpus


def _arm_ids(first: dict[str, str]) -> dict:
    return {"implementer": first.get("CPU implementer"), "architecture": first.get("CPU architecture"),
            "variant": first.get("CPU variant"), "part": first.get("CPU part"),
            "revision": _int(first.get("CPU revision"))}


def _x86_ids(first: dict[str, str]) -> dict:
    return {"family": _int(first.get("cpu family")), "model": _int(first.get("model")),
            "stepping": _int(first.get("stepping")), "microcode": first.get("microcode")}


def _isa(flags: set[str], arm: bool) -> dict[str, bool]:
    if arm:
        # aarch64 says asimd; 32-bit ARM kernels say neon
        return {"neon": "asimd" in flags or "neon" in flags, **{name: name in flags for name in ARM_ISA}}
    return {name: name in flags for name in X86_ISA}


def _arm_name(first: dict[str, str]) -> tuple[str | None, str | None]:
    """(vendor, model name) from the MIDR fields of an ARM cpuinfo block."""
    imp, part = _int(first.get("CPU implementer"), 16), _int(first.get("CPU part"), 16)
    vendor = ARM_IMPLEMENTERS.get(imp, first.get("CPU implementer"))
    name = first.get("model name")
    if not name and (imp, part) in ARM_PARTS:
        name = f"{vendor} {ARM_PARTS[imp, part]}"
    elif not name and part is not None:
        name = f"{vendor} part {first['CPU part']}"
    return vendor, name


def _topology(cpus: list[dict[str, str]], sys: Path) -> tuple[int | None, int | None]:
    """(physical cores, sockets): from sysfs topology, else from cpuinfo's core and physical ids."""
    cores, sockets = set(), set()
    for topo in _numbered(sys / "devices/system/cpu", "cpu*", "cpu"):
        # the threads sharing a core name that core, even where core_id is not unique (some ARM)
        siblings = _read(topo / "topology/core_cpus_list") or _read(topo / "topology/thread_siblings_list")
        package = _read(topo / "topology/physical_package_id")
        if siblings:
            cores.add(siblings)
        if package not in (None, "-1"):
            sockets.add(package)
    if not cores:
        cores = {(c.get("physical id"), c["core id"]) for c in cpus if "core id" in c}
    if not sockets:
        sockets = {c["physical id"] for c in cpus if "physical id" in c}
    return len(cores) or None, len(sockets) or None


def cpu_section(cpus: list[dict[str, str]], sys: Path, notes: list[str], live: bool) -> dict:
    first = cpus[0] if cpus else {}
    arm = "CPU implementer" in first
    flags = (first.get("flags") or first.get("Features") or "").split()
    vendor, name = _arm_name(first) if arm else (first.get("vendor_id"), first.get("model name"))
    logical = len(cpus) or cpulist_count(_read(sys / "devices/system/cpu/online"))
    cores, sockets = _topology(cpus, sys)
    if cores is None and live:
        cores = psutil.cpu_count(logical=False)
    if cores is None:
        notes.append("cpu: physical cores unknown (no sysfs topology, no core ids in cpuinfo)")
    return {
        "vendor": vendor, "model_name": name, "arch": ("arm" if arm else "x86") if first else None,
        "ids": _arm_ids(first) if arm else _x86_ids(first) if first else {},
        "isa": _isa(set(flags), arm) if first else {},
        "flags": flags,
        "logical_cpus": logical, "physical_cores": cores, "sockets": sockets,
        "usable_cpus": runtime.usable_cpus(),
    }


def cpu_identity(fp: dict) -> str | None:
    """What tells two CPUs apart that may share a marketing name ("AMD EPYC" is a Zen 4 and a Zen
    5): vendor, family, model and stepping (x86), or implementer, part, variant and revision (ARM)."""
    cpu = fp.get("cpu") if isinstance(fp, dict) else None
    ids = (cpu or {}).get("ids") or {}
    if not ids:
        return None
    keys = ("family", "model", "stepping") if cpu.get("arch") == "x86" else ("implementer", "part", "variant",
                                                                           "revision")
    return " ".join([str(cpu.get("vendor") or "unknown")] + [f"{k} {ids.get(k)}" for k in keys])


# --- caches -------------------------------------------------------------------------------------

def _cache_size(path: Path) -> int | None:
    text = _read(path)
    try:
        return runtime.cpu.parse_size(text) if text else None
    except ValueError:
        return None


def cache_section(sys: Path, notes: list[str]) -> dict:
    base = sys / "devices/system/cpu/cpu0/cache"
    levels = []
    for index in _numbered(base, "index*", "index"):
        entry = {"level": _read_int(index / "level"), "type": _read(index / "type"),
                 "size_bytes": _cache_size(index / "size"), "shared_cpu_list": _read(index / "shared_cpu_list"),
                 "line_bytes": _read_int(index / "coherency_line_size")}
        if entry["level"] is not None or entry["size_bytes"] is not None:
            levels.append(entry)
    if not levels:
        notes.append(f"caches: {base} not readable")
    # what the benchmarks size their working sets by (a stated default when unreadable)
    llc, source = runtime.cpu.last_level_cache_bytes(base)
    return {"levels": levels, "llc_bytes": llc, "llc_source": source}


# --- memory -------------------------------------------------------------------------------------

def _meminfo_total(path: Path) -> int | None:
    """MemTotal in bytes from a meminfo file (/proc/meminfo or a NUMA node's)."""
    match = re.search(r"MemTotal:\s*(\d+)\s*kB", _read(path) or "")
    return int(match.group(1)) * 1024 if match else None


def _numa_nodes(sys: Path) -> list[dict] | None:
    base = sys / "devices/system/node"
    if not base.is_dir():
        return None
    return [{"node": int(node.name[4:]), "cpulist": _read(node / "cpulist"),
             "memory_bytes": _meminfo_total(node / "meminfo")}
            for node in _numbered(base, "node*", "node")]


def _bracketed(text: str | None) -> str | None:
    """The selected value of a sysfs choice file: 'always [madvise] never' -> 'madvise'."""
    match = re.search(r"\[(\w+)\]", text or "")
    return match.group(1) if match else None


def memory_section(proc: Path, sys: Path, notes: list[str], live: bool) -> dict:
    total = _meminfo_total(proc / "meminfo")
    if total is None and live:
        total = psutil.virtual_memory().total
    if total is None:
        notes.append(f"memory: total not readable ({proc / 'meminfo'})")
    nodes = _numa_nodes(sys)
    if not nodes:
        notes.append("memory: NUMA topology not readable (no sysfs node directory)")
    # the runtime asks for transparent huge pages for large buffers; the mode decides if it gets them
    thp = _bracketed(_read(sys / "kernel/mm/transparent_hugepage/enabled"))
    return {"total_bytes": total, "numa_nodes": len(nodes) if nodes else None, "numa": nodes or [],
            "transparent_hugepages": thp}


# --- OS -----------------------------------------------------------------------------------------

def distribution(os_release: Path = Path("/etc/os-release")) -> str | None:
    match = re.search(r'^PRETTY_NAME=["\']?(.*?)["\']?$', _read(os_release) or "", re.MULTILINE)
    return match.group(1) if match else None


def os_section() -> dict:
    return {"system": platform.system(), "kernel": platform.release(), "machine": platform.machine(),
            "distribution": distribution(),
            "python": f"{platform.python_implementation()} {platform.python_version()}"}


# --- frequency ----------------------------------------------------------------------------------

def _turbo(sys: Path) -> tuple[bool | None, str | None]:
    """Whether turbo / boost is enabled, and the file that says so."""
    cpu = sys / "devices/system/cpu"
    no_turbo = cpu / "intel_pstate/no_turbo"
    value = _read_int(no_turbo)
    if value is not None:
        return value == 0, str(no_turbo)
    for boost in (cpu / "cpufreq/boost", cpu / "cpu0/cpufreq/boost"):  # global (acpi-cpufreq), per policy (amd-pstate)
        value = _read_int(boost)
        if value is not None:
            return value == 1, str(boost)
    return None, None


def frequency_section(sys: Path, notes: list[str]) -> dict:
    cpufreq = sys / "devices/system/cpu/cpu0/cpufreq"
    turbo, turbo_source = _turbo(sys)
    out = {"governor": _read(cpufreq / "scaling_governor"), "driver": _read(cpufreq / "scaling_driver"),
           "min_khz": _read_int(cpufreq / "cpuinfo_min_freq"), "max_khz": _read_int(cpufreq / "cpuinfo_max_freq"),
           "turbo": turbo, "turbo_source": turbo_source}
    missing = [k for k in ("governor", "min_khz", "max_khz", "turbo") if out[k] is None]
    if missing:
        notes.append(f"frequency: {', '.join(missing)} {CPUFREQ_NOTE}")
    return out


# --- virtualisation -----------------------------------------------------------------------------

def detect_virt() -> dict[str, str | None] | None:
    """systemd-detect-virt's verdicts ('kvm', 'docker', 'none'...), or None without the program."""
    exe = shutil.which("systemd-detect-virt")
    if not exe:
        return None
    out = {}
    for kind in ("vm", "container"):
        proc = _run([exe, f"--{kind}"])
        out[kind] = (proc.stdout.strip() or None) if proc else None
    return out


def _dmi_hypervisor(vendor: str | None, product: str | None) -> str | None:
    text = f"{product or ''} {vendor or ''}".lower()
    return next((name for key, name in DMI_HYPERVISORS if key in text), None)


def virtualisation_section(cpus: list[dict[str, str]], sys: Path, notes: list[str], live: bool) -> dict:
    first = cpus[0] if cpus else {}
    evidence, verdicts, names = [], [], []
    if "flags" in first:  # x86: every mainstream hypervisor sets this CPUID bit
        has_flag = "hypervisor" in first["flags"].split()
        verdicts.append(has_flag)
        evidence.append("cpuinfo flag 'hypervisor' " + ("set" if has_flag else "not set"))
    hv_type = _read(sys / "hypervisor/type")
    if hv_type:
        verdicts.append(True)
        names.append(HYPERVISOR_NAMES.get(hv_type.lower(), hv_type))
        evidence.append(f"{sys / 'hypervisor/type'}: {hv_type}")
    dmi = {k: _read(sys / "class/dmi/id" / k) for k in ("sys_vendor", "product_name")}
    dmi_name = _dmi_hypervisor(dmi["sys_vendor"], dmi["product_name"])
    if dmi_name:
        verdicts.append(True)
        names.append(dmi_name)
        evidence.append(f"DMI: {dmi['sys_vendor']} / {dmi['product_name']}")
    detected = detect_virt() if live else None
    if detected and detected.get("vm"):
        vm = detected["vm"]
        verdicts.append(vm != "none")
        if vm != "none":
            names.insert(0, HYPERVISOR_NAMES.get(vm, vm))  # it knows the most hypervisors
        evidence.append(f"systemd-detect-virt --vm: {vm}")
    container = detected.get("container") if detected else None
    if container:
        evidence.append(f"systemd-detect-virt --container: {container}")
    virtualised = True if any(verdicts) else False if verdicts else None
    if virtualised is None:
        notes.append("virtualisation: unknown (no x86 hypervisor flag, /sys/hypervisor, DMI or systemd-detect-virt)")
    elif virtualised and not names:
        notes.append("virtualisation: a hypervisor is present but nothing readable names it")
    return {"virtualised": virtualised, "hypervisor": names[0] if virtualised and names else None,
            "container": None if container in (None, "none") else container,
            "evidence": evidence, "dmi": dmi}


# --- runtime and ternbench ----------------------------------------------------------------------

def runtime_section() -> dict:
    return {"version": runtime.version(), "build": runtime.build_info(), "best_variant": runtime.best_variant(),
            "variants": [{"name": v.name, "compiled": v.compiled, "usable": v.supported, "why_not": v.why or None}
                         for v in runtime.variants()]}


def git_state(root: Path) -> dict:
    """HEAD of the git checkout rooted at `root`, and whether its tree differs from HEAD."""
    none = {"commit": None, "dirty": None}
    git = shutil.which("git")
    if not git:
        return none
    head = _run([git, "rev-parse", "--show-toplevel", "HEAD"], cwd=root)
    if not head or head.returncode != 0 or len(head.stdout.split("\n")) < 2:
        return none
    top, commit = head.stdout.split("\n")[:2]
    # an installed copy can sit inside some unrelated checkout: only our own tree counts
    if Path(top).resolve() != root.resolve():
        return none
    status = _run([git, "status", "--porcelain"], cwd=root)
    dirty = bool(status.stdout.strip()) if status and status.returncode == 0 else None
    return {"commit": commit.strip(), "dirty": dirty}


def _version() -> str:
    try:
        return importlib.metadata.version("ternbench")
    except importlib.metadata.PackageNotFoundError:
        return runtime.version()


def ternbench_section(root: Path, notes: list[str]) -> dict:
    git = git_state(root)
    if git["commit"] is None:
        notes.append(f"ternbench: git commit unknown ({root} is not a git checkout, or git is missing or refuses it)")
    return {"version": _version(), "source": str(root), "git_commit": git["commit"], "git_dirty": git["dirty"]}
