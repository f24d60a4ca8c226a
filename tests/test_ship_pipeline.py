"""``mixnas search`` with a ``ship:`` block (or ``--then-train N``): the best front members are
trained into ``RUN/trained/trial-<id>/`` and shipped, and the report shows them; a bad block is
one line before any trial; an interrupted or failed member is finished by a resume while the
shipped ones are left as they are.

The search is tiny: a space of 8x8 gray images, 5 random trials trained 1 step on digits (the
data the members then train on), a pseudo-random ``score`` and ``params`` as objectives so the
front has several members, and the ``latency`` evaluator so that shipping compares latencies.
Members train 1 epoch and ship ONNX only.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mixnas.cli import main
from tests.test_supernet_train import MINI

pytest.importorskip("onnxruntime")

SHIP: dict[str, Any] = {
    "top": 2,
    "recipe": {"epochs": 1, "warmup_epochs": 0, "batch_size": 64},
    "torchscript": False,
    "int8": "off",
}


def _config(tmp: Path, name: str = "shiprun", **changes: Any) -> Path:
    """A search config file for the tiny search (``changes`` replace top-level fields; a
    ``ship`` of None leaves the block out)."""
    data: dict[str, Any] = {
        "name": name,
        "seed": 1,
        "space": {**MINI, "input": {**MINI["input"], "num_classes": 10}},
        "objectives": [
            {"metric": "score", "direction": "maximize"},
            {"metric": "params", "direction": "minimize"},
        ],
        "evaluators": [
            {"name": "train", "data": "digits", "budget": {"steps": 1}},
            {"name": "tests.run_helpers:SlowScore", "options": {"delay": 0.0}},
            {"name": "latency", "options": {"threads": 1, "warmup": 1, "repeats": 3}},
        ],
        "strategy": "random",
        "budget": {"trials": 5},
        "backend": {"name": "local", "workers": 0},
        "runs_dir": str(tmp / "runs"),
        "ship": SHIP,
    }
    data.update(changes)
    if data["ship"] is None:
        del data["ship"]
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _run(argv: list[str]) -> tuple[int, str, str]:
    """``mixnas ARGV`` in this process: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def _expected(run_dir: Path, top: int) -> list[int]:
    """The front's members by score, best first (ties: earlier trial), the best ``top``: what
    the block's defaults choose, computed from the records without the pipeline's code."""
    from mixnas.report.data import RunData

    front = RunData.load(run_dir).front()
    ranked = sorted(front, key=lambda r: (-r.metrics["score"], r.trial_id))
    return [r.trial_id for r in ranked[:top]]


def _trained(run_dir: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in (run_dir / "trained").glob("trial-*"))


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One search with the ship block (top 2), run through the command line."""
    tmp = tmp_path_factory.mktemp("pipeline")
    status, out, err = _run(["search", str(_config(tmp)), "-q"])
    return {"status": status, "out": out, "err": err, "run": tmp / "runs" / "shiprun"}


def test_the_best_front_members_are_trained_and_shipped(shipped: dict[str, Any]) -> None:
    run = shipped["run"]
    assert shipped["status"] == 0, shipped["err"]
    chosen = _expected(run, 2)
    assert len(chosen) == 2, "the tiny search's front has at least two members"
    assert _trained(run) == sorted(chosen)
    for trial in chosen:
        folder = run / "trained" / f"trial-{trial}"
        for name in ("checkpoints/best.pt", "checkpoints/last.pt", "metrics.csv", "spec.json"):
            assert (folder / name).is_file(), name
        record = json.loads((folder / "train_record.json").read_text())
        # the provenance `mixnas train RUN --pick ID` writes, and the search's training data
        assert record["source"]["trial_id"] == trial and record["source"]["run"] == str(run)
        assert record["data"]["name"] == "digits" and record["epochs_run"] == 1
        assert yaml.safe_load((folder / "recipe.yaml").read_text())["batch_size"] == 64
        ship = json.loads((folder / "export" / "ship.json").read_text())
        assert ship["source"]["trial"] == trial and ship["problems"] == []
        assert (folder / "export" / "model.onnx").is_file()
        assert not (folder / "export" / "model.pt").exists(), "torchscript: false"
        assert ship["int8"]["status"] == "not written", "int8: off"
        assert ship["comparison"]["searched_ms"] > 0  # the trial's measured latency
        line = next(x for x in shipped["out"].splitlines() if x.startswith(f"  trial {trial}:"))
        assert "test top-1" in line and "vs searched" in line
        assert ("FLAGGED" in line) == ship["flagged"]
    report = (run / "report.html").read_text()
    assert "Shipped models" in report
    for trial in chosen:  # a row per model: its trial and its export folder
        assert f"<tr><td>{trial}</td>" in report or f"'><td>{trial}</td>" in report
        assert f"trial-{trial}/export</code>" in report


def test_choose_ranks_the_front_members_that_meet_the_constraint(
    shipped: dict[str, Any],
) -> None:
    from mixnas.config import ShipConfig
    from mixnas.report.data import RunData
    from mixnas.shipping.pipeline import choose

    run = RunData.load(shipped["run"])
    front = run.front()
    best, *_ = _expected(shipped["run"], 1)
    params = next(r.metrics["params"] for r in front if r.trial_id == best)
    # a bound the best member breaks: it is left out, the next ones come in
    ship = ShipConfig(top=len(front), constraint={"params": {"max": params - 1}})
    chosen, how = choose(run, ship)
    ids = [r.trial_id for r in chosen]
    assert best not in ids and "params max" in how
    assert ids == [t for t in _expected(shipped["run"], len(front)) if t != best][: len(ids)]
    assert all(r.metrics["params"] <= params - 1 for r in chosen)
    # another ranking: the smallest first
    chosen, _ = choose(run, ShipConfig(top=1, by="params:min"))
    assert [r.metrics["params"] for r in chosen] == [min(r.metrics["params"] for r in front)]


def test_no_member_meeting_the_constraint_is_exit_1_and_nothing_trained(
    shipped: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import replace

    from mixnas.commands.search import then_ship
    from mixnas.driver import resume_config

    config = resume_config(shipped["run"])
    assert config.ship is not None and config.ship.top == 2  # kept in config.json
    impossible = replace(config.ship, constraint={"params": {"max": 1}})
    before = _trained(shipped["run"])
    assert then_ship(replace(config, ship=impossible), quiet=True) == 1
    out, err = capsys.readouterr()
    assert "params max 1 (0 do): trial(s) none" in out and "no front member" in err
    assert _trained(shipped["run"]) == before


def test_the_members_data_defaults_to_the_search_training_data(tmp_path: Path) -> None:
    from mixnas.config import load_config
    from mixnas.shipping.pipeline import training_data

    train = {
        "name": "train",
        "data": {"name": "synthetic", "size": 300},
        "options": {"data_seed": 4, "data_options": {"difficulty": 2.0}},
        "budget": {"steps": 1},
    }
    path = _config(tmp_path, evaluators=[train])
    assert training_data(load_config(path)) == {
        "name": "synthetic",
        "options": {"size": 300, "difficulty": 2.0},
        "data_seed": 4,
    }
    # the block's own data wins, and a recipe that names its data is left to say it
    named = _config(tmp_path, name="named", ship={**SHIP, "data": "digits"})
    assert training_data(load_config(named)) == {"name": "digits"}
    recipe = {**SHIP, "recipe": {"data": {"name": "digits", "test_fraction": 0.2}}}
    assert training_data(load_config(_config(tmp_path, name="r", ship=recipe))) == {}


def test_the_ship_block_round_trips_through_config_json(tmp_path: Path) -> None:
    from mixnas.config import load_config, parse_config

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("epochs: 5\nlr: 0.003\n")
    block = {
        "top": 3,
        "by": "params:min",
        "constraint": {"latency_ms@host": {"max": 2.5}},
        "recipe": "recipe.yaml",  # relative to the config file, read into the config
        "data": {"name": "digits", "test_fraction": 0.2},
        "onnx": True,
        "torchscript": False,
        "int8": False,  # YAML's bare off
        "device": "cpu",
        "tolerance": 0.5,
    }
    config = load_config(_config(tmp_path, ship=block))
    assert config.ship is not None
    assert config.ship.recipe == {"epochs": 5, "lr": 0.003} and config.ship.int8 == "off"
    again = parse_config(json.loads(json.dumps(config.to_dict())))
    assert again.ship == config.ship and again.to_dict() == config.to_dict()


def test_then_train_overrides_the_blocks_top_and_is_kept_for_a_resume(tmp_path: Path) -> None:
    status, out, err = _run(["search", str(_config(tmp_path)), "-q", "--then-train", "1"])
    run = tmp_path / "runs" / "shiprun"
    assert status == 0, err
    assert _trained(run) == _expected(run, 1)
    assert json.loads((run / "config.json").read_text())["ship"]["top"] == 1
    assert "shipped 1 of 1 model(s)" in out


def test_then_train_without_a_block_uses_the_defaults(tmp_path: Path) -> None:
    from mixnas.commands.search import _then_train
    from mixnas.config import SHIP_RECIPE_DEFAULTS, ShipConfig, load_config
    from mixnas.shipping.pipeline import training_data, training_recipe

    config = _then_train(load_config(_config(tmp_path, ship=None)), 3)
    assert config.ship == ShipConfig(top=3)
    assert training_data(config) == {"name": "digits"}  # the search's train evaluator's data
    assert training_recipe(config.ship).epochs == SHIP_RECIPE_DEFAULTS["epochs"]
    # a search with no training evaluator has no data to offer: the block must name it
    plain = _config(
        tmp_path,
        name="plain",
        ship=None,
        evaluators=[{"name": "tests.run_helpers:SlowScore", "options": {"delay": 0.0}}],
    )
    status, _, err = _run(["search", str(plain), "--check", "--then-train", "1"])
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "ship.data" in err and "training evaluator" in err


@pytest.mark.parametrize(
    ("ship", "field", "fragment"),
    [
        ({"top": 0}, "ship.top", ">= 1"),
        ({"tpo": 2}, "ship.tpo", "allowed: top, by"),
        ({"recipe": {"epochs": 0}}, "ship.recipe.epochs", ">= 1"),
        ({"recipe": "no/such/recipe.yaml"}, "ship.recipe", "no such recipe file"),
        ({"by": "accuracy"}, "ship.by", "direction is unknown"),
        ({"by": "accuracy:max"}, "ship.by", "no configured evaluator reports"),
        (
            {"constraint": {"latency_ms@gpu": {"max": 1}}},
            "ship.constraint.latency_ms@gpu",
            "no configured evaluator reports",
        ),
        ({"data": "/no/such/images"}, "ship.data", "no such dataset"),
        ({"int8": "maybe"}, "ship.int8", "auto, on, off"),
        ({"device": "tpu"}, "ship.device", "auto, cpu, cuda"),
    ],
)
def test_a_bad_ship_block_is_one_line_exit_2_before_any_trial(
    tmp_path: Path, ship: dict[str, Any], field: str, fragment: str
) -> None:
    path = _config(tmp_path, ship={**SHIP, **ship})
    for argv in (["search", str(path), "--check"], ["search", str(path), "-q"]):
        status, _, err = _run(argv)
        assert status == 2
        assert len(err.strip().splitlines()) == 1, err
        assert str(path) in err and field in err and fragment in err, err
        assert not (tmp_path / "runs" / "shiprun").exists(), "nothing written, no trial run"


def test_an_interrupted_shipping_is_finished_by_a_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the second member ships: the first stays shipped; the resume leaves it as
    it is, continues the second's training from its checkpoint and ships it."""
    import mixnas.shipping as shipping

    real = shipping.ship
    calls: list[Path] = []

    def interrupted_second(folder: Path, **options: Any) -> dict[str, Any]:
        calls.append(Path(folder))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(folder, **options)

    monkeypatch.setattr(shipping, "ship", interrupted_second)
    status, out, _ = _run(["search", str(_config(tmp_path)), "-q"])
    run = tmp_path / "runs" / "shiprun"
    first, second = _expected(run, 2)
    assert status == 130 and f"mixnas search --resume {run}" in out
    first_ship = run / "trained" / f"trial-{first}" / "export" / "ship.json"
    assert first_ship.is_file()
    assert not (run / "trained" / f"trial-{second}" / "export" / "ship.json").exists()
    assert "Shipped models" in (run / "report.html").read_text()
    # the second member's training as a kill after its last checkpoint leaves it: no record
    second_dir = run / "trained" / f"trial-{second}"
    (second_dir / "train_record.json").unlink()
    before = first_ship.stat().st_mtime_ns, first_ship.read_bytes()

    monkeypatch.setattr(shipping, "ship", real)
    status, out, err = _run(["search", "--resume", str(run), "-q"])
    assert status == 0, err
    assert (first_ship.stat().st_mtime_ns, first_ship.read_bytes()) == before
    assert f"  trial {first} (already shipped):" in out
    record = json.loads((second_dir / "train_record.json").read_text())
    assert record["epochs_run"] == 1 and record["source"]["trial_id"] == second
    assert len((second_dir / "metrics.jsonl").read_text().splitlines()) == 1, "no epoch redone"
    assert (second_dir / "export" / "ship.json").is_file()
    assert _trained(run) == sorted([first, second])


def test_a_member_failing_training_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import evaluators.fulltrain as fulltrain

    real: Callable[..., Any] = fulltrain.train_spec
    run = tmp_path / "runs" / "shiprun"

    def fails_for_the_best(spec: Any, out_dir: Path, *args: Any, **kwargs: Any) -> Any:
        if Path(out_dir).name == f"trial-{_expected(run, 1)[0]}":
            raise RuntimeError("CUDA out of memory (planted)")
        return real(spec, out_dir, *args, **kwargs)

    monkeypatch.setattr(fulltrain, "train_spec", fails_for_the_best)
    status, out, err = _run(["search", str(_config(tmp_path)), "-q"])
    best, other = _expected(run, 2)
    assert status == 1
    assert f"  trial {best}: FAILED in training: CUDA out of memory (planted)" in out
    assert (run / "trained" / f"trial-{other}" / "export" / "ship.json").is_file()
    assert len(err.strip().splitlines()) == 1 and "1 of 2 model(s) failed" in err
    # fixed, a resume trains and ships the failed one and leaves the shipped one as it is
    monkeypatch.setattr(fulltrain, "train_spec", real)
    status, out, err = _run(["search", "--resume", str(run), "-q"])
    assert status == 0, err
    assert f"  trial {other} (already shipped):" in out
    assert (run / "trained" / f"trial-{best}" / "export" / "ship.json").is_file()


def test_a_ship_block_in_a_causal_lm_search_is_refused_in_one_line(tmp_path: Path) -> None:
    """mixnas ship checks classifiers: the docs' causal LM search cannot ship its members."""
    root = Path(__file__).resolve().parents[1]
    data = yaml.safe_load((root / "docs" / "causal_lm_search.yaml").read_text())
    path = tmp_path / "lm.yaml"
    path.write_text(yaml.safe_dump({**data, "runs_dir": str(tmp_path), "ship": {"top": 1}}))
    status, _, err = _run(["search", str(path), "--check"])
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "learns causal_lm" in err and "classifiers only" in err
