"""Facts about the running CPU that the runtime's choices depend on: its identity (what a
kernel tuning is valid for), its instruction-set extensions, and its last-level cache
(what a measurement must read past to be a memory figure). The harness's machine
fingerprint builds on these."""
from __future__ import annotations

import functools
import hashlib
import json
import platform
import re
from pathlib import Path

# The instruction-set extensions the kernel variants are built on (see the README's table).
X86_ISA = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni")
ARM_ISA = ("asimd", "asimddp")
DEFAULT_LLC_BYTES = 32 << 20


def parse_cpuinfo(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo -> one dict per logical CPU (blocks without a 'processor' line are merged
    into every CPU: old ARM kernels put 'Hardware' in a trailing block)."""
    blocks = []
    for chunk in re.split(r"\n\s*\n", text):
        fields = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if fields:
            blocks.append(fields)
    shared = {k: v for b in blocks if "processor" not in b for k, v in b.items()}
    return [{**shared, **b} for b in blocks if "processor" in b]


def parse_size(text: str) -> int:
    """A sysfs cache size ("32768K", "2M") in bytes."""
    text = text.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * mult


def last_level_cache_bytes(sysfs: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> tuple[int, str]:
    """Size of the largest cache level and where the figure came from."""
    best = (0, 0)
    for index in sysfs.glob("index*"):
        try:
            level = int((index / "level").read_text())
            if (index / "type").read_text().strip() == "Instruction":
                continue
            best = max(best, (level, parse_size((index / "size").read_text())))
        except (OSError, ValueError):
            continue
    if best[1]:
        return best[1], f"L{best[0]} from {sysfs}"
    return DEFAULT_LLC_BYTES, "not readable; assumed 32 MiB"


# Weights cycled by a measurement that must come from memory: 16 x the LLC the OS reports (4 x
# was not enough under KVM on a Zen 5: a 128 MiB cycle still read a fifth faster than 256 MiB, the
# host's caches behind the guest's L3 keeping part of it), but past 1 GiB no host cache holds a
# useful share of a cycle, and 16 x a 260 MiB L3 (a Xeon of 2026) is 4 GiB per pass: a probe
# before and after each worker process took 15 s of its 20. Never below 4 x the LLC.
LLC_MULTIPLE = 16
CYCLE_CAP_BYTES = 1 << 30


def memory_cycle_bytes(available: int | None = None) -> int:
    """How many bytes a measurement cycles through to read from memory, not from a cache: see
    LLC_MULTIPLE and CYCLE_CAP_BYTES; at most a quarter of `available` memory when given."""
    llc, _ = last_level_cache_bytes()
    cap = CYCLE_CAP_BYTES if available is None else min(CYCLE_CAP_BYTES, available // 4)
    return max(4 * llc, min(LLC_MULTIPLE * llc, cap))


# The smallest per-core L2 among the CPUs the runtime targets (Zen 2/3/4): assumed when sysfs
# does not say, so that a matrix sized to it stays resident on any of them.
DEFAULT_L2_BYTES = 512 << 10


def l2_cache_bytes(sysfs: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> tuple[int, str]:
    """Size of cpu0's level-2 data (or unified) cache and where the figure came from."""
    for index in sorted(sysfs.glob("index*")):
        try:
            if int((index / "level").read_text()) == 2 and (index / "type").read_text().strip() != "Instruction":
                return parse_size((index / "size").read_text()), f"L2 from {sysfs}"
        except (OSError, ValueError):
            continue
    return DEFAULT_L2_BYTES, f"not readable; assumed {DEFAULT_L2_BYTES >> 10} KiB"


@functools.lru_cache(maxsize=None)  # a CPU does not change under a running process
def identity(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """What makes two CPUs the same for kernel tuning: vendor, family, model and stepping
    (x86) or implementer, part, variant and revision (ARM), the model name, and the ISA
    extensions the kernels use. Flags that come and go with kernel or microcode versions
    (mitigations, virtualisation hints) are left out on purpose."""
    try:
        cpus = parse_cpuinfo(cpuinfo.read_text())
    except (OSError, UnicodeDecodeError):
        cpus = []
    first = cpus[0] if cpus else {}
    flags = set((first.get("flags") or first.get("Features") or "").split())
    if "CPU implementer" in first:
        ids = {k: first.get(k) for k in ("CPU implementer", "CPU part", "CPU variant", "CPU revision")}
        isa = sorted(f for f in ARM_ISA if f in flags)
    else:
        ids = {k: first.get(k) for k in ("vendor_id", "cpu family", "model", "stepping")}
        isa = sorted(f for f in X86_ISA if f in flags)
    return {"machine": platform.machine(), "model_name": first.get("model name") or platform.processor() or None,
            **ids, "isa": isa}


def identity_key(ident: dict) -> str:
    """A short stable digest of an identity, for file names."""
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
