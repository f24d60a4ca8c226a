"""The user's side of a run (issue 25, items 1-2): checked before work, honest exits, clean
interrupts, no traceback from a closed pipe or a missing device, progress that tells the truth."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from evaluators import EvalContext, EvalResult, Evaluator
from mixnas.cli import main
from mixnas.config import parse_config
from mixnas.driver import LocalDriver, open_run, resume_config, run_search
from mixnas.lock import RunLock
from mixnas.progress import Ticker
from mixnas.records import RunStore
from search_space.spec import ArchSpec
from tests.run_helpers import small_config

ROOT = Path(__file__).resolve().parents[1]


class AlwaysFails(Evaluator):
    """Fails every trial with one of two messages (by the spec's id), as a wrong data path did."""

    name = "always_fails"
    metrics = ("score",)

    def _evaluate(self, spec: ArchSpec, context: EvalContext) -> EvalResult:
        if int(spec.id[:8], 16) % 3 == 0:
            raise OSError("the data folder went away")
        raise FileNotFoundError("no such dataset here")


class CountingScore(Evaluator):
    """``score`` = params / 1000, and a line in a file per evaluated spec: which ran."""

    name = "counting_score"
    metrics = ("score",)
    cheap = True

    def __init__(self, log: str = "") -> None:
        self.log = log

    def _evaluate(self, spec: ArchSpec, context: EvalContext) -> EvalResult:
        from search_space import spec_cost

        with open(self.log, "a", encoding="utf-8") as f:
            f.write(spec.id + "\n")
        return EvalResult("ok", {"score": spec_cost(spec).params / 1000})


def _write(tmp_path: Path, data: dict[str, Any], name: str = "search.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _mixnas(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mixnas", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        **kwargs,
    )


# -- item 1: checked before work ---------------------------------------------------------------
@pytest.mark.parametrize(
    "evaluator, field, fragment",
    [
        ({"name": "train", "data": "/no/such/dir"}, "evaluators[0].data", "no such dataset"),
        ({"name": "train", "data": "cifar10"}, "evaluators[0].data", "nothing is downloaded"),
        ({"name": "train", "data": {"name": "cifar10"}}, "evaluators[0].data", "digits"),
        ({"name": "train", "data": {"name": "synthetic", "sizes": 3}}, "data.sizes", "allowed"),
        (
            {"name": "train", "options": {"data_options": {"size": 1}}},
            "data.size",
            "an integer in [2",
        ),
        ({"name": "train", "options": {"lr": -1}}, "evaluators[0].options.lr", "in [0, 100]"),
        ({"name": "train", "budget": {"stepz": 5}}, "evaluators[0].budget.stepz", "allowed"),
        ({"name": "train", "budget": {"steps": 0}}, "evaluators[0].budget.steps", "in [1"),
        ({"name": "proxy", "budget": {"steps": 5}}, "evaluators[0].budget", "no budget"),
        (
            {"name": "supernet", "options": {"batch_size": "big"}},
            "evaluators[0].options.batch_size",
            "an integer",
        ),
        (
            {"name": "supernet", "options": {"amp": "fp8"}},
            "evaluators[0].options.amp",
            "one of off, bf16, fp16",
        ),
    ],
)
def test_data_options_and_budgets_are_refused_before_the_run_folder(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    evaluator: dict[str, Any],
    field: str,
    fragment: str,
) -> None:
    runs = tmp_path / "runs"
    data = small_config("bad", str(runs), evaluators=[evaluator])
    data["objectives"] = [{"metric": "params", "direction": "minimize"}]
    path = _write(tmp_path, data)
    for argv in (["search", str(path), "--check"], ["search", str(path), "-q"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert str(path) in err and field in err and fragment in err, err
        assert not (runs / "bad").exists(), "no run folder before the checks pass"


def test_existing_data_sources_pass_the_check(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    (folder / "cat").mkdir(parents=True)
    archive = tmp_path / "data.npz"
    np.savez(archive, x=np.zeros((4, 8, 8)), y=np.zeros(4, dtype=np.int64))
    for source in ("digits", {"name": "synthetic", "size": 50}, str(folder), str(archive)):
        data = small_config("ok", str(tmp_path / "runs"))
        data["evaluators"] = [{"name": "train", "data": source, "budget": {"steps": 1}}]
        data["objectives"] = [{"metric": "top1", "direction": "maximize"}]
        assert main(["search", str(_write(tmp_path, data)), "--check"]) == 0, source
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, images=np.zeros(2))
    data["evaluators"][0]["data"] = str(wrong)
    assert main(["search", str(_write(tmp_path, data)), "--check"]) == 2


def test_analytic_constraints_prune_before_any_evaluator(tmp_path: Path) -> None:
    log = tmp_path / "evaluated.txt"
    limit = 1_000_000
    data = small_config(
        "prune",
        str(tmp_path),
        evaluators=[
            {"name": "tests.test_user_side_run:CountingScore", "options": {"log": str(log)}}
        ],
        constraints={"params": {"max": limit}},
        budget={"trials": 24},
        backend={"name": "local", "workers": 0},
    )
    summary = run_search(parse_config(data), quiet=True)
    evaluated = set(log.read_text().split())
    with RunStore(summary.run_dir) as store:
        records = store.records()
    infeasible = [r for r in records if r.error.startswith("infeasible")]
    feasible = [r for r in records if not r.error]
    assert infeasible and feasible, "the limit splits the space's candidates"
    assert summary.infeasible == len(infeasible)
    for r in infeasible:
        assert r.status == "pruned" and r.metrics["params"] > limit
        assert "params" in r.error and "max 1,000,000" in r.error
        assert r.spec_id not in evaluated, "no evaluator ran on an infeasible candidate"
        assert "score" not in r.metrics and r.stages == ("cost",)
    assert {r.spec_id for r in feasible} == evaluated
    assert all(r.metrics["params"] <= limit for r in feasible)


def test_a_run_whose_trials_all_fail_says_so_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = small_config(
        "allfail",
        str(tmp_path),
        evaluators=[{"name": "tests.test_user_side_run:AlwaysFails"}],
        budget={"trials": 9},
        backend={"name": "local", "workers": 0},
    )
    assert main(["search", str(_write(tmp_path, data)), "-q"]) == 1
    err = capsys.readouterr().err
    assert "every trial failed (9 this session" in err, err
    counts = {}
    for line in err.splitlines()[1:]:
        count, _, text = line.strip().partition("x ")
        counts[text] = int(count)
    assert sum(counts.values()) == 9 and len(counts) == 2, err
    assert any("no such dataset here" in t for t in counts)
    assert any("the data folder went away" in t for t in counts)
    assert "Traceback" not in err


# -- item 2: interrupts, pipes, devices, version, progress ---------------------------------------
def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_cleanly_keeps_trials_writes_the_report_and_says_how_to_resume(
    tmp_path: Path,
) -> None:
    data = small_config(
        "ctrlc",
        str(tmp_path),
        evaluators=[{"name": "tests.run_helpers:SlowScore", "options": {"delay": 0.3}}],
        budget={"trials": 200},
        backend={"name": "local", "workers": 1},
    )
    path = _write(tmp_path, data)
    run_dir = tmp_path / "ctrlc"
    # a session of its own: SIGINT to the group is what a terminal's Ctrl-C does (workers too)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mixnas", "search", str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # as from a terminal: a test runner started in the background (nohup, `cmd &`, some CI
        # shells) passes SIGINT down ignored, and Python then installs no Ctrl-C handler at all
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        events = run_dir / "events.jsonl"
        if events.is_file() and events.read_text().count('"event": "trial"') >= 2:
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert f"mixnas search --resume {run_dir}" in out, out
    assert (run_dir / "report.html").is_file()
    with RunStore(run_dir) as store:
        finished = [r for r in store.records() if r.done]
    assert len(finished) >= 2
    # the resumed run goes on from there (in the driver: quicker), nothing finished run again
    config = resume_config(run_dir, trials=len(finished) + 2)
    config = replace(config, backend=replace(config.backend, workers=0))
    summary = run_search(config, resume=True, quiet=True)
    with RunStore(run_dir) as store:
        records = store.records()
    assert len(records) == len(finished) + 2
    assert summary.ok >= 2 and summary.finished - summary.reused == 2


@pytest.mark.parametrize(
    "args",
    [
        ("zoo", "list"),
        ("space", "sample", "hybrid", "-n", "40"),
        ("space", "describe", "hybrid"),
    ],
)
def test_a_closed_pipe_is_no_traceback(args: tuple[str, ...]) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line, as with `| head -0`
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mixnas", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
    finally:
        os.close(write)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr


def test_a_pipe_closed_before_the_last_flush_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output smaller than the buffer reaches a pipe only when it is flushed: at the
    interpreter's exit, where a closed pipe printed 'Exception ignored ... BrokenPipeError' and
    the status became 120. The CLI flushes inside its own error handling now."""
    read, write = os.pipe()
    os.close(read)
    out = open(write, "w", buffering=1 << 16)  # noqa: SIM115 - a piped stdout, block-buffered
    monkeypatch.setattr(sys, "stdout", out)
    try:
        assert main(["zoo", "list"]) == 0
        out.flush()  # what the interpreter does at exit: nothing is left to fail on
    finally:
        monkeypatch.undo()
        out.close()


def test_a_missing_gpu_is_one_line_for_latency_commands() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for args in (
        ("latency", "profile", "--device", "host", "--space", "hybrid", "-n", "1",
         "--torch-device", "cuda"),
        ("latency", "measure", "deit_t", "--device", "cuda:1"),
    ):  # fmt: skip
        done = _mixnas(*args)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "no CUDA device" in done.stderr, done.stderr
        assert done.stderr.startswith("mixnas: error: --")


def test_version_is_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"mixnas {version('mixnas')}"


def test_progress_best_is_the_runs_best_on_resume(tmp_path: Path) -> None:
    data = small_config("best", str(tmp_path), budget={"trials": 8})
    first = run_search(parse_config(data), quiet=True)
    config = resume_config(first.run_dir, trials=10)
    job, run_dir = open_run(config, resume=True)
    with RunLock(run_dir), RunStore(run_dir) as store:
        driver = LocalDriver(job, run_dir, store, quiet=True)
        driver.run()
        records = [r for r in store.records() if r.status == "ok"]
    assert driver.progress is not None
    best = driver.progress.best
    shown_by_first_session = 0
    for metric, pick in (("score", max), ("params", min)):
        run_best = pick(r.metrics[metric] for r in records)
        session_best = pick(r.metrics[metric] for r in records if r.trial_id >= 8)
        assert best[metric] == run_best, metric
        shown_by_first_session += session_best != run_best
    assert shown_by_first_session, "a best value of the first session is what the bar shows"


def test_a_time_budget_is_not_overshot_by_a_trial(tmp_path: Path) -> None:
    data = small_config(
        "clock",
        str(tmp_path),
        evaluators=[{"name": "tests.run_helpers:SlowScore", "options": {"delay": 0.5}}],
        budget={"seconds": 1.8},
        backend={"name": "local", "workers": 0},
    )
    summary = run_search(parse_config(data), quiet=True)
    assert summary.stopped_by.startswith("time budget"), summary.stopped_by
    assert 2 <= summary.finished <= 3
    assert summary.seconds < 1.8, "no trial starts that would end past the budget"


def test_ticker_is_a_periodic_line_without_a_terminal() -> None:
    stream = io.StringIO()
    ticker = Ticker(300, "supernet sn", "step", period=0.0, stream=stream)
    ticker.note("supernet sn: building")
    for step in (1, 2, 3):
        ticker.set(step, loss=f"{1 / step:.3f}")
    ticker.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "supernet sn: building"
    assert lines[-1].startswith("supernet sn: 3/300 steps (1%), ") and "loss=0.333" in lines[-1]
    quiet = io.StringIO()
    Ticker(3, "x", "step", quiet=True, period=0.0, stream=quiet).set(2)
    assert quiet.getvalue() == ""


def test_supernet_train_and_scale_proxy_show_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "sn.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "sn",
                "space": "isotropic",
                "data": "synthetic",
                "data_options": {"size": 64},
                "runs_dir": str(tmp_path),
                "supernet": {"steps": 3, "batch_size": 8, "checkpoint_every": 3},
            }
        )
    )
    monkeypatch.setenv("MIXNAS_PROGRESS_PERIOD", "0")  # a line per step, not per 30 s
    assert main(["supernet", "train", str(config)]) == 0
    err = capsys.readouterr().err
    assert "supernet sn: loading synthetic" in err and "supernet sn: 3/3 steps (100%)" in err, err
    args = ["scale", "deit_t", "--budget", "macs=2e8", "--rule", "proxy", "--proxy", "params"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "scale deit_t: 1 candidates" in err and "scored" in err, err


def test_the_event_log_and_records_agree_after_infeasible_trials(tmp_path: Path) -> None:
    data = small_config("events", str(tmp_path), constraints={"params": {"max": 1_000_000}})
    summary = run_search(parse_config(data), quiet=True)
    lines = (summary.run_dir / "events.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines if '"event": "trial"' in line]
    with RunStore(summary.run_dir) as store:
        assert sorted(e["trial_id"] for e in logged) == [r.trial_id for r in store.records()]
    assert summary.infeasible >= 1


@pytest.mark.parametrize(
    "data, fragment", [("/no/such/dir", "no such dataset"), ("cifar10", "nothing is downloaded")]
)
def test_supernet_train_refuses_missing_data_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: str, fragment: str
) -> None:
    config = tmp_path / "sn.yaml"
    runs = tmp_path / "runs"
    config.write_text(
        yaml.safe_dump(
            {"space": "isotropic", "data": data, "runs_dir": str(runs), "supernet": {"steps": 2}}
        )
    )
    assert main(["supernet", "train", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{config}: data: " in err and fragment in err, err
    assert not runs.exists()


def test_a_run_where_every_candidate_breaks_a_constraint_says_so_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = small_config(
        "tight",
        str(tmp_path),
        constraints={"params": {"max": 1000}},
        budget={"trials": 5},
        backend={"name": "local", "workers": 0},
    )
    assert main(["search", str(_write(tmp_path, data)), "-q"]) == 1
    err = capsys.readouterr().err
    assert "5 candidate(s) broke the config's constraints (params max 1,000" in err, err
    assert len(err.strip().splitlines()) == 1


def test_every_registered_evaluator_declares_its_options_and_budget() -> None:
    import evaluators

    for name in evaluators.names():
        cls = evaluators.EVALUATORS.get(name)
        assert cls.option_types is not None, f"{name} declares no option_types"
        assert cls.budget_types is not None, f"{name} declares no budget_types"


def test_latency_profile_shows_progress_per_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIXNAS_PROGRESS_PERIOD", "0")
    args = ["latency", "profile", "--device", "testdev", "--space", "isotropic", "-n", "2"]
    assert main([*args, "--cache-dir", str(tmp_path), "--repeats", "2"]) == 0
    err = capsys.readouterr().err
    assert "latency profile testdev: 1/2 specs (50%)" in err, err
    assert "latency profile testdev: 2/2 specs (100%)" in err, err
