"""Trial statuses and objective directions: one enum each, and no second definition anywhere.

`TrialStatus` lives in `search_space.status` (the lowest package both evaluators and the torch-free
strategies import), `Direction` in `strategies.base`. The scan below fails when a module or a
class body binds one of their strings again (a constant, a tuple of allowed values, a default), so
a new status or direction has to be added to the enum.
"""

from __future__ import annotations

import ast
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import evaluators
import strategies
from mixnas import config, records
from search_space.status import FINISHED, TrialStatus
from strategies.base import Direction

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("search_space", "predictors", "evaluators", "strategies", "mixnas")
WORDS = set(TrialStatus.values()) | set(Direction.values())


def _strings(node: ast.AST | None) -> list[str]:
    """The status or direction strings ``node`` (a constant, or a tuple/list/set of them) holds."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in WORDS:
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [s for element in node.elts for s in _strings(element)]
    return []


def _is_enum(cls: ast.ClassDef) -> bool:
    return any(isinstance(b, ast.Name) and b.id.endswith("Enum") for b in cls.bases) or any(
        isinstance(b, ast.Name) and b.id in {"TrialStatus", "Direction"} for b in cls.bases
    )


def _bindings(body: list[ast.stmt], where: str) -> Iterator[str]:
    for node in body:
        if isinstance(node, ast.ClassDef):
            if not _is_enum(node):
                yield from _bindings(node.body, f"{where}:{node.name}")
        elif isinstance(node, ast.Assign | ast.AnnAssign) and _strings(node.value):
            yield f"{where}:{node.lineno}: {', '.join(_strings(node.value))}"


def test_statuses_and_directions_are_defined_once() -> None:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            found += _bindings(tree.body, str(path.relative_to(ROOT)))
    assert not found, "status/direction strings bound outside their enums:\n" + "\n".join(found)


def test_every_exported_status_and_direction_is_a_member() -> None:
    for module in (evaluators, strategies, records):
        for name in ("OK", "FAILED", "PRUNED"):
            assert isinstance(getattr(module, name), TrialStatus), (module.__name__, name)
    assert isinstance(records.RUNNING, TrialStatus)
    assert records.FINISHED == FINISHED and all(isinstance(s, TrialStatus) for s in FINISHED)
    assert {strategies.MAXIMIZE, strategies.MINIMIZE} == set(Direction)
    assert Direction.values() == config.DIRECTIONS


def test_members_are_their_strings_in_json_sqlite_and_messages() -> None:
    assert TrialStatus.OK == "ok" and TrialStatus.PRUNED == "pruned"
    assert {"ok": 1}[TrialStatus.OK] == 1
    assert json.dumps({"status": TrialStatus.FAILED}) == '{"status": "failed"}'
    assert f"{TrialStatus.OK} {Direction.MAXIMIZE!r}" == "ok 'maximize'"
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (status TEXT)")
    conn.execute("INSERT INTO t VALUES (?)", (TrialStatus.PRUNED,))
    assert conn.execute("SELECT status, typeof(status) FROM t").fetchone() == ("pruned", "text")


def test_records_evaluations_and_observations_hold_members() -> None:
    result = evaluators.EvalResult("ok")  # a plain string, as a stored run or a plug-in gives it
    assert result.status is TrialStatus.OK
    with pytest.raises(ValueError, match="running"):
        evaluators.EvalResult("running")  # an evaluation is always finished
    with pytest.raises(ValueError, match="crashed"):
        evaluators.EvalResult("crashed")
    assert strategies.Objective("macs", "minimize").direction is Direction.MINIMIZE  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sideways"):
        strategies.Objective("macs", "sideways")  # type: ignore[arg-type]
    event = {"trial_id": 0, "spec_id": "a", "origin": "random", "status": "pruned", "spec": {}}
    record = records.record_from_event(event)
    assert record is not None and record.status is TrialStatus.PRUNED
