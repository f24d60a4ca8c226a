"""Generated documentation stays in step with the code."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_ops_table_is_current() -> None:
    spec = importlib.util.spec_from_file_location("make_ops_table", DOCS / "make_ops_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DOCS / "ops.md").read_text() == module.render(), (
        "docs/ops.md is stale: run .venv/bin/python docs/make_ops_table.py"
    )


# -- docs/extending.md, followed literally ---------------------------------------------------------

ROOT = DOCS.parent
# what a copy of the repository needs to run the page's commands (no run folders, no benchmarks)
COPIED = ("search_space", "predictors", "evaluators", "strategies", "mixnas", "tests", "docs")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def extending_blocks() -> list[tuple[str, str]]:
    """The (language, text) of every fenced block of docs/extending.md, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer((DOCS / "extending.md").read_text())]


def _install(source: Path, site: Path) -> Path:
    """``pip install -e source`` without a network or a change to the shared venv: the
    entry points of source/pyproject.toml as a dist-info on a path entry (tests/test_plugins.py
    installs the example plug-in the same way)."""
    import tomllib

    from tests.test_plugins import install

    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    install(site, project["name"], project["version"], project.get("entry-points", {}))
    return source


def test_extending_md_runs_as_written(tmp_path: Path) -> None:
    """Every ``# file:`` block is written where it says, in a copy of the repository, and every
    bash and python block runs there: the in-tree token mixer (two files, the regenerated table,
    its contracts, the docs-table and hybrid-space tests) and the out-of-tree plug-in (installed,
    listed, used in a space, its mixnas.testing suites)."""
    pytest.importorskip("tomllib")
    repo = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache")
    for name in COPIED:
        shutil.copytree(ROOT / name, repo / name, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    site = tmp_path / "site"
    site.mkdir()
    paths: list[Path] = [site]
    env = {k: v for k, v in os.environ.items() if k != "MIXNAS_NO_PLUGINS"}
    commands = {
        ".venv/bin/python": shlex.quote(sys.executable),
        ".venv/bin/pytest": f"{shlex.quote(sys.executable)} -m pytest -p no:cacheprovider",
        ".venv/bin/mixnas": f"{shlex.quote(sys.executable)} -m mixnas",
    }
    ran = 0
    for language, text in extending_blocks():
        first, _, body = text.partition("\n")
        if first.startswith("# file: "):
            target = repo / first.removeprefix("# file: ").strip()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
            continue
        if language not in ("bash", "python"):
            continue
        env["PYTHONPATH"] = os.pathsep.join([*(str(p) for p in paths), str(repo)])
        lines = [text] if language == "python" else text.splitlines()
        for line in lines:
            if language == "bash" and line.startswith(".venv/bin/pip install -e "):
                paths.append(_install(repo / line.split()[-1], site))
                continue
            if language == "python":
                argv = [sys.executable, "-c", line]
            else:
                for prefix, replacement in commands.items():
                    if line.startswith(prefix):
                        line = replacement + line[len(prefix) :]
                argv = ["bash", "-c", line]
            result = subprocess.run(
                argv, cwd=repo, env=env, capture_output=True, text=True, timeout=600
            )
            assert result.returncode == 0, (
                f"docs/extending.md: {text.strip()[:200]!r} failed:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
            ran += 1
    assert ran >= 7
    # adding a token mixer in the tree is two files (then the regenerated table)
    written = [
        text.partition("\n")[0].removeprefix("# file: ").strip()
        for _, text in extending_blocks()
        if text.startswith("# file: ")
    ]
    assert [w for w in written if w.startswith("search_space/")] == [
        "search_space/ops/token_mixers/gated_dwconv.py",
        "search_space/nn/mixers/gated_dwconv.py",
    ]
    # the in-tree mixer is in the regenerated table and in the copy's registry only
    assert "`gated_dwconv`" in (repo / "docs" / "ops.md").read_text()
    assert "`gated_dwconv`" not in (DOCS / "ops.md").read_text()
