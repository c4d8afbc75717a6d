"""The manual in docs/ builds with `mkdocs build --strict`, and a broken link, anchor or nav entry
makes that build fail (each checked on a broken copy, so the check itself is tested). The README
stays a short front page that links every page of the manual."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_MAX_LINES = 200
SCREENSHOT_MAX_BYTES = 200_000
# .ci/run sets it: there mkdocs is installed, and a skip would hide a docs build never run
REQUIRE = os.environ.get("TERNBENCH_REQUIRE_DOCS") == "1"
INSTALL = "install it with `.venv/bin/pip install -e '.[docs]'` (or `make docs`)"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def mkdocs() -> list[str]:
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        if REQUIRE:
            pytest.fail(f"mkdocs is missing and TERNBENCH_REQUIRE_DOCS=1 forbids skipping: {INSTALL}")
        pytest.skip(f"mkdocs is not installed: {INSTALL}")
    return [sys.executable, "-m", "mkdocs"]


def build(root: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*mkdocs(), "build", "--strict", "--config-file", str(root / "mkdocs.yml"),
                           "--site-dir", str(site)], capture_output=True, text=True, timeout=300)


def broken_copy(tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    root.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", root)
    shutil.copytree(DOCS, root / "docs")
    return root


def test_the_docs_build_strict(tmp_path):
    site = tmp_path / "site"
    proc = build(ROOT, site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = {p.stem for p in site.glob("*.html")}
    assert {p.stem for p in DOCS.glob("*.md")} <= built


@pytest.mark.parametrize("breakage, expected", [
    ("page", "no-such-page.md"),
    ("anchor", "#no-such-section"),
    ("nav", "orphan.md"),
])
def test_a_broken_link_fails_the_build(tmp_path, breakage, expected):
    root = broken_copy(tmp_path)
    index = root / "docs" / "index.md"
    if breakage == "page":
        index.write_text(index.read_text() + "\nSee [a page that is gone](no-such-page.md).\n")
    elif breakage == "anchor":
        index.write_text(index.read_text() + "\nSee [a section that is gone](running-sweeps.md#no-such-section).\n")
    else:  # a page nobody can reach from the navigation
        (root / "docs" / "orphan.md").write_text("# Orphan\n")
    proc = build(root, tmp_path / "site")
    assert proc.returncode != 0, f"the build passed with a broken {breakage}:\n{proc.stdout}{proc.stderr}"
    assert expected in proc.stdout + proc.stderr


def readme_links() -> list[str]:
    return LINK.findall(README.read_text())


def test_the_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the manual belongs in docs/"


def test_the_readme_links_every_page_of_the_manual():
    linked = {Path(link.split("#")[0]).name for link in readme_links() if link.startswith("docs/")}
    pages = {p.name for p in DOCS.glob("*.md")}
    assert pages - linked == set(), f"pages of docs/ the README does not link: {sorted(pages - linked)}"


def test_the_readmes_links_resolve():
    local = [link.split("#")[0] for link in readme_links() if "://" not in link and not link.startswith("#")]
    assert local, "no local link found: the pattern is wrong"
    missing = [link for link in local if link and not (ROOT / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_the_readmes_screenshot_is_a_small_png():
    shots = [link for link in readme_links() if link.endswith(".png")]
    assert shots, "the README shows no screenshot of the report"
    for shot in shots:
        path = ROOT / shot
        assert path.parent == DOCS, f"{shot}: screenshots live in docs/"
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"{shot} is not a PNG"
        assert len(data) <= SCREENSHOT_MAX_BYTES, f"{shot} is {len(data)} bytes; compress it"


ITEM = re.compile(r"^(\s*)([-*]|\d+\.)\s")


def list_problems(text: str) -> list[str]:
    """Lists GitHub renders but Python-Markdown (MkDocs) would run into the paragraph above or
    flatten: a list right under a paragraph line, or nested by other than 4 spaces."""
    problems, fence, prev = [], False, ""
    for i, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and (m := ITEM.match(line)):
            if not m.group(1) and prev.strip() and not prev.startswith(" ") and not ITEM.match(prev):
                problems.append(f"line {i}: a list needs a blank line above it")
            if len(m.group(1)) % 4:
                problems.append(f"line {i}: nest lists by 4 spaces")
        prev = line
    return problems


def test_the_list_check_finds_what_mkdocs_would_garble():
    assert list_problems("Text:\n- a\n  - b\n") == ["line 2: a list needs a blank line above it",
                                                   "line 3: nest lists by 4 spaces"]
    assert list_problems("Text:\n\n- a\n    - b\n```\nx:\n- y\n```\n") == []


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_lists_render_in_mkdocs_as_on_github(page):
    assert list_problems((DOCS / page).read_text()) == []


def test_without_mkdocs_the_build_tests_skip_or_fail_as_required(monkeypatch):
    monkeypatch.setitem(sys.modules, "mkdocs", None)  # makes `import mkdocs` raise ImportError
    monkeypatch.setattr(sys.modules[__name__], "REQUIRE", False)
    with pytest.raises(pytest.skip.Exception, match="pip install -e '.\\[docs\\]'"):
        mkdocs()
    monkeypatch.setattr(sys.modules[__name__], "REQUIRE", True)
    with pytest.raises(pytest.fail.Exception, match="TERNBENCH_REQUIRE_DOCS=1 forbids skipping"):
        mkdocs()
