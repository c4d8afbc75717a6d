"""The architecture, checked: no import cycles between the modules of `runtime/` and `harness/`,
lower layers never importing higher ones (the runtime never imports the harness), and only a
handful of modules at the top of `harness/`."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "harness"
PACKAGES = ("runtime", "harness")
# lowest first: a module may import from its own layer and those before it, never from a later one.
# In the runtime, tuning measures with api's Matrix and Context and registers itself with api
# (runtime.api.register_context_tuner), so api never imports it back.
LAYERS = [("runtime.cpu", "runtime.build_ffi"), ("runtime.api",), ("runtime.model", "runtime.tuning"), ("runtime",),
          ("harness", "harness.inputs", "harness.yaml_source", "harness.energy"), ("harness.models",),
          ("harness.measure", "harness.engines"), ("harness.sweep",),
          ("harness.claims", "harness.report", "harness.gate", "harness.fleet", "harness.history"),
          ("harness.cli", "harness.__main__")]
TOP_LEVEL_MAX = 5


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Runtime and harness modules `name` imports anywhere in its body (function-level imports count too:
    they are still a dependency). `from pkg import mod` counts as importing pkg.mod."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] in PACKAGES)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] not in PACKAGES:
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.add(sub if sub in known else target)
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(g[n]):
            if state.get(m) == "open":
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = "done"
        return None

    for n in sorted(g):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def layer(name: str) -> int:
    best = None
    for i, group in enumerate(LAYERS):
        for prefix in group:
            if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (i, len(prefix))
    assert best is not None, f"{name} belongs to no layer; add it to LAYERS"
    return best[0]


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_covers_both_packages():
    g = graph()
    assert "runtime.api" in g and "runtime.tuning" in g and "harness.cli.main" in g
    assert "runtime.api" in g["runtime.tuning"], "tuning's import of api was not seen"


def test_the_checker_sees_the_cycle_that_was_there(tmp_path):
    """runtime.api once imported runtime.tuning inside Context.__init__, and tuning imported api:
    a function-level import must count as an edge, or that cycle would pass unseen."""
    fake = tmp_path / "api.py"
    fake.write_text("def f():\n    from . import tuning\n")
    assert imports("runtime.api", fake, {"runtime.api", "runtime.tuning"}) == {"runtime.tuning"}
    assert find_cycle({"runtime.api": {"runtime.tuning"}, "runtime.tuning": {"runtime.api"}})


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_lower_layers_never_import_higher_ones():
    wrong = [f"{a} imports {b}" for a, deps in graph().items() for b in deps if layer(b) > layer(a)]
    assert not wrong, "\n".join(wrong)


def test_cli_common_is_a_leaf():
    assert graph()["harness.cli.common"] == set()


def test_few_modules_at_the_top():
    top = sorted(p.name for p in HARNESS.glob("*.py"))
    assert len(top) <= TOP_LEVEL_MAX, top


@pytest.mark.parametrize("package", ["claims", "cli", "energy", "engines", "fleet", "gate", "history", "measure",
                                     "models", "report", "sweep"])
def test_every_package_is_installed(package):
    text = (HARNESS.parent / "pyproject.toml").read_text()
    assert f'"harness.{package}"' in text


def test_product_files_cite_only_what_users_have():
    """Presets, configs, the harness, the README and the docs cite public sources, never files outside
    the repository (a development checkout's neighbours are not on a user's machine)."""
    root = HARNESS.parent
    files = [*root.glob("configs/**/*.yaml"), *HARNESS.rglob("*.py"), *HARNESS.rglob("*.j2"), root / "README.md",
             *root.glob("docs/**/*.md")]
    wrong = [f"{p.relative_to(root)}: line {i}" for p in files
             for i, line in enumerate(p.read_text().splitlines(), 1) if "../shared" in line or "REFERENCE.md" in line]
    assert not wrong, wrong
