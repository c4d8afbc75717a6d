"""`ternbench fleet` on a local Ray cluster of three nodes on this one machine
(ray.cluster_utils.Cluster): a tiny sweep on every node, its results collected per machine and
compared; a node killed mid-sweep and a Ctrl-C of the driver, then --resume finishing with nothing
lost or repeated; a changed CPU refused on resume; and the one-line messages (no Ray, no cluster,
no node). Functional only: the nodes share two cores, so no figure here means anything.

The simulated nodes share one fingerprint and one hostname: each gets its machine id from a
`ternbench-machine` node label, as identical VMs would."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import runtime
from clirun import another_cpu_id, ternbench
from harness.sweep.results import ResultsDir
from test_sweep_config import write

# Ray gives "localhost" the machine's own network address; on this (non-cluster) setting it keeps
# every node, and the driver's address, on the loopback interface
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")   # nothing leaves this machine
try:
    import ray
except ImportError:
    ray = None

REQUIRE = os.environ.get("TERNBENCH_REQUIRE_RAY") == "1"   # .ci/run installs the extra: skipping is a failure
needs_ray = pytest.mark.skipif(ray is None and not REQUIRE,
                               reason="Ray is not installed: pip install -e '.[fleet]' (TERNBENCH_REQUIRE_RAY=1 "
                                      "makes this a failure)")

SWEEP = """\
name: tinyfleet
models: [tiny.yaml]
formats: [i2s, f16]
threads: [1]
workloads:
  generation: [4, 6]
repetitions: 1
warmups: 0
processes: 1
energy: {backend: model, idle_seconds: 0.1}
fleet:
  resource: tb
"""
MACHINES = ("node-a", "node-b", "node-c")


def node_args(machine):
    # one CPU each, and the fleet's resource under a test name
    return {"num_cpus": 1, "resources": {"tb": 1}, "labels": {"ternbench-machine": machine},
            "object_store_memory": 80 << 20}


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={**node_args(MACHINES[0]), "include_dashboard": False})
    nodes = {MACHINES[0]: c.head_node}
    for m in MACHINES[1:]:
        nodes[m] = c.add_node(**node_args(m))
    c.wait_for_nodes()
    c.nodes_by_machine = nodes
    yield c
    c.shutdown()


def default_sigint():
    # a shell without job control starts its background commands (`.ci/run &`) with SIGINT
    # ignored, and Python then installs no KeyboardInterrupt handler in the driver: the test's
    # Ctrl-C must reach the driver however pytest itself was started
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def fleet(*args, check=False, timeout=240):
    return ternbench("fleet", *args, check=check, timeout=timeout)


def summary(proc):
    assert proc.stdout.strip(), proc.stderr
    return {m["machine_id"]: m for m in json.loads(proc.stdout)["machines"]}


def keys(path):
    return [r["key"] for r in ResultsDir(path).records()]


@needs_ray
def test_a_sweep_on_every_node_collected_per_machine_compared_and_resumed(cluster, tmp_path):
    cfg, out = write(tmp_path, SWEEP), tmp_path / "fleet"
    proc = fleet("run", str(cfg), "--address", cluster.address, "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    machines = summary(proc)
    assert set(machines) == set(MACHINES)
    for m in MACHINES:
        s = machines[m]
        assert s["status"] == "done" and len(s["ok"]) == 4 and not s["failed"] and not s["missing"], s
        d = out / m
        assert sorted(keys(d)) == sorted(s["ok"])                    # each point once, in its machine's directory
        sysinfo = json.loads((d / "sysinfo.json").read_text())
        assert sysinfo["cpu"]["model_name"] and s["cpu_id"]         # the node's fingerprint
        assert json.loads((d / "manifest.json").read_text())["machine"]["cpu_id"] == s["cpu_id"]
        assert (d / "config.yaml").read_text() == cfg.read_text() and (d / "points.csv").is_file()
        for r in ResultsDir(d).records():                            # the point's files came along
            assert (d / r["pyperf"]).is_file() and (d / r["raw"]).is_file()
    # one report across the machines, from the fleet directory or its machine directories
    html = tmp_path / "cmp"
    proc = ternbench("compare", str(out), "--out", str(html), "--json")
    assert [m["label"] for m in json.loads(proc.stdout)["machines"]] == list(MACHINES)
    page = (html / "index.html").read_text()
    assert all(m in page for m in MACHINES) and "Claims" in page
    proc = ternbench("compare", *[str(out / m) for m in MACHINES], "--out", str(html), "--json")
    assert json.loads(proc.stdout)["shared_points"] == 4
    proc = ternbench("report", str(out), "--out", str(tmp_path / "rep"))    # `report` on a fleet directory
    assert proc.stdout.startswith(f"report: {tmp_path / 'rep' / 'index.html'}")
    assert all(f"  {m}: " in proc.stdout for m in MACHINES) and (tmp_path / "rep" / "index.html").is_file()
    # the same again is refused without --resume; with it, nothing is left to do
    proc = fleet("run", str(cfg), "--address", cluster.address, "--out", str(out))
    assert proc.returncode == 2 and "--resume" in proc.stderr
    # a machine whose CPU changed since (here: the identity its first run recorded) is refused, naming both
    manifest = json.loads((out / "node-b" / "manifest.json").read_text())
    now = manifest["machine"]["cpu_id"]
    other = manifest["machine"]["cpu_id"] = another_cpu_id(now)
    (out / "node-b" / "manifest.json").write_text(json.dumps(manifest))
    proc = fleet("run", str(cfg), "--address", cluster.address, "--out", str(out), "--resume", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    machines = summary(proc)
    b = machines["node-b"]
    assert b["status"] == "refused" and other in b["reason"] \
        and repr(now) in b["reason"] and str(out / "node-b") in b["reason"], b
    for m in ("node-a", "node-c"):
        assert machines[m]["status"] == "done" and len(machines[m]["already_finished"]) == 4
        assert not machines[m]["ok"] and len(keys(out / m)) == 4


@needs_ray
def test_a_lost_node_and_ctrl_c_keep_every_finished_point_and_resume_runs_the_rest(cluster, tmp_path):
    lengths = [4, 6, 8, 10]
    total = 2 * len(lengths)
    cfg = write(tmp_path, SWEEP.replace("generation: [4, 6]", f"generation: {lengths}")
                .replace("resource: tb", "resource: tb\n  labels: {ternbench-machine: node-c}"))
    out = tmp_path / "fleet"
    points = out / "node-c" / "points.jsonl"
    root = os.path.dirname(os.path.dirname(runtime.__file__))

    def start(*extra):
        return subprocess.Popen([sys.executable, "-m", "harness", "fleet", "run", str(cfg), "--address",
                                 cluster.address, "--out", str(out), "--json", *extra], cwd=root,
                                env={**os.environ, "PYTHONPATH": root}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)

    def wait_for_records(proc, n):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and \
                not (points.exists() and points.read_text().count("\n") >= n):
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()

    # the node dies after its first group of points (the formats of one test land together)
    proc = start()
    wait_for_records(proc, 1)
    cluster.remove_node(cluster.nodes_by_machine["node-c"], allow_graceful=False)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stdout + stderr
    c = {m["machine_id"]: m for m in json.loads(stdout)["machines"]}["node-c"]
    assert c["status"] == "lost" and c["missing"], c
    assert c["reason"]                                         # Ray's word for it: NodeDiedError ...
    before = ResultsDir(out / "node-c").records()
    assert 0 < len(before) < total and [r["key"] for r in before] == c["ok"]
    # the machine comes back (a new Ray node, the same machine label); --resume, then Ctrl-C on the driver
    cluster.nodes_by_machine["node-c"] = cluster.add_node(**node_args("node-c"))
    cluster.wait_for_nodes()
    proc = start("--resume")
    wait_for_records(proc, len(before) + 1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    c = {m["machine_id"]: m for m in json.loads(stdout)["machines"]}["node-c"]
    middle = ResultsDir(out / "node-c").records()
    assert c["status"] == "interrupted" and middle[: len(before)] == before and len(before) < len(middle) < total
    # --resume again: only the rest runs
    proc = fleet("run", str(cfg), "--address", cluster.address, "--out", str(out), "--resume", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    c = summary(proc)["node-c"]
    after = ResultsDir(out / "node-c").records()
    got = [r["key"] for r in after]
    assert len(got) == len(set(got)) == total                  # nothing lost, nothing twice
    assert after[: len(middle)] == middle                       # the finished points untouched
    assert sorted(c["already_finished"]) == sorted(r["key"] for r in middle)
    # what the killed tasks left in the node's temporary directory, the next task removed
    assert not list(Path(tempfile.gettempdir()).glob("ternbench-fleet-*"))


@needs_ray
def test_choosing_nodes_and_user_errors(cluster, tmp_path):
    cfg = write(tmp_path, SWEEP)
    proc = fleet("nodes", str(cfg), "--address", cluster.address, "--json", check=True)
    chosen = json.loads(proc.stdout)["chosen"]
    assert sorted(n["machine_id"] for n in chosen) == sorted(m for m in cluster.nodes_by_machine)
    proc = fleet("nodes", "--address", cluster.address, "--resource", "tb", "--label", "ternbench-machine=node-a",
                 "--json", check=True)
    assert [n["machine_id"] for n in json.loads(proc.stdout)["chosen"]] == ["node-a"]
    for args, message in [
        (["--resource", "gpu-farm"], "no node of the Ray cluster at"),
        (["--label", "zone=mars"], "label zone=None, not 'mars'"),
    ]:
        proc = fleet("run", str(cfg), "--address", cluster.address, "--out", str(tmp_path / "x"), *args)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_one_line_errors_without_a_cluster(tmp_path):
    cfg = write(tmp_path, SWEEP)
    for args, message in [(["--address", "127.0.0.1:9"], "cannot reach a Ray cluster at 127.0.0.1:9"),
                          (["--address", "no-port"], "expected HOST:PORT"),
                          (["--address", "ray://127.0.0.1:10001"], "Ray Client (ray://) cannot stream results")]:
        proc = fleet("run", str(cfg), *args, "--out", str(tmp_path / "x"))
        if ray is None:
            message = "pip install"
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    bad = write(tmp_path, SWEEP.replace("resource: tb", "nodes: 0"), "bad.yaml")
    proc = fleet("run", str(bad), "--address", "127.0.0.1:9")
    assert proc.returncode == 2 and "key 'fleet.nodes': must be between 1 and" in proc.stderr
    # the same file runs locally: `ternbench run` ignores its fleet section
    proc = ternbench("run", str(cfg), "--dry-run", "--json")
    assert len(json.loads(proc.stdout)["points"]) == 4


def test_without_ray_fleet_says_how_to_install_it(tmp_path):
    """Ray made unimportable (a `ray` package that raises ImportError first on the path)."""
    fake = tmp_path / "noray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    cfg = write(tmp_path, SWEEP)
    proc = ternbench("fleet", "run", str(cfg), "--address", "127.0.0.1:9", check=False,
                     env={"PYTHONPATH": str(tmp_path / "noray")})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "ternbench fleet: error: the fleet runs on Ray, which is not installed here: pip install 'ternbench[fleet]' "
        "(in a checkout: pip install -e '.[fleet]')"]


def test_machine_ids_stay_distinct_and_code_mismatch_names_both_versions():
    from harness.fleet import nodes, software, task

    same = [nodes.Node("aa11" * 8, "vm", "10.0.0.1", 2, 1), nodes.Node("bb22" * 8, "vm", "10.0.0.2", 2, 1),
            nodes.Node("cc33" * 8, "vm", "10.0.0.2", 2, 1), nodes.Node("dd44" * 8, "db/1", "10.0.0.3", 2, 1,
                                                                        {"ternbench-machine": "epyc-9004"})]
    ids = [n.machine_id for n in nodes.machine_ids(same)]
    assert ids == ["vm-10.0.0.1", "vm-10.0.0.2-bb22bb22", "vm-10.0.0.2-cc33cc33", "epyc-9004"]
    mine = software.identity()
    assert software.mismatch(mine, dict(mine)) is None
    # a node sent another version's identity by its driver refuses before anything runs, naming both
    other = {**mine, "code": "0123456789ab", "git_commit": "f" * 40}
    (item,) = list(task.node_sweep({"software": other}))
    assert item["kind"] == "refused" and "this node runs ternbench" in item["reason"]
    assert f"code {mine['code']}" in item["reason"] and "the driver runs ternbench 0.1.0, commit fffffff" \
        in item["reason"] and "code 0123456789ab" in item["reason"]


def test_the_fleet_section_of_a_sweep(tmp_path):
    from harness.sweep.config import ConfigError, FleetConfig, load_config

    text = SWEEP.replace("  resource: tb\n", "  address: head:6379\n  resource: null\n  labels: {rack: a, gen: 5}\n"
                                             "  nodes: 2\n")
    assert load_config(write(tmp_path, text)).fleet == FleetConfig("head:6379", None, (("rack", "a"), ("gen", "5")), 2)
    plain = load_config(write(tmp_path, SWEEP.replace("fleet:\n  resource: tb\n", ""), "plain.yaml")).fleet
    assert plain == FleetConfig() and plain.resource == "ternbench"
    for section, message in [("fleet: [a]", "key 'fleet': must be a mapping"),
                             ("fleet: {zone: a}", "key 'fleet.zone': unknown key; allowed: address, resource"),
                             ("fleet: {labels: [a]}", "key 'fleet.labels': must be a mapping of Ray node labels"),
                             ("fleet: {address: 5}", "key 'fleet.address': must be text, got 5")]:
        bad = write(tmp_path, SWEEP.replace("fleet:\n  resource: tb\n", section + "\n"), "bad.yaml")
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(bad)


def test_the_driver_appends_each_record_at_once_and_builds_the_tables_when_the_node_ends(tmp_path):
    """Rebuilding points.csv/parquet per point would cost the driver CPU while the node measures its
    next point (the same CPU when the driver runs on a node): records land as they arrive, the
    tables once, at the node's end, lost or not."""
    from types import SimpleNamespace

    from harness.fleet import collect, nodes
    from harness.measure import record
    from harness.measure.point import Point

    points = [Point("tiny", f, f, "scalar", 1, "generation", 4) for f in ("i2s", "f16")]
    recs = [record.failed(p, "a test", "", "", 1.0, 2.0) for p in points]
    run = collect.NodeRun(nodes.Node("aa11" * 8, "vm", "10.0.0.1", 2, 1, machine_id="vm"),
                          ResultsDir(tmp_path / "vm"))
    run.results.create()
    seen = []

    def stream(lost):
        yield {"kind": "plan", "points": [p.key for p in points], "already": [], "skipped": [], "nice": 0}
        for r in recs:
            yield {"kind": "point", "record": r, "files": {}}
            seen.append((keys(run.results.path), run.results.file("points.csv").exists()))
        if lost:
            raise RayError("the node died")
        yield {"kind": "end", "files": {}, "interrupted": False, "over_budget": []}

    class RayError(Exception):
        pass

    fake_ray = SimpleNamespace(get=lambda item: item, exceptions=SimpleNamespace(
        RayError=RayError, TaskCancelledError=type("TaskCancelledError", (RayError,), {}),
        RayTaskError=type("RayTaskError", (RayError,), {})))
    collect.Collector([run], None, lambda msg: None).follow(fake_ray, run, stream(lost=False))
    assert seen == [([points[0].key], False), ([p.key for p in points], False)]
    assert run.status == "done" and run.results.file("points.csv").read_text().count("\n") == 3
    # a node lost mid-stream: what arrived is kept, and its tables are written all the same
    run = collect.NodeRun(run.node, ResultsDir(tmp_path / "lost"))
    run.results.create()
    collect.Collector([run], None, lambda msg: None).follow(fake_ray, run, stream(lost=True))
    assert run.status == "lost" and "the node died" in run.reason
    assert keys(run.results.path) == [p.key for p in points] and run.results.file("points.csv").is_file()
