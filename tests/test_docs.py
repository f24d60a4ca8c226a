"""Generated documentation stays in step with the code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_ops_table_is_current() -> None:
    spec = importlib.util.spec_from_file_location("make_ops_table", DOCS / "make_ops_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DOCS / "ops.md").read_text() == module.render(), (
        "docs/ops.md is stale: run .venv/bin/python docs/make_ops_table.py"
    )
