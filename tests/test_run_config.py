"""Search configs: every mistake fails before any work with one line naming field and value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mixnas.cli import main
from mixnas.config import ConfigError, load_config, parse_config
from mixnas.job import prepare
from tests.run_helpers import small_config


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_default_config_is_valid_and_prepares() -> None:
    config = load_config(None)
    job = prepare(config)
    assert config.name == "default"
    assert "top1" in job.metrics and "params" in job.metrics
    assert job.space.cardinality() > 10**15


@pytest.mark.parametrize("pick", ["front", "best", "top5", None])
def test_export_pick_takes_the_picks_of_mixnas_export(tmp_path: Path, pick: str | None) -> None:
    config = parse_config(small_config("a", str(tmp_path), export={"pick": pick}))
    assert config.export_pick == pick


def test_config_round_trips_through_to_dict(tmp_path: Path) -> None:
    config = parse_config(small_config("a", str(tmp_path)))
    again = parse_config(json.loads(json.dumps(config.to_dict())))
    assert again.to_dict() == config.to_dict()


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"objectives": [{"metric": "accuracy"}]}, "objectives[0].metric", "no configured"),
        ({"objectives": [{"metric": "score", "direction": "up"}]}, "direction", "maximize"),
        ({"strategy": {"name": "annealing"}}, "strategy.name", "unknown strategy"),
        ({"strategy": {"name": "nsga2", "options": {"pop": 3}}}, "strategy.options.pop", "allowed"),
        ({"evaluators": [{"name": "oracle"}]}, "evaluators[0].name", "unknown evaluator"),
        (
            {"evaluators": [{"name": "train", "options": {"lr_typo": 1}}]},
            "evaluators[0]",
            "lr_typo",
        ),
        ({"budget": {"trials": 0}}, "budget.trials", ">= 1"),
        ({"budget": {"trials": "ten"}}, "budget.trials", "integer"),
        ({"budget": {}}, "budget", "trials and/or seconds"),
        ({"name": "../outside"}, "name", "inside runs_dir"),
        ({"export": {"dir": "../../etc"}}, "export.dir", "inside the run folder"),
        ({"export": {"dir": "/tmp/x"}}, "export.dir", "inside the run folder"),
        ({"export": {"pick": "top0"}}, "export.pick", "topK"),
        ({"export": {"pick": "worst"}}, "export.pick", "front, best"),
        ({"backend": {"name": "slurm"}}, "backend.name", "local, ray"),
        ({"space": "no_such_space"}, "space", "neither a built-in"),
        ({"colour": "blue"}, "colour", "unknown field"),
        ({"constraints": {"latency_ms@host": {"max": 5}}}, "constraints.latency_ms@host", "no"),
        (
            {
                "evaluators": [
                    {
                        "name": "tests.run_helpers:SlowScore",
                        "promote": {"metric": "proxy:nwot"},
                    }
                ]
            },
            "promote.metric",
            "earlier evaluator",
        ),
    ],
)
def test_bad_config_fails_before_work_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict, field: str, fragment: str
) -> None:
    runs = tmp_path / "runs"
    path = _write(tmp_path, small_config("bad", str(runs), **change))
    code = main(["search", str(path), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert str(path) in err and field in err and fragment in err, err
    assert not (runs / "bad").exists(), "no work (not even a run folder) before the checks pass"


def test_unknown_device_is_an_error_listing_the_known_ones(tmp_path: Path) -> None:
    data = small_config("dev", str(tmp_path))
    data["evaluators"].append({"name": "predicted_latency", "options": {"device": "toaster"}})
    data["objectives"].append({"metric": "latency_ms@toaster", "direction": "minimize"})
    with pytest.raises(ConfigError, match=r"evaluators\[1\].*device.*raspi4.*toaster"):
        prepare(parse_config(data))


def test_latency_on_a_named_device_is_an_objective(tmp_path: Path) -> None:
    from mixnas import load_trials
    from mixnas.driver import run_search

    data = small_config("pixel", str(tmp_path), budget={"trials": 4})
    data["evaluators"].append({"name": "predicted_latency", "options": {"device": "pixel3"}})
    data["objectives"].append({"metric": "latency_ms@pixel3", "direction": "minimize"})
    data["backend"] = {"name": "local", "workers": 0}
    frame = load_trials(run_search(parse_config(data), quiet=True).run_dir)
    assert (frame["latency_ms@pixel3"] > 0).all()


def test_space_latency_bound_is_enforced_through_a_predictor(tmp_path: Path) -> None:
    space = {"from": "hybrid", "constraints": {"latency_ms@raspi4": {"max": 30.0}}}
    data = small_config("bound", str(tmp_path), space=space)
    job = prepare(parse_config(data))
    import numpy as np

    from predictors.resolve import LatencyResolver

    predict = LatencyResolver().metric("latency_ms@raspi4")
    rng = np.random.default_rng(0)
    assert all(predict(job.space.sample(rng)) <= 30.0 for _ in range(5))


def test_syntax_error_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nobjectives: [\n")
    assert main(["search", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "line" in err


def test_existing_run_folder_is_not_overwritten(tmp_path: Path) -> None:
    from mixnas.driver import run_search

    config = parse_config(small_config("twice", str(tmp_path), budget={"trials": 2}))
    run_search(config.with_overrides(), quiet=True)
    with pytest.raises(ConfigError, match="--resume"):
        run_search(config, quiet=True)
