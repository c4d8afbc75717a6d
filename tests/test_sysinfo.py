"""The machine fingerprint (harness/measure/fingerprint.py) on fake /proc and /sys trees and on this
machine, and `ternbench sysinfo` from the command line."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import psutil
import pytest

import runtime
from clirun import ternbench
from harness.measure import fingerprint
from harness.report import provenance

X86_FLAGS = ("fpu sse sse2 ssse3 fma f16c avx avx2 hypervisor avx512f avx512bw avx512vl avx512_vnni "
             "popcnt bmi2")
ARM_FEATURES = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def x86_cpuinfo(cpus: int, cores_per_socket: int) -> str:
    blocks = []
    for i in range(cpus):
        blocks.append(f"processor\t: {i}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
                      f"model name\t: Intel(R) Xeon(R) Platinum 8480+\nstepping\t: 8\n"
                      f"physical id\t: {i // cores_per_socket}\ncore id\t\t: {i % cores_per_socket}\n"
                      f"flags\t\t: {X86_FLAGS}\n")
    return "\n".join(blocks) + "\n"


def arm_cpuinfo(cpus: int) -> str:
    return "\n".join(f"processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: {ARM_FEATURES}\nCPU implementer\t: 0x41\n"
                     "CPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n"
                     for i in range(cpus)) + "\n"


def caches(sizes: list[tuple[int, str, str, str]]) -> dict[str, str]:
    out = {}
    for i, (level, kind, size, shared) in enumerate(sizes):
        base = f"devices/system/cpu/cpu0/cache/index{i}/"
        out.update({base + "level": f"{level}\n", base + "type": f"{kind}\n", base + "size": f"{size}\n",
                    base + "shared_cpu_list": f"{shared}\n"})
    return out


@pytest.fixture
def x86_kvm_guest(tmp_path):
    """4 vCPUs on 2 virtual sockets and 2 NUMA nodes, no cpufreq, no sysfs topology (cpuinfo ids only)."""
    proc, sys = tmp_path / "proc", tmp_path / "sys"
    write(proc, {"cpuinfo": x86_cpuinfo(4, 2), "meminfo": "MemTotal:       16384000 kB\nMemFree: 1 kB\n"})
    write(sys, {
        **caches([(1, "Data", "48K", "0"), (1, "Instruction", "32K", "0"), (2, "Unified", "2048K", "0"),
                  (3, "Unified", "105M", "0-3")]),
        "devices/system/node/node0/cpulist": "0-1\n",
        "devices/system/node/node0/meminfo": "Node 0 MemTotal:       8192000 kB\n",
        "devices/system/node/node1/cpulist": "2-3\n",
        "devices/system/node/node1/meminfo": "Node 1 MemTotal:       8192000 kB\n",
        "class/dmi/id/sys_vendor": "QEMU\n",
        "class/dmi/id/product_name": "Standard PC (Q35 + ICH9, 2009)\n",
        "kernel/mm/transparent_hugepage/enabled": "[always] madvise never\n",
    })
    return proc, sys


@pytest.fixture
def arm_machine(tmp_path):
    """A 4-core Neoverse-N1 with cpufreq and a global boost switch, one NUMA node."""
    proc, sys = tmp_path / "proc", tmp_path / "sys"
    write(proc, {"cpuinfo": arm_cpuinfo(4), "meminfo": "MemTotal: 8000000 kB\n"})
    topology = {}
    for i in range(4):
        topology[f"devices/system/cpu/cpu{i}/topology/core_cpus_list"] = f"{i}\n"
        topology[f"devices/system/cpu/cpu{i}/topology/physical_package_id"] = "0\n"
    write(sys, {
        **topology,
        **caches([(1, "Data", "64K", "0"), (1, "Instruction", "64K", "0"), (2, "Unified", "1024K", "0"),
                  (3, "Unified", "32768K", "0-3")]),
        "devices/system/cpu/online": "0-3\n",
        "devices/system/cpu/cpu0/cpufreq/scaling_governor": "performance\n",
        "devices/system/cpu/cpu0/cpufreq/scaling_driver": "cppc_cpufreq\n",
        "devices/system/cpu/cpu0/cpufreq/cpuinfo_min_freq": "1000000\n",
        "devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq": "3000000\n",
        "devices/system/cpu/cpufreq/boost": "1\n",
        "devices/system/node/node0/cpulist": "0-3\n",
    })
    return proc, sys


def test_x86_kvm_guest(x86_kvm_guest):
    info = fingerprint.fingerprint(*x86_kvm_guest)
    cpu = info["cpu"]
    assert cpu["vendor"] == "GenuineIntel" and cpu["model_name"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert cpu["arch"] == "x86" and cpu["ids"]["family"] == 6 and cpu["ids"]["model"] == 143
    assert cpu["ids"]["stepping"] == 8
    assert cpu["isa"] == {"avx2": True, "fma": True, "f16c": True, "avx512f": True, "avx512bw": True,
                          "avx512vl": True, "avx512_vnni": True, "avx_vnni": False}
    assert cpu["flags"] == X86_FLAGS.split()
    # no sysfs topology: cores and sockets come from cpuinfo's (physical id, core id)
    assert (cpu["logical_cpus"], cpu["physical_cores"], cpu["sockets"]) == (4, 4, 2)

    levels = info["caches"]["levels"]
    assert [(c["level"], c["type"], c["size_bytes"]) for c in levels] == [
        (1, "Data", 48 << 10), (1, "Instruction", 32 << 10), (2, "Unified", 2 << 20), (3, "Unified", 105 << 20)]
    assert levels[3]["shared_cpu_list"] == "0-3"
    assert info["caches"]["llc_bytes"] == 105 << 20

    mem = info["memory"]
    assert mem["total_bytes"] == 16384000 * 1024
    assert mem["numa_nodes"] == 2
    assert [(n["node"], n["cpulist"], n["memory_bytes"]) for n in mem["numa"]] == [
        (0, "0-1", 8192000 * 1024), (1, "2-3", 8192000 * 1024)]
    assert mem["transparent_hugepages"] == "always"

    virt = info["virtualisation"]
    assert virt["virtualised"] is True and virt["hypervisor"] == "QEMU"
    assert any("hypervisor" in e for e in virt["evidence"]) and any("DMI" in e for e in virt["evidence"])
    # a fake tree is not the live system: systemd-detect-virt must not be asked about it
    assert not any("systemd" in e for e in virt["evidence"]) and virt["container"] is None

    freq = info["frequency"]
    assert freq["governor"] is None and freq["turbo"] is None and freq["max_khz"] is None
    assert any(n.startswith("frequency:") and "not readable" in n for n in info["notes"])
    assert json.loads(json.dumps(info)) == info
    text = "\n".join(provenance.summary_lines(info))
    assert "Platinum 8480+" in text and "2 NUMA node(s)" in text and "QEMU guest" in text


def test_arm_machine(arm_machine):
    info = fingerprint.fingerprint(*arm_machine)
    cpu = info["cpu"]
    assert cpu["arch"] == "arm" and cpu["vendor"] == "ARM" and cpu["model_name"] == "ARM Neoverse-N1"
    assert cpu["ids"] == {"implementer": "0x41", "architecture": "8", "variant": "0x3", "part": "0xd0c",
                          "revision": 1}
    assert cpu["isa"] == {"neon": True, "asimd": True, "asimddp": True}
    assert "asimddp" in cpu["flags"]
    assert (cpu["logical_cpus"], cpu["physical_cores"], cpu["sockets"]) == (4, 4, 1)
    assert info["caches"]["levels"][-1]["size_bytes"] == 32 << 20
    assert info["memory"]["total_bytes"] == 8000000 * 1024 and info["memory"]["numa_nodes"] == 1
    assert info["memory"]["numa"][0]["memory_bytes"] is None  # no node meminfo in this tree
    assert info["frequency"] == {"governor": "performance", "driver": "cppc_cpufreq", "min_khz": 1000000,
                                 "max_khz": 3000000, "turbo": True,
                                 "turbo_source": str(arm_machine[1] / "devices/system/cpu/cpufreq/boost")}
    assert not any(n.startswith("frequency:") for n in info["notes"])
    # ARM has no hypervisor flag: without DMI or /sys/hypervisor nobody can tell
    assert info["virtualisation"]["virtualised"] is None
    assert any(n.startswith("virtualisation: unknown") for n in info["notes"])
    text = "\n".join(provenance.summary_lines(info))
    assert "Neoverse-N1" in text and "1.00-3.00 GHz" in text and "turbo on" in text


def test_unknown_arm_part_is_named_by_number(tmp_path):
    write(tmp_path, {"cpuinfo": arm_cpuinfo(1).replace("0xd0c", "0xabc").replace("0x41", "0xc0")})
    cpu = fingerprint.fingerprint(tmp_path, tmp_path / "sys")["cpu"]
    assert cpu["vendor"] == "Ampere" and cpu["model_name"] == "Ampere part 0xabc"


def test_empty_tree_reads_as_unknown(tmp_path):
    info = fingerprint.fingerprint(tmp_path / "proc", tmp_path / "sys")
    cpu = info["cpu"]
    assert cpu["model_name"] is None and cpu["vendor"] is None and cpu["flags"] == [] and cpu["isa"] == {}
    assert cpu["logical_cpus"] is None and cpu["physical_cores"] is None and cpu["sockets"] is None
    assert cpu["usable_cpus"] >= 1  # a fact about this process, not the tree
    assert info["caches"]["levels"] == [] and "assumed" in info["caches"]["llc_source"]
    assert info["memory"]["total_bytes"] is None and info["memory"]["numa_nodes"] is None
    assert all(v is None for v in info["frequency"].values())
    assert info["virtualisation"]["virtualised"] is None and info["virtualisation"]["evidence"] == []
    for section in ("cpu:", "caches:", "memory: total", "memory: NUMA", "frequency:", "virtualisation:"):
        assert any(n.startswith(section) for n in info["notes"]), section
    assert json.loads(json.dumps(info)) == info
    text = "\n".join(provenance.summary_lines(info))
    assert "unknown" in text and "\nnote " in text


def test_garbage_and_unreadable_files_are_unknown(tmp_path):
    proc, sys = tmp_path / "proc", tmp_path / "sys"
    (proc).mkdir()
    (proc / "cpuinfo").write_bytes(b"\xff\xfe not text")
    write(proc, {"meminfo": "MemTotal: lots\n"})
    write(sys, {**caches([(1, "Data", "big", "0")]), "devices/system/cpu/cpu0/cache/index1/level": "two\n",
                "devices/system/cpu/intel_pstate/no_turbo": "maybe\n"})
    (sys / "devices/system/cpu/cpu0/cpufreq/scaling_governor").mkdir(parents=True)  # a directory: read fails
    info = fingerprint.fingerprint(proc, sys)
    assert info["cpu"]["model_name"] is None and info["memory"]["total_bytes"] is None
    assert info["caches"]["levels"] == [{"level": 1, "type": "Data", "size_bytes": None,
                                         "shared_cpu_list": "0", "line_bytes": None}]
    assert info["frequency"]["governor"] is None and info["frequency"]["turbo"] is None


@pytest.mark.parametrize("files,turbo", [
    ({"intel_pstate/no_turbo": "1"}, False),
    ({"intel_pstate/no_turbo": "0"}, True),
    ({"cpufreq/boost": "0"}, False),
    ({"cpu0/cpufreq/boost": "1"}, True),
    ({"intel_pstate/no_turbo": "1", "cpufreq/boost": "1"}, False),  # intel_pstate decides when present
])
def test_turbo_state(tmp_path, files, turbo):
    write(tmp_path, {f"devices/system/cpu/{k}": v for k, v in files.items()})
    assert fingerprint.frequency_section(tmp_path, [])["turbo"] is turbo


def test_systemd_detect_virt_names_the_hypervisor(monkeypatch, x86_kvm_guest):
    proc, sys = x86_kvm_guest
    monkeypatch.setattr(fingerprint, "detect_virt", lambda: {"vm": "kvm", "container": "docker"})
    cpus = fingerprint.read_cpuinfo(proc, [])
    virt = fingerprint.virtualisation_section(cpus, sys, [], live=True)
    assert virt["virtualised"] is True and virt["hypervisor"] == "KVM" and virt["container"] == "docker"

    monkeypatch.setattr(fingerprint, "detect_virt", lambda: {"vm": "none", "container": "none"})
    bare = [{"processor": "0", "flags": "fpu avx2"}]
    virt = fingerprint.virtualisation_section(bare, sys.parent / "empty", [], live=True)
    assert virt["virtualised"] is False and virt["hypervisor"] is None and virt["container"] is None


def test_cpulist_count():
    assert fingerprint.cpulist_count("0-3,8-11") == 8
    assert fingerprint.cpulist_count("5") == 1
    assert fingerprint.cpulist_count("0-x") is None and fingerprint.cpulist_count(None) is None


def test_distribution(tmp_path):
    (tmp_path / "os-release").write_text('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    assert fingerprint.distribution(tmp_path / "os-release") == "Debian GNU/Linux 12 (bookworm)"
    assert fingerprint.distribution(tmp_path / "missing") is None


def test_git_state_outside_a_checkout(tmp_path):
    assert fingerprint.git_state(tmp_path) == {"commit": None, "dirty": None}


def test_this_machine():
    info = fingerprint.fingerprint()
    cpu = info["cpu"]
    assert cpu["model_name"] and cpu["flags"] and cpu["isa"]
    assert cpu["logical_cpus"] == psutil.cpu_count()
    if psutil.cpu_count(logical=False):
        assert cpu["physical_cores"] == psutil.cpu_count(logical=False)
    assert 1 <= cpu["usable_cpus"] <= cpu["logical_cpus"]
    assert info["caches"]["levels"] and all(c["size_bytes"] > 0 for c in info["caches"]["levels"])
    assert info["memory"]["total_bytes"] == psutil.virtual_memory().total
    assert info["runtime"]["build"] == runtime.build_info() and info["runtime"]["build"]
    usable = {v["name"] for v in info["runtime"]["variants"] if v["usable"]}
    assert "scalar" in usable and info["runtime"]["best_variant"] in usable
    assert info["virtualisation"]["virtualised"] in (True, False, None)
    assert json.loads(json.dumps(info)) == info


def test_this_checkout_commit():
    info = fingerprint.fingerprint()["ternbench"]
    root = Path(info["source"])
    if not (shutil.which("git") and (root / ".git").exists()):
        pytest.skip("not running from a git checkout")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    assert info["git_commit"] == head and re.fullmatch(r"[0-9a-f]{40}", head)
    assert info["git_dirty"] in (True, False)


def test_cli_json_without_bandwidth():
    data = json.loads(ternbench("sysinfo", "--json", "--no-bandwidth").stdout)
    assert {"cpu", "caches", "memory", "os", "frequency", "virtualisation", "runtime", "ternbench",
            "notes", "read_bandwidth_gbps"} <= set(data)
    assert data["read_bandwidth_gbps"] is None and data["cpu"]["model_name"]
    # every energy backend, whether it works here and why not; the model estimate always works
    backends = {b["name"]: b for b in data["energy_backends"]}
    assert set(backends) == {"powercap", "perf", "pyrapl", "model"}
    assert backends["model"]["usable"] and not backends["model"]["measures"]
    assert all(b["detail"] for b in backends.values())


def test_cli_says_when_nothing_measures_energy():
    from harness.energy import EnergySettings, backend_status

    if any(b.usable and b.measures for b in backend_status(EnergySettings())):
        pytest.skip("this machine has a measuring energy backend")
    out = ternbench("sysinfo", "--no-bandwidth").stdout
    assert "no measuring backend works here" in out and "powercap  not usable:" in out


def test_cli_text_without_bandwidth():
    proc = ternbench("sysinfo", "--no-bandwidth")
    assert proc.stdout.startswith("CPU") and "caches" in proc.stdout and "read bandwidth" not in proc.stdout
    assert "fingerprint" in proc.stderr  # progress goes to stderr, not into the output


def test_cli_bad_threads():
    proc = ternbench("sysinfo", "--threads", "0", check=False)
    assert proc.returncode == 2 and "must be between 1 and 1024, got 0" in proc.stderr and proc.stdout == ""


@pytest.mark.slow
def test_cli_bandwidth_one_thread():
    proc = ternbench("sysinfo", "--threads", "1", "--json")
    data = json.loads(proc.stdout)
    assert set(data["read_bandwidth_gbps"]) == {"1"} and data["read_bandwidth_gbps"]["1"] > 0
    assert proc.stderr == ""  # --json is quiet
