"""Bad input found by trying to break ternbench as a new user would: each gets one clear line and
exit status 2, before anything large is allocated (the CLI runs here under a memory limit)."""
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

import runtime
from clirun import ternbench
from harness import inputs, yaml_source
from harness.claims import ClaimsError, load_claims
from harness.models.presets import ModelSpecError, load_spec
from harness.sweep.config import ConfigError, load_config, preset_identity

ROOT = Path(__file__).resolve().parent.parent
MEMORY_LIMIT = 3 << 30   # address space for one CLI call: a range built in full would need far more
HUGE = "1000000000000"

SWEEP = """\
models: [125M]
formats: [i2s, f16]
threads: [1]
workloads:
  generation: [8]
"""


def limited(*args, env=None, timeout=120):
    """`ternbench ARGS` in a subprocess whose address space is capped."""
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=timeout, preexec_fn=cap)


def one_clear_line(proc, words):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr, proc.stderr[-2000:]
    lines = [x for x in proc.stderr.splitlines() if x.strip() and not x.startswith("usage:")]
    assert len(lines) == 1 and words in lines[0], proc.stderr


# --- 1. a huge range of threads, repetitions or processes -----------------------------------------

@pytest.mark.parametrize("args", [["kernels", "--threads", f"1..{HUGE}", "--formats", "i2s"],
                                  ["sysinfo", "--no-bandwidth", "--threads", f"1..{HUGE}"],
                                  ["tune", "--threads", f"1..{HUGE}"]])
def test_a_huge_thread_range_is_refused_before_it_is_built(args):
    one_clear_line(limited(*args), "must be between 1 and 1024")


@pytest.mark.parametrize("line, words", [(f"threads: 1..{HUGE}", "between 1 and 1024"),
                                         ("repetitions: 1000000000000", "between 1 and 10000"),
                                         ("processes: 1000000", "between 1 and 100"),
                                         ("warmups: 100000", "between 0 and 1000"),
                                         ("workloads: {generation: [100000000000]}", "integers from 1 to")])
def test_a_huge_value_in_a_sweep_is_refused_by_the_dry_run(tmp_path, line, words):
    base = {"models": "[125M]", "formats": "[i2s, f16]", "threads": "[1]", "workloads": "{generation: [8]}"}
    key, _, value = line.partition(": ")
    base[key] = value
    (tmp_path / "s.yaml").write_text("".join(f"{k}: {v}\n" for k, v in base.items()))
    one_clear_line(limited("run", str(tmp_path / "s.yaml"), "--dry-run"), words)


def test_parse_threads_bounds_and_messages():
    assert inputs.parse_threads("1..max", 2) == [1, 2] and inputs.parse_threads("max", 3) == [3]
    with pytest.raises(inputs.InputError, match=r"'2\.\.1' is an empty range \(2 is above 1\)"):
        inputs.parse_threads("2..1", 8)
    with pytest.raises(inputs.InputError, match="between 1 and 1024"):
        inputs.parse_threads(f"1..{HUGE}", 8)
    with pytest.raises(inputs.InputError, match="at most"):
        inputs.parse_shapes("100000x100000")


# --- 2. the identity of a preset is its content -----------------------------------------------

def test_preset_identity_does_not_depend_on_where_the_checkout_is(tmp_path):
    a = load_spec(ROOT / "configs/models/125M.yaml")
    copy = tmp_path / "elsewhere" / "125M.yaml"
    copy.parent.mkdir()
    copy.write_bytes((ROOT / "configs/models/125M.yaml").read_bytes())
    b = load_spec(copy)
    assert a.path != b.path and preset_identity(a) == preset_identity(b)
    bigger = type(a)(**{**{k: getattr(a, k) for k in a.__dataclass_fields__}, "layers": a.layers + 1})
    assert preset_identity(bigger) != preset_identity(a)


def test_check_compares_results_of_one_commit_from_two_checkouts(tmp_path):
    """Two manifests made from two clones differ only in where the presets lay."""
    configs = []
    for name in ("one", "two"):
        d = tmp_path / name
        d.mkdir()
        (d / "s.yaml").write_text(SWEEP)
        configs.append(load_config(d / "s.yaml", max_threads=2).comparability())
    assert configs[0] == configs[1]


# --- 3. control bytes in YAML -----------------------------------------------------------------

@pytest.mark.parametrize("byte", ["\x00", "\x1b", "\x07"])
def test_control_bytes_in_yaml_name_the_line(tmp_path, byte):
    text = SWEEP.replace("formats: [i2s, f16]", f"formats: [i2s, f16{byte}]")
    with pytest.raises(yaml_source.YamlProblem, match=r"control character U\+00"):
        yaml_source.load(text)
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"s\.yaml: line 2: invalid YAML: the control character"):
        load_config(tmp_path / "s.yaml", max_threads=2)
    preset = (ROOT / "configs/models/125M.yaml").read_text().replace("name:", f"name{byte}:", 1)
    (tmp_path / "p.yaml").write_text(preset)
    with pytest.raises(ModelSpecError, match="control character"):
        load_spec(tmp_path / "p.yaml")
    (tmp_path / "c.yaml").write_text(f"claims:\n  - id: x{byte}\n")
    with pytest.raises(ClaimsError, match="control character"):
        load_claims(tmp_path / "c.yaml")
    one_clear_line(limited("run", str(tmp_path / "s.yaml"), "--dry-run"), "control character")


def test_yaml_that_expands_without_end_is_refused():
    bomb = "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcde", "bcdef"))
    with pytest.raises(yaml_source.YamlProblem, match="expands to more than"):
        yaml_source.load(bomb)
    with pytest.raises(yaml_source.YamlProblem, match="nested too deeply"):
        yaml_source.load("[" * 100000)


# --- 4. thread counts beyond the runtime's limit --------------------------------------------

@pytest.mark.parametrize("args", [["bench", "--model", "125M", "--threads", "2000"],
                                  ["bench", "--model", "125M", "--threads", HUGE],
                                  ["generate", str(ROOT), "--tokens", "1", "--threads", HUGE],
                                  ["lossless", "--threads", HUGE]])
def test_thread_counts_beyond_the_runtime_limit(args):
    one_clear_line(limited(*args), f"--threads must be between 1 and {runtime.MAX_THREADS}")


def test_the_runtime_refuses_them_too():
    with pytest.raises(ValueError, match="between 1 and 1024"):
        runtime.Context(10 ** 12)


# --- 5. the powercap root, and the dry run checks what the run checks -----------------------

def fake_powercap(root: Path) -> Path:
    d = root / "intel-rapl:0"
    d.mkdir(parents=True)
    (d / "name").write_text("package-0\n")
    (d / "max_energy_range_uj").write_text("262143328850\n")
    (d / "energy_uj").write_text("1000\n")
    return root


def test_the_powercap_root_comes_from_the_config(tmp_path):
    fake_powercap(tmp_path / "captured")
    (tmp_path / "s.yaml").write_text(SWEEP + "energy: {backend: powercap, powercap_root: captured}\n")
    c = load_config(tmp_path / "s.yaml", max_threads=2)
    assert c.energy.powercap_root == str((tmp_path / "captured").resolve())
    out = json.loads(ternbench("run", str(tmp_path / "s.yaml"), "--dry-run", "--json").stdout)
    assert out["energy"].startswith("powercap, measured")
    (tmp_path / "t.yaml").write_text(SWEEP + "energy: {backend: powercap, powercap_root: nowhere}\n")
    with pytest.raises(ConfigError, match="energy.powercap_root'?: nowhere: no such directory"):
        load_config(tmp_path / "t.yaml", max_threads=2)


def test_the_powercap_root_comes_from_the_environment(tmp_path):
    fake_powercap(tmp_path / "captured")
    info = json.loads(ternbench("sysinfo", "--json", "--no-bandwidth",
                                env={"TERNBENCH_POWERCAP_ROOT": str(tmp_path / "captured")}).stdout)
    powercap = {b["name"]: b for b in info["energy_backends"]}["powercap"]
    assert powercap["usable"] and powercap["measures"], powercap


def test_the_dry_run_refuses_an_energy_backend_the_run_would_refuse(tmp_path):
    (tmp_path / "s.yaml").write_text(SWEEP + "energy: powercap\n")
    env = {"TERNBENCH_POWERCAP_ROOT": str(tmp_path / "empty")}
    dry = limited("run", str(tmp_path / "s.yaml"), "--dry-run", env=env)
    one_clear_line(dry, "energy backend 'powercap' cannot be used here")


# --- 6. smaller ---------------------------------------------------------------------------

def test_a_run_far_beyond_a_day_asks_for_yes(tmp_path):
    (tmp_path / "s.yaml").write_text(SWEEP.replace("[125M]", "[7B]") + "repetitions: 10000\nprocesses: 100\n")
    proc = limited("run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"))
    one_clear_line(proc, "add --yes to run it all")
    assert not (tmp_path / "out").exists()   # refused before anything was written
    dry = ternbench("run", str(tmp_path / "s.yaml"), "--dry-run")
    assert "will ask for --yes" in dry.stdout


def test_an_identity_recorded_by_an_earlier_version_is_noted_not_refused():
    from harness.gate.regression import Side, compatibility

    def side(identity):
        return Side(Path("x"), {"config": {"models": {"125M": identity}, "seed": 0}, "machine": {}}, {})

    new = load_config_identity()
    errors, notes = compatibility(side("0123456789abcdef"), side(new))   # the old form had no "c:"
    assert not errors and any("earlier ternbench" in n for n in notes)
    errors, _ = compatibility(side(new), side("c:" + "0" * 16))
    assert errors and "model identity differs" in errors[0]
    assert compatibility(side(new), side(new)) == ([], [])


def load_config_identity() -> str:
    return preset_identity(load_spec(ROOT / "configs/models/125M.yaml"))


@pytest.mark.parametrize("name", ["~0", "~nobody-here-at-all/x.yaml"])
def test_a_tilde_that_names_no_home_is_just_a_name(tmp_path, name):
    """Found by the fuzzing suite's CI run: `~0` made pathlib raise "Could not determine home directory"."""
    (tmp_path / "s.yaml").write_text(SWEEP.replace("[125M]", f"['{name}']"))
    with pytest.raises(ConfigError, match="unknown model|no such model preset file"):
        load_config(tmp_path / "s.yaml", max_threads=2)
    one_clear_line(limited("bench", "--model", name), "model")


def test_a_call_the_runtime_fails_is_one_line_not_a_traceback(monkeypatch, capsys):
    """A limit of the machine met in C (here a probe buffer beyond what the runtime can index;
    in CI once, 1.9 GB it could not allocate) ends the command with exit 1 and the runtime's
    reason, not a traceback."""
    from harness.cli import main
    from harness.measure import probe

    monkeypatch.setattr(probe, "working_set_bytes", lambda: 1 << 46)
    assert main.main(["sysinfo", "--threads", "1"]) == 1
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip() and not x.startswith("  ...")]
    assert lines == ["ternbench sysinfo: error: bandwidth: buffer too large"], lines
