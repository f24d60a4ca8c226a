"""`mixnas search` on the dense tasks (issue 24): the docs' segmentation and super-resolution
configs, shrunk to two trials of two steps, run end to end with mIoU and PSNR as objectives."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"n_train": 32, "n_val": 16, "n_test": 16}


@pytest.mark.parametrize(
    ("config_file", "metric", "task"),
    [("seg_search.yaml", "miou", "segmentation"), ("sr_search.yaml", "psnr", "super_resolution")],
)
def test_search_on_a_dense_task(config_file: str, metric: str, task: str, tmp_path: Path) -> None:
    from mixnas.cli import main
    from mixnas.records import load_trials

    config = yaml.safe_load((ROOT / "docs" / config_file).read_text())
    assert {"metric": metric, "direction": "maximize"} in config["objectives"]
    train = config["evaluators"][0]
    assert train["options"]["task"] == task
    train["budget"] = {"steps": 2}
    train["data"] = {**train["data"], **SMALL}
    train["options"]["batch_size"] = 8
    config["budget"] = {"trials": 2, "seconds": 300}
    path = tmp_path / config_file
    path.write_text(yaml.safe_dump(config))
    runs = tmp_path / "runs"
    assert main(["search", str(path), "--runs-dir", str(runs), "-q"]) == 0
    frame = load_trials(runs / config["name"], architecture=False)
    assert len(frame) == 2 and set(frame["status"]) == {"ok"}
    assert all(math.isfinite(v) for v in frame[metric])
    report = (runs / config["name"] / "report.html").read_text()
    assert metric in report


def test_a_task_that_does_not_fit_the_heads_is_refused_before_any_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mixnas.cli import main

    config = yaml.safe_load((ROOT / "docs" / "seg_search.yaml").read_text())
    config["evaluators"][0]["options"]["task"] = "super_resolution"
    config["objectives"] = [{"metric": "psnr", "direction": "maximize"}]
    path = tmp_path / "wrong.yaml"
    path.write_text(yaml.safe_dump(config))
    runs = tmp_path / "runs"
    assert main(["search", str(path), "--runs-dir", str(runs), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "super_resolution" in err and "seg_head" in err, err
    assert not (runs / config["name"]).exists()
