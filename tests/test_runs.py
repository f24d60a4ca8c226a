"""Search runs: records, resume after SIGKILL, failing evaluators, reports and export."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mixnas import load_trials
from mixnas.cli import main
from mixnas.config import parse_config
from mixnas.driver import run_search
from mixnas.records import DB_NAME, RunStore
from tests.run_helpers import pseudo_score, small_config

ROOT = Path(__file__).resolve().parents[1]


def _comparable(run_dir: Path) -> list[tuple]:
    """What must be equal between an interrupted and an uninterrupted run."""
    with RunStore(run_dir) as store:
        return [
            (r.trial_id, r.spec_id, r.origin, r.status, json.dumps(dict(r.metrics), sort_keys=True))
            for r in store.records()
        ]


def test_run_records_every_trial_and_scores_are_the_evaluators(tmp_path: Path) -> None:
    config = parse_config(small_config("basic", str(tmp_path)))
    summary = run_search(config, quiet=True)
    frame = load_trials(summary.run_dir)
    assert len(frame) == 12 and summary.finished == 12
    assert {"trial_id", "spec_id", "status", "score", "params", "macs"} <= set(frame.columns)
    assert list(frame["trial_id"]) == list(range(12))
    assert frame["spec_id"].is_unique  # a strategy never proposes a spec twice
    from search_space import ArchSpec

    for _, row in frame.iterrows():
        spec = ArchSpec.from_dict(json.loads(row["spec"]))
        assert row["score"] == pytest.approx(pseudo_score(spec))
    assert summary.front, "a two-objective run has a non-empty front"
    for name in ("manifest.json", "config.json", "strategy.json", "events.jsonl", DB_NAME):
        assert (summary.run_dir / name).is_file()
    manifest = json.loads((summary.run_dir / "manifest.json").read_text())
    assert {"torch", "numpy", "mixnas"} <= set(manifest["versions"])
    assert manifest["space_hash"] and manifest["host"]["cpu_count"]


def test_same_seed_same_records(tmp_path: Path) -> None:
    a = run_search(parse_config(small_config("a", str(tmp_path))), quiet=True)
    b = run_search(parse_config(small_config("b", str(tmp_path))), quiet=True)
    assert _comparable(a.run_dir) == _comparable(b.run_dir)


def _search_cmd(config_path: Path) -> list[str]:
    return [sys.executable, "-m", "mixnas", "search", str(config_path), "-q"]


def test_sigkill_at_random_points_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    trials = 60
    data = small_config("killed", str(tmp_path / "runs"), budget={"trials": trials})
    data["evaluators"][0]["options"]["delay"] = 0.15
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "runs" / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(7)
    fresh = _search_cmd(path)
    resume = [sys.executable, "-m", "mixnas", "search", "--resume", str(run_dir), "-q"]
    kills = 0
    while kills < 5:
        started = (run_dir / "config.json").is_file()
        before = _trial_events(run_dir)
        proc = subprocess.Popen(
            resume if started else fresh, cwd=ROOT, env=env, stdout=subprocess.DEVNULL
        )
        # kill at a random instant once this process is evaluating trials (start-up time
        # varies a lot on a loaded machine, and a kill before any trial tests little)
        while proc.poll() is None and _trial_events(run_dir) <= before:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.0))
        if proc.poll() is not None:
            break  # it finished before the kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    command = resume
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert kills == 5, "the run should have been killed five times before it finished"

    reference = run_search(parse_config({**data, "name": "uninterrupted"}), quiet=True)
    killed = _comparable(run_dir)
    assert len(killed) == trials
    assert killed == _comparable(reference.run_dir)
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    finished = [e["trial_id"] for e in events if e["event"] == "trial"]
    assert len(finished) == len(set(finished)), "a finished trial was evaluated again"
    assert set(finished) <= set(range(trials))


def _trial_events(run_dir: Path) -> int:
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return 0
    return sum('"event": "trial"' in line for line in path.read_text().splitlines())


def test_failing_evaluators_become_failed_trials_and_the_run_completes(tmp_path: Path) -> None:
    data = small_config(
        "faulty",
        str(tmp_path),
        evaluators=[{"name": "tests.run_helpers:Faulty", "options": {"hang": 30}}],
        trial_timeout=1.5,
        budget={"trials": 12},
    )
    summary = run_search(parse_config(data), quiet=True)
    frame = load_trials(summary.run_dir)
    assert len(frame) == 12
    errors = " ".join(frame.loc[frame["status"] == "failed", "error"])
    buckets = {int(s) % 4 for s in frame["spec"].map(_score_of)}
    assert "breaks the evaluator" in errors or 0 not in buckets
    assert "non-finite" in errors or 1 not in buckets
    assert "timed out after 1.5 s during 'tests.run_helpers:Faulty'" in errors or 2 not in buckets
    timed_out = frame[frame["error"].str.startswith("timed out")]
    assert timed_out["params"].notna().all(), "metrics of evaluators before the timeout are kept"
    ok = frame[frame["status"] == "ok"]
    assert (ok["spec"].map(_score_of).astype(int) % 4 == 3).all()
    assert summary.failed == (frame["status"] == "failed").sum() >= 2


def _score_of(spec_json: str) -> float:
    from search_space import ArchSpec

    return pseudo_score(ArchSpec.from_dict(json.loads(spec_json)))


def test_screening_prunes_and_keeps_cheap_metrics(tmp_path: Path) -> None:
    evaluators = [
        {"name": "tests.run_helpers:SlowScore", "options": {"delay": 0.0}},
        {
            "name": "proxy",
            "options": {"names": ["params"], "batch_size": 2},
            "promote": {"metric": "score", "top": 0.3, "warmup": 3},
        },
    ]
    data = small_config("screen", str(tmp_path), evaluators=evaluators, budget={"trials": 12})
    data["backend"] = {"name": "local", "workers": 0}
    summary = run_search(parse_config(data), quiet=True)
    frame = load_trials(summary.run_dir)
    pruned = frame[frame["status"] == "pruned"]
    promoted = frame[frame["status"] == "ok"]
    assert len(pruned) > 0 and len(promoted) >= 3
    assert pruned["proxy:params"].isna().all() and pruned["score"].notna().all()
    assert promoted["proxy:params"].notna().all()


def test_report_and_export_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = parse_config(small_config("rep", str(tmp_path)))
    summary = run_search(config, quiet=True)
    assert main(["report", str(summary.run_dir)]) == 0
    html = (summary.run_dir / "report.html").read_text()
    assert html.count("<svg") >= 3 and "Front members" in html and "<script" not in html
    pareto = (summary.run_dir / "pareto.csv").read_text().splitlines()
    assert len(pareto) == len(summary.front) + 1

    out = tmp_path / "shipped"
    assert main(["export", str(summary.run_dir), "--pick", "front", "--out", str(out)]) == 0
    files = sorted(out.glob("*.json"))
    assert len(files) == len(summary.front)
    record = json.loads(files[0].read_text())
    assert {"id", "spec", "metrics", "costs", "provenance"} <= set(record)
    assert record["provenance"]["trial_id"] in summary.front
    capsys.readouterr()
    assert main(["build", str(files[0]), "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["id"] == record["id"] and built["params"] == record["metrics"]["params"]

    assert main(["export", str(summary.run_dir), "--pick", "999"]) == 2
    assert "no finished trial 999" in capsys.readouterr().err


def test_runs_lists_each_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = small_config(
        "listed", str(tmp_path), budget={"trials": 6}, backend={"name": "local", "workers": 0}
    )
    summary = run_search(parse_config(config), quiet=True)
    (tmp_path / "notes").mkdir()  # a folder that is not a run is passed over
    capsys.readouterr()
    assert main(["runs", str(tmp_path), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "listed" and row["trials"] == 6 and row["budget"] == 6
    assert row["ok"] + row["failed"] + row["pruned"] == 6 and row["running"] == 0
    assert row["front"] == len(summary.front) and row["best"]["trial_id"] in summary.front
    assert main(["runs", str(tmp_path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["run", "created"] and table[1].startswith("listed ")
    assert main(["runs", str(tmp_path / "nowhere")]) == 2


def test_export_torchscript_checks_outputs(tmp_path: Path) -> None:
    from mixnas.export import export_run

    summary = run_search(parse_config(small_config("ts", str(tmp_path))), quiet=True)
    paths = export_run(summary.run_dir, pick="best", out=tmp_path / "ts", torchscript=True)
    assert len(paths) == 1
    assert paths[0].with_suffix(".pt").is_file()


def test_export_onnx_checks_outputs(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from mixnas.export import export_run

    space = {"around": {"zoo": "poolformer_s12", "depth": 0, "width": [1.0]}}
    data = small_config("onnx", str(tmp_path), space=space, budget={"trials": 2})
    data["constraints"] = {}
    summary = run_search(parse_config(data), quiet=True)
    paths = export_run(summary.run_dir, pick="best", out=tmp_path / "onnx", onnx=True)
    assert paths[0].with_suffix(".onnx").is_file()
