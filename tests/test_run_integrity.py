"""Damaged run folders (issue 23): the records are checked, never replaced.

A store that is emptied, half-truncated, random bytes, missing or re-created empty, in a run that
had trials, stops resume, report, export, runs and `load_trials` with one line naming the file
(exit 2), and the folder is left byte for byte as it was. `mixnas doctor` names each damaged case
and `--repair` rebuilds every finished trial from the event log into a new file; a dead worker
is recorded with its real exit code or signal.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from evaluators import OK, EvalContext, EvalResult, Evaluator
from mixnas.cli import main
from mixnas.config import parse_config
from mixnas.driver import run_search
from mixnas.integrity import REPAIRED, diagnose
from mixnas.records import load_trials
from search_space.errors import RunFolderError
from search_space.spec import ArchSpec
from tests.run_helpers import pseudo_score, small_config

TRIALS = 30


def _config(name: str, runs_dir: Path, trials: int = TRIALS, **changes: object) -> dict:
    data = small_config(name, str(runs_dir), budget={"trials": trials}, **changes)
    data["objectives"] = [
        {"metric": "macs", "direction": "minimize"},
        {"metric": "params", "direction": "minimize"},
    ]
    data["evaluators"] = ["cost"]
    data["backend"] = {"name": "local", "batch": 5}  # in-driver batches of 5
    data["export"] = None
    return data


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished run, copied by each test that damages it."""
    runs = tmp_path_factory.mktemp("runs")
    return run_search(parse_config(_config("healthy", runs))).run_dir


def _copy(healthy: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "runs" / "run"
    shutil.copytree(healthy, run_dir)
    return run_dir


def _empty(path: Path) -> None:
    for p in path.parent.glob("trials.sqlite*"):
        p.unlink()
    path.write_bytes(b"")


def _half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _random(path: Path) -> None:
    path.write_bytes(os.urandom(64 * 1024))


def _missing(path: Path) -> None:
    path.unlink()


def _recreated(path: Path) -> None:
    """What a resume of mixnas before issue 23 left: a fresh store with the schema, no trial."""
    _missing(path)
    from mixnas.records import RunStore

    RunStore(path.parent).close()


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "emptied": (_empty, "trials.sqlite: is empty (0 bytes)"),
    "half-truncated": (_half, "trials.sqlite: is truncated: its header counts"),
    "random bytes": (_random, "trials.sqlite: is not an SQLite database"),
    "missing": (_missing, f"trials.sqlite: is missing, but strategy.json has told {TRIALS}"),
    "re-created": (_recreated, f"holds 0 finished trial(s) but strategy.json has told {TRIALS}"),
}


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file of the folder with its content hash and modification time."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        + f"@{p.stat().st_mtime_ns}"
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_store_is_one_line_everywhere_and_nothing_is_written(
    healthy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    run_dir = _copy(healthy, tmp_path)
    hurt, fragment = DAMAGE[damage]
    hurt(run_dir / "trials.sqlite")
    before = _snapshot(run_dir)
    for argv in (
        ["search", "--resume", str(run_dir), "--budget", str(TRIALS + 10), "-q"],
        ["report", str(run_dir)],
        ["export", str(run_dir)],
        ["runs", str(run_dir.parent)],
    ):
        err = _one_line(capsys, argv)
        assert fragment in err and f"mixnas doctor {run_dir}" in err, (argv, err)
    with pytest.raises(RunFolderError, match=r"trials\.sqlite"):
        load_trials(run_dir)
    assert _snapshot(run_dir) == before, "a command wrote into the damaged run folder"


def test_runs_lists_the_healthy_runs_and_names_the_damaged_one(
    healthy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _copy(healthy, tmp_path)
    shutil.copytree(healthy, tmp_path / "runs" / "fine")
    _empty(run_dir / "trials.sqlite")
    assert main(["runs", str(tmp_path / "runs")]) == 2
    out, err = capsys.readouterr()
    assert "fine" in out and "run " not in out.replace("run  ", "")
    assert len(err.strip().splitlines()) == 1 and "run/trials.sqlite: is empty" in err


def test_doctor_says_healthy(healthy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", str(healthy)]) == 0
    out = capsys.readouterr().out
    assert f"{healthy}: healthy: trials.sqlite holds {TRIALS} finished trial(s)" in out
    assert f"events.jsonl logs {TRIALS}" in out
    assert main(["doctor", str(healthy), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["healthy"] and found["logged"] == found["store_finished"] == TRIALS


def _corrupt_one_page(path: Path) -> None:
    """Overwrites the middle of the file: SQLite's header stays valid, a page does not."""
    data = bytearray(path.read_bytes())
    page = 4096
    middle = (len(data) // page // 2) * page
    data[middle : middle + page] = os.urandom(page)
    path.write_bytes(bytes(data))


DOCTOR: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "emptied": ("trials.sqlite", _empty, "damaged: trials.sqlite: is empty (0 bytes)"),
    "half-truncated": ("trials.sqlite", _half, "damaged: trials.sqlite: is truncated"),
    "random bytes": ("trials.sqlite", _random, "damaged: trials.sqlite: is not an SQLite"),
    "missing": ("trials.sqlite", _missing, "damaged: trials.sqlite: is missing"),
    "re-created": ("trials.sqlite", _recreated, "damaged: trials.sqlite: lacks 30 finished"),
    "a corrupt page": ("trials.sqlite", _corrupt_one_page, "damaged: trials.sqlite: "),
    "checkpoint of random bytes": ("strategy.json", _random, "strategy.json: is not UTF-8"),
    "config of random bytes": ("config.json", _random, "config.json: is not UTF-8"),
    "manifest cut": ("manifest.json", _half, "manifest.json: is not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(DOCTOR))
def test_doctor_names_each_damaged_case(
    healthy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    run_dir = _copy(healthy, tmp_path)
    file, hurt, fragment = DOCTOR[case]
    hurt(run_dir / file)
    before = _snapshot(run_dir)
    assert main(["doctor", str(run_dir)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{run_dir}: DAMAGED\n")
    assert fragment in out, out
    assert _snapshot(run_dir) == before, "doctor wrote into the run folder"


def test_a_lost_log_line_is_named(healthy: Path, tmp_path: Path) -> None:
    run_dir = _copy(healthy, tmp_path)
    lines = (run_dir / "events.jsonl").read_text().splitlines(keepends=True)
    lines[3] = "\x00garbage\n"
    (run_dir / "events.jsonl").write_text("".join(lines))
    found = diagnose(run_dir)
    assert not found.healthy and "events.jsonl: 1 line(s) cannot be read (line 4)" in found.problems
    # a line cut by a kill at the end is harmless, and the next session starts a new line
    run_dir = _copy(healthy, tmp_path / "cut")
    with open(run_dir / "events.jsonl", "a") as f:
        f.write('{"event": "trial", "trial_')
    assert diagnose(run_dir).healthy
    run_search(parse_config(_config("run", run_dir.parent, TRIALS + 5)), resume=True)
    found = diagnose(run_dir)
    assert found.healthy and found.logged == TRIALS + 5


@pytest.mark.parametrize("damage", ["emptied", "half-truncated", "random bytes", "missing"])
def test_repair_rebuilds_every_finished_trial_into_a_new_file(
    healthy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    run_dir = _copy(healthy, tmp_path)
    DAMAGE[damage][0](run_dir / "trials.sqlite")
    damaged = _snapshot(run_dir)
    assert main(["doctor", str(run_dir), "--repair"]) == 0
    out = capsys.readouterr().out
    new = run_dir / REPAIRED
    assert f"wrote {TRIALS} finished trial(s)" in out and str(new) in out
    assert f"mv {new} {run_dir / 'trials.sqlite'}" in out
    after = _snapshot(run_dir)
    assert {k: v for k, v in after.items() if k != REPAIRED} == damaged, "the damaged file moved"
    # put it in place as the message says: the run is whole again and resumes
    for p in run_dir.glob("trials.sqlite*"):
        p.unlink()
    new.rename(run_dir / "trials.sqlite")
    assert main(["doctor", str(run_dir)]) == 0
    columns = ["trial_id", "spec_id", "origin", "status", "macs", "params", "spec", "started"]
    repaired, original = load_trials(run_dir), load_trials(healthy)
    assert repaired[columns].equals(original[columns])
    capsys.readouterr()
    assert main(["search", "--resume", str(run_dir), "--budget", str(TRIALS + 5), "-q"]) == 0
    assert len(load_trials(run_dir)) == TRIALS + 5


def test_repair_refuses_to_write_over_an_earlier_repair(
    healthy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _copy(healthy, tmp_path)
    _empty(run_dir / "trials.sqlite")
    (run_dir / REPAIRED).write_bytes(b"earlier")
    err = _one_line(capsys, ["doctor", str(run_dir), "--repair"])
    assert "exists already" in err and (run_dir / REPAIRED).read_bytes() == b"earlier"


def test_trials_committed_before_a_kill_are_logged_when_reused(
    healthy: Path, tmp_path: Path
) -> None:
    """The state a kill between a batch's commit and its log flush leaves: the records have
    trials the log lacks and the checkpoint is one batch old. The resume reuses them and logs
    them ('reused'), so the log holds every finished trial again."""
    runs = tmp_path / "runs"
    run_search(parse_config(_config("run", runs, TRIALS - 5)))
    old_checkpoint = (runs / "run" / "strategy.json").read_bytes()
    old_log = (runs / "run" / "events.jsonl").read_bytes()
    run_search(parse_config(_config("run", runs, TRIALS)), resume=True)
    (runs / "run" / "strategy.json").write_bytes(old_checkpoint)
    (runs / "run" / "events.jsonl").write_bytes(old_log)
    assert diagnose(runs / "run").notes != []  # 5 trials in the store, not in the log
    summary = run_search(parse_config(_config("run", runs, TRIALS)), resume=True)
    assert summary.reused == 5 and summary.finished == 5
    found = diagnose(runs / "run")
    assert found.healthy and found.logged == TRIALS and not found.notes


class ExitsOrDies(Evaluator):
    """``score``, except that a worker calls ``os._exit(3)`` or is killed by SIGKILL for some
    specs (chosen by ``pseudo_score``)."""

    name = "exits_or_dies"
    metrics = ("score",)

    def _evaluate(self, spec: ArchSpec, context: EvalContext) -> EvalResult:
        score = pseudo_score(spec)
        if int(score) % 3 == 0:
            os._exit(3)
        if int(score) % 3 == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return EvalResult(OK, {"score": score})


def test_a_dead_worker_is_recorded_with_its_exit_code_or_signal(tmp_path: Path) -> None:
    data = small_config(
        "dying",
        str(tmp_path),
        evaluators=[{"name": "tests.test_run_integrity:ExitsOrDies"}],
        backend={"name": "local", "workers": 2},
        budget={"trials": 8},
        export=None,
    )
    summary = run_search(parse_config(data))
    frame = load_trials(summary.run_dir)
    buckets = frame["spec"].map(lambda s: int(pseudo_score(ArchSpec.from_json(s))) % 3)
    errors = dict(zip(frame["trial_id"], frame["error"], strict=True))
    for trial_id, bucket in zip(frame["trial_id"], buckets, strict=True):
        expected = {
            0: "worker process died (exit code 3)",
            1: "worker process died (killed by signal 9 (SIGKILL))",
            2: "",
        }[bucket]
        assert errors[trial_id].startswith(expected) if expected else not errors[trial_id]
    assert "None" not in " ".join(errors.values())
    assert set(buckets) >= {0, 1}, "the seed should reach both kinds of death"


def test_sqlite_files_that_are_not_run_folders_are_not_touched(tmp_path: Path) -> None:
    """A folder with no sign of trials and an empty store (a run stopped before its first
    trial) resumes as before: nothing is claimed, so nothing is refused."""
    run_dir = tmp_path / "runs" / "fresh"
    data = _config("fresh", tmp_path / "runs", 5)
    run_search(parse_config(data))
    for name in ("strategy.json", "events.jsonl"):
        (run_dir / name).unlink()
    _empty(run_dir / "trials.sqlite")
    summary = run_search(parse_config(data), resume=True)
    assert summary.finished == 5
    with sqlite3.connect(run_dir / "trials.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 5
