"""Runs at scale: bounded checkpoints, in-driver batches, asynchronous workers, one driver per
run folder, and recovery from a damaged checkpoint (or refusal of damaged records)."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from mixnas.cli import main
from mixnas.config import ObjectiveConfig, PromoteRule, parse_config
from mixnas.driver import run_search
from mixnas.front import front
from mixnas.lock import RunLock
from mixnas.manifest import CHECKPOINT
from mixnas.pipeline import TrialPipeline, promotion_threshold
from mixnas.records import RunStore, TrialRecord
from mixnas.running import RunningFront, Threshold
from search_space import load_space
from tests.run_helpers import small_config
from tests.test_runs import _comparable as _records

ROOT = Path(__file__).resolve().parents[1]


def _cost_only(name: str, runs_dir: Path, trials: int, **changes) -> dict:
    data = small_config(name, str(runs_dir), budget={"trials": trials}, **changes)
    data["objectives"] = [
        {"metric": "macs", "direction": "minimize"},
        {"metric": "params", "direction": "minimize"},
    ]
    data["evaluators"] = ["cost"]
    data["export"] = None
    return data


def test_checkpoint_does_not_grow_with_the_run_and_cheap_trials_run_in_batches(
    tmp_path: Path,
) -> None:
    sizes = []
    for trials in (100, 400):
        summary = run_search(parse_config(_cost_only(f"c{trials}", tmp_path, trials)))
        assert summary.finished == trials
        sizes.append((summary.run_dir / CHECKPOINT).stat().st_size)
        with RunStore(summary.run_dir) as store:
            seqs = [r.seq for r in store.records()]
            workers = {r.worker for r in store.records()}
        assert sorted(seqs) == list(range(trials))
        assert all(w.startswith("inline:") for w in workers), "cheap trials run in the driver"
    assert sizes[1] <= sizes[0] + 64, f"checkpoint grew with the run: {sizes}"


def test_cheap_batches_killed_and_resumed_equal_an_uninterrupted_run(tmp_path: Path) -> None:
    trials = 96
    data = small_config("killed", str(tmp_path / "runs"), budget={"trials": trials})
    data["evaluators"] = [{"name": "tests.run_helpers:CheapScore", "options": {"delay": 0.01}}]
    data["backend"] = {"name": "local", "workers": 1, "batch": 8}
    data["export"] = None
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "runs" / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    fresh = [sys.executable, "-m", "mixnas", "search", str(path), "-q"]
    resume = [sys.executable, "-m", "mixnas", "search", "--resume", str(run_dir), "-q"]
    rng = random.Random(3)
    kills = 0
    while kills < 3:
        started = (run_dir / "config.json").is_file()
        before = _finished(run_dir)
        proc = subprocess.Popen(resume if started else fresh, cwd=ROOT, env=env)
        while proc.poll() is None and _finished(run_dir) <= before:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    done = subprocess.run(resume, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert kills == 3, "the run should have been killed three times before it finished"
    reference = run_search(parse_config({**data, "name": "uninterrupted"}))
    killed = _records(run_dir)
    assert [r[0] for r in killed] == list(range(trials)), "a trial was lost or repeated"
    assert killed == _records(reference.run_dir)


def _finished(run_dir: Path) -> int:
    if not (run_dir / "trials.sqlite").is_file():
        return 0
    conn = sqlite3.connect(run_dir / "trials.sqlite", timeout=30)
    try:
        query = "SELECT COUNT(*) FROM trials WHERE seq IS NOT NULL"
        return int(conn.execute(query).fetchone()[0])
    except sqlite3.OperationalError:  # the driver has not created the table yet
        return 0
    finally:
        conn.close()


def test_two_workers_never_idle_while_candidates_remain(tmp_path: Path) -> None:
    long, short = 1.0, 0.05
    data = small_config("async", str(tmp_path), budget={"trials": 10})
    data["evaluators"] = [
        {"name": "tests.run_helpers:LongOrShort", "options": {"long": long, "short": short}}
    ]
    data["backend"] = {"name": "local", "workers": 2}
    data["export"] = None
    summary = run_search(parse_config(data))
    with RunStore(summary.run_dir) as store:
        records = store.records()
    assert len(records) == 10
    by_worker: dict[str, list[TrialRecord]] = {}
    for r in records:
        by_worker.setdefault(r.worker, []).append(r)
    assert len(by_worker) == 2
    last_start = max(r.started or 0.0 for r in records)
    gaps = []
    for runs in by_worker.values():
        runs.sort(key=lambda r: r.started or 0.0)
        gaps += [
            (b.started or 0.0) - (a.finished or 0.0)
            for a, b in itertools.pairwise(runs)
            if (b.started or 0.0) <= last_start
        ]
    # a batch-synchronous scheduler idles a worker for about long - short after a short trial
    assert gaps and max(gaps) < (long - short) / 2, f"a worker waited: gaps {gaps}"


def test_local_workers_are_pinned_one_gpu_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """With GPUs, worker i sees GPU i mod n alone (tested here with two pretend GPUs)."""
    import mixnas.workers as workers

    monkeypatch.setattr(workers, "gpu_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    configs = parse_config(
        {"objectives": ["gpu"], "evaluators": ["tests.run_helpers:VisibleGpu"]}
    ).evaluators
    spec = load_space("hybrid").sample(np.random.default_rng(0)).to_dict()
    seen: dict[str, float] = {}
    with workers.WorkerPool(3, configs, seed=0, threads=1, timeout=60) as pool:
        for i in range(3):
            pool.submit(workers.Task(i, spec, {}))
        while pool.busy:
            for _task, outcome, worker in pool.collect():
                seen[worker.split(":")[0]] = outcome.metrics["gpu"]
    assert seen == {"local-0": 0.0, "local-1": 1.0, "local-2": 0.0}


def test_a_second_driver_on_a_run_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = run_search(parse_config(_cost_only("locked", tmp_path, 20)))
    with RunLock(summary.run_dir):
        code = main(["search", "--resume", str(summary.run_dir), "--budget", "30", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and f"pid {os.getpid()}" in err, err
    assert len(_records(summary.run_dir)) == 20, "the refused driver wrote nothing"


def test_a_corrupt_checkpoint_is_rebuilt_from_the_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    summary = run_search(parse_config(_cost_only("corrupt", tmp_path, 30)))
    before = _records(summary.run_dir)
    (summary.run_dir / CHECKPOINT).write_bytes(
        bytes(random.Random(0).randrange(256) for _ in range(300))
    )
    code = main(["search", "--resume", str(summary.run_dir), "--budget", "50", "-q"])
    assert code == 0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "strategy.json could not be read (is not UTF-8 text (byte" in warning
    assert "rebuilt the strategy from 30 finished trial(s)" in warning and "\n" not in warning
    after = _records(summary.run_dir)
    assert after[:30] == before and [r[0] for r in after] == list(range(50))
    assert len({r[1] for r in after}) == 50, "a spec was evaluated twice"


def test_records_that_lost_trials_stop_the_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = run_search(parse_config(_cost_only("emptied", tmp_path, 20)))
    for path in summary.run_dir.glob("trials.sqlite*"):
        path.unlink()
    (summary.run_dir / "trials.sqlite").write_bytes(b"")
    code = main(["search", "--resume", str(summary.run_dir), "--budget", "30", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "trials.sqlite: is empty (0 bytes)" in err and "mixnas doctor" in err


def test_a_run_of_the_previous_format_resumes(tmp_path: Path) -> None:
    """Schema 1 records (no seq) and a checkpoint with the whole history still resume exactly."""
    data = small_config("old", str(tmp_path), budget={"trials": 10})
    data["export"] = None
    summary = run_search(parse_config(data))
    run_dir = summary.run_dir
    with sqlite3.connect(run_dir / "trials.sqlite") as conn:
        conn.execute("DROP INDEX trials_seq")
        conn.execute("ALTER TABLE trials DROP COLUMN seq")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    # the old checkpoint: the strategy's full state_dict, history included
    from mixnas.job import prepare
    from strategies import Observation

    strategy = prepare(parse_config(data)).strategy()
    with RunStore(run_dir) as store:
        for record in store.records():
            (cand,) = strategy.ask(1)
            assert cand.spec.id == record.spec_id
            strategy.tell([Observation(cand, dict(record.metrics), record.status)])
    path = run_dir / CHECKPOINT
    path.write_text(json.dumps({"strategy": strategy.state_dict(), "told": 10, "elapsed": 1.0}))
    run_search(parse_config(data).with_overrides(trials=16), resume=True)
    reference = run_search(parse_config({**data, "name": "new", "budget": {"trials": 16}}))
    assert _records(run_dir) == _records(reference.run_dir)


def test_running_front_and_thresholds_equal_the_full_computations() -> None:
    rng = np.random.default_rng(0)
    objectives = [ObjectiveConfig("a", "maximize"), ObjectiveConfig("b", "minimize")]
    constraints = {"b": {"max": 8.0}}
    running = RunningFront(objectives, constraints)
    rule = PromoteRule("a", top=0.25, direction="maximize", warmup=3)
    threshold = Threshold(rule)
    records: list[TrialRecord] = []
    for i in range(400):
        status = "failed" if i % 17 == 0 else "ok"
        metrics = {"a": float(rng.integers(0, 30)), "b": float(rng.integers(0, 10))}
        if i % 23 == 0:
            metrics.pop("a")
        assert threshold.value() == promotion_threshold(rule, [r.metrics for r in records])
        record = TrialRecord(i, f"s{i}", "random", status, {}, metrics)
        records.append(record)
        running.add(record)
        threshold.add(metrics)
        expected = [r.trial_id for r in front(records, objectives, constraints)]
        assert sorted(running.trial_ids) == expected


def test_run_many_equals_one_spec_at_a_time() -> None:
    space = load_space("hybrid")
    rng = np.random.default_rng(1)
    specs = [space.sample(rng) for _ in range(6)]
    configs = parse_config(
        {
            "objectives": ["params"],
            "evaluators": [
                "cost",
                {
                    "name": "tests.run_helpers:CheapScore",
                    "options": {"delay": 0.0},
                    "promote": {"metric": "params", "direction": "minimize", "warmup": 0},
                },
            ],
        }
    ).evaluators
    pipeline = TrialPipeline(configs, seed=0)
    threshold = float(np.median([pipeline.run(s, {}).metrics["params"] for s in specs]))
    thresholds = {1: threshold}
    many = pipeline.run_many(specs, thresholds)
    one = [pipeline.run(s, thresholds) for s in specs]
    assert [(o.status, dict(o.metrics), o.stages) for o in many] == [
        (o.status, dict(o.metrics), o.stages) for o in one
    ]
    assert {o.status for o in many} == {"ok", "pruned"}


def test_a_strategy_that_cannot_be_rebuilt_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Optuna's sampler state lives only in the checkpoint's event log: with the checkpoint
    gone bad it cannot be rebuilt from the records, and resume says so in one line."""
    data = _cost_only("optuna", tmp_path, 8)
    data["strategy"] = {"name": "optuna_random"}
    summary = run_search(parse_config(data))
    (summary.run_dir / CHECKPOINT).write_text("{")
    code = main(["search", "--resume", str(summary.run_dir), "--budget", "12", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "cannot be restored" in err and str(summary.run_dir) in err
    assert len(_records(summary.run_dir)) == 8
