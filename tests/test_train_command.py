"""``mixnas train``: a spec trained on a generated PNG image folder writes its folder (checkpoints
loadable with ``weights_only=True``, a metrics log, a test accuracy); a run killed with SIGKILL
mid-epoch resumes to the very weights of an uninterrupted run; a run's trial trains with
``--pick``; bad input is one line and exit status 2.

The spec comes from the supernet tests' tiny space (8x8 gray images, 4 classes), so a training
epoch takes milliseconds; the kill test uses a larger folder so that an epoch lasts long enough
to be killed in.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from evaluators.fulltrain import load_trained, read_metrics
from evaluators.fulltrain.checkpoint import METRIC_COLUMNS
from mixnas.cli import main as cli
from search_space import SearchSpace
from search_space.spec import ArchSpec
from tests.run_helpers import small_config
from tests.test_supernet_train import MINI

ROOT = Path(__file__).resolve().parents[1]
RECIPE: dict[str, Any] = {"epochs": 3, "batch_size": 16, "lr": 0.01, "warmup_epochs": 1}
# the kill test's recipe: every random draw a resume must replay (drop path, mixup, CutMix, EMA)
KILL_RECIPE: dict[str, Any] = {
    **RECIPE,
    "batch_size": 8,
    "drop_path_rate": 0.2,
    "mixup_alpha": 0.4,
    "cutmix_alpha": 1.0,
    "mix_prob": 0.8,
    "ema_decay": 0.9,
}


def tiny_spec() -> ArchSpec:
    """A two-block spec of the tiny space (a few hundred parameters)."""
    return SearchSpace.from_dict(MINI).sample(0)


def image_folder(root: Path, per_class: int = 24, seed: int = 0) -> Path:
    """``root/<class>/*.png``: 8x8 gray images, class k bright in quadrant k, plus noise."""
    rng = np.random.default_rng(seed)
    for k in range(4):
        folder = root / f"class_{k}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            img = rng.uniform(0, 90, size=(8, 8))
            top, left = divmod(k, 2)
            img[top * 4 : top * 4 + 4, left * 4 : left * 4 + 4] += 150
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def write_inputs(tmp: Path, recipe: dict[str, Any], per_class: int = 24) -> tuple[Path, Path, Path]:
    spec_path = tmp / "spec.json"
    spec_path.write_text(tiny_spec().to_json())
    recipe_path = tmp / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe))
    return spec_path, recipe_path, image_folder(tmp / "images", per_class)


def _state(path: Path) -> dict[str, Any]:
    state = torch.load(path, weights_only=True)
    assert isinstance(state, dict)
    return state


def _assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_train_writes_checkpoints_metrics_and_a_test_accuracy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_path, recipe_path, images = write_inputs(tmp_path, RECIPE)
    out = tmp_path / "out"
    argv = ["train", str(spec_path), "--data", str(images), "--recipe", str(recipe_path)]
    assert cli([*argv, "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "trained 3 epochs" in printed and "test top-1" in printed

    spec = tiny_spec()
    assert (out / "spec.json").read_text() == spec.to_json()
    assert yaml.safe_load((out / "recipe.yaml").read_text())["data"]["name"] == str(images)
    last, best = _state(out / "checkpoints" / "last.pt"), _state(out / "checkpoints" / "best.pt")
    assert last["epoch"] == 3
    assert isinstance(last["rng"]["torch"], torch.Tensor)
    assert best.keys() == last["model"].keys()

    rows = read_metrics(out / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(set(r) == set(METRIC_COLUMNS) for r in rows)
    assert rows[0]["lr"] == pytest.approx(RECIPE["lr"])  # warm-up ends with epoch 1
    assert rows[-1]["lr"] < rows[1]["lr"] < rows[0]["lr"]  # then the cosine decay
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0] == ",".join(METRIC_COLUMNS) and len(csv_lines) == 4

    record = json.loads((out / "train_record.json").read_text())
    sizes = record["data"]["sizes"]
    assert sizes["test"] > 0 and sum(sizes.values()) == 96  # 4 classes x 24 PNG files
    assert record["data"]["test_from"] == "train" and record["spec_id"] == spec.id
    assert 0.0 <= record["test_top1"] <= 100.0 and record["test_loss"] > 0
    best_row = max(rows, key=lambda r: r["val_top1"])
    assert record["best_val_top1"] == best_row["val_top1"]
    assert record["best_epoch"] == best_row["epoch"]
    assert record["epochs_run"] == 3 and not record["stopped_early"]
    assert record["device"] == "cpu" and record["params"] > 0
    assert last["step"] == 3 * (sizes["train"] // RECIPE["batch_size"])  # whole batches

    loaded_spec, model = load_trained(out)
    assert loaded_spec == spec and not model.training
    _assert_same_tensors(model.state_dict(), best)

    # the same command again leaves the finished folder as it is
    mtime = (out / "checkpoints" / "last.pt").stat().st_mtime_ns
    assert cli([*argv, "--out", str(out), "--quiet"]) == 0
    assert "already trained" in capsys.readouterr().out
    assert (out / "checkpoints" / "last.pt").stat().st_mtime_ns == mtime


def test_sigkill_mid_epoch_then_resume_gives_the_weights_of_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    spec_path, recipe_path, images = write_inputs(tmp_path, KILL_RECIPE, per_class=150)
    argv = ["train", str(spec_path), "--data", str(images), "--recipe", str(recipe_path)]
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "mixnas", *argv, "--out", str(killed), "--quiet"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    last = killed / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert _state(last)["epoch"] < KILL_RECIPE["epochs"]  # killed before the run's end
    assert not (killed / "train_record.json").exists()

    resumed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "trained 3 epochs" in resumed.stdout

    whole = tmp_path / "whole"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the subprocesses' thread count: the same float sums
    try:
        assert cli([*argv, "--out", str(whole), "--quiet"]) == 0
    finally:
        torch.set_num_threads(threads)
    a, b = _state(killed / "checkpoints" / "last.pt"), _state(whole / "checkpoints" / "last.pt")
    _assert_same_tensors(a["model"], b["model"])
    _assert_same_tensors(a["ema"], b["ema"])
    _assert_same_tensors(
        _state(killed / "checkpoints/best.pt"), _state(whole / "checkpoints/best.pt")
    )
    rows_a, rows_b = read_metrics(killed / "metrics.jsonl"), read_metrics(whole / "metrics.jsonl")
    assert [r["epoch"] for r in rows_a] == [1, 2, 3]  # the cut-off epoch is not logged twice
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in rows_a]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in rows_b]


def test_a_trial_of_a_run_trains_into_the_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = small_config(
        "tiny",
        str(tmp_path / "runs"),
        space=MINI,
        evaluators=[{"name": "tests.run_helpers:CheapScore", "options": {"delay": 0.0}}],
        strategy={"name": "random"},
        budget={"trials": 4},
        export=None,
    )
    config_path = tmp_path / "search.yaml"
    config_path.write_text(yaml.safe_dump(config))
    assert cli(["search", str(config_path), "--quiet"]) == 0
    run = tmp_path / "runs" / "tiny"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "epochs": 1, "data": {"options": {"size": 96}}}))
    capsys.readouterr()
    assert cli(["train", str(run), "--pick", "2", "--recipe", str(recipe), "--quiet"]) == 0
    out = run / "trained" / "trial-2"
    record = json.loads((out / "train_record.json").read_text())
    assert record["source"]["trial_id"] == 2 and record["source"]["run"] == str(run)
    from mixnas.report.data import RunData

    trial = RunData.load(run).by_id(2)
    assert trial is not None
    assert record["spec_id"] == ArchSpec.from_dict(dict(trial.spec)).id
    assert str(out) in capsys.readouterr().out

    # a record `mixnas export` wrote trains as a spec file, into runs/train-<spec id>
    assert cli(["export", str(run), "--pick", "2", "--out", str(tmp_path / "export")]) == 0
    (exported,) = (tmp_path / "export").glob("trial-2-*.json")
    monkeypatch.chdir(tmp_path)
    assert cli(["train", str(exported), "--recipe", str(recipe), "--quiet"]) == 0
    default_out = tmp_path / "runs" / f"train-{record['spec_id']}"
    assert (
        json.loads((default_out / "train_record.json").read_text())["spec_id"]
        == (record["spec_id"])
    )
    capsys.readouterr()

    # a pick of several trials, or no pick at all, is one line
    assert cli(["train", str(run), "--pick", "0,1", "--quiet"]) == 2
    assert "train one at a time" in capsys.readouterr().err
    assert cli(["train", str(run), "--quiet"]) == 2
    assert "--pick" in capsys.readouterr().err


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_recipe_data_and_device_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_path, _, images = write_inputs(tmp_path, RECIPE)
    base = ["train", str(spec_path), "--out", str(tmp_path / "out"), "--quiet"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"epoch": 3}))
    err = _one_line_error(capsys, [*base, "--recipe", str(bad)])
    assert str(bad) in err and "epoch: unknown field" in err and "epochs" in err
    bad.write_text(yaml.safe_dump({"ema_decay": 1.5}))
    err = _one_line_error(capsys, [*base, "--recipe", str(bad)])
    assert "ema_decay" in err and "1.5" in err and "[0, 1)" in err
    bad.write_text("amp: fp8\n")
    err = _one_line_error(capsys, [*base, "--recipe", str(bad)])
    assert "amp" in err and "'fp8'" in err and "bf16" in err
    bad.write_text(yaml.safe_dump({"data": {"name": "digits", "seed": 1}}))
    err = _one_line_error(capsys, [*base, "--recipe", str(bad)])
    assert "data.seed: unknown field" in err and "data_seed" in err

    missing = tmp_path / "no_such_images"
    err = _one_line_error(capsys, [*base, "--data", str(missing)])
    assert "--data" in err and str(missing) in err and ".npz" in err
    assert not (tmp_path / "out").exists()  # refused before anything is written

    err = _one_line_error(capsys, ["train", str(tmp_path / "none.json"), "--quiet"])
    assert "none.json" in err

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    err = _one_line_error(capsys, [*base, "--data", str(images), "--device", "cuda"])
    assert "--device" in err and "no CUDA device" in err
    err = _one_line_error(capsys, [*base, "--data", str(images), "--device", "gpu"])
    assert "'gpu'" in err and "cuda:N" in err


def test_device_auto_runs_on_the_cpu_here(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: auto means cuda")
    spec_path, recipe_path, images = write_inputs(tmp_path, {**RECIPE, "epochs": 1})
    out = tmp_path / "out"
    argv = ["train", str(spec_path), "--data", str(images), "--recipe", str(recipe_path)]
    assert cli([*argv, "--out", str(out), "--device", "auto", "--quiet"]) == 0
    assert json.loads((out / "train_record.json").read_text())["device"] == "cpu"


def test_progress_is_a_line_per_epoch_off_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_path, recipe_path, images = write_inputs(tmp_path, RECIPE)
    argv = ["train", str(spec_path), "--data", str(images), "--recipe", str(recipe_path)]
    assert cli([*argv, "--out", str(tmp_path / "out")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "epochs (" in line]
    assert [line.split(": ")[1].split(" ")[0] for line in lines] == ["1/3", "2/3", "3/3"]
