"""``mixnas train --nproc 2`` on the CPU: two torchrun ranks (gloo), each with half of every global
batch, train the weights one process trains with the whole batch (up to float32 rounding: the
sums run in another order), and rank 0 writes the folder.

A layer-norm spec: batch norm normalises each rank's rows by their own statistics (as DDP without
SyncBatchNorm does), so only then do one and two ranks compute the same function.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from evaluators.fulltrain import read_metrics
from mixnas.cli import main as cli
from search_space import SearchSpace
from tests.test_supernet_train import MINI

ROOT = Path(__file__).resolve().parents[1]
LN_ONLY = {**MINI, "name": "mini_ln", "norms": ["layernorm"]}
RECIPE = {
    "epochs": 2,
    "batch_size": 16,
    "lr": 0.01,
    "warmup_epochs": 0.5,
    "data": {"name": "synthetic", "options": {"size": 120}},
}


@pytest.mark.slow  # two ranks each import torch and join a gloo group: ~30 s on 2 busy cores
def test_two_ranks_train_the_weights_of_one_process(tmp_path: Path) -> None:
    spec = SearchSpace.from_dict(LN_ONLY).sample(0)
    spec_path, recipe_path = tmp_path / "spec.json", tmp_path / "recipe.yaml"
    spec_path.write_text(spec.to_json())
    recipe_path.write_text(yaml.safe_dump(RECIPE))
    argv = ["train", str(spec_path), "--recipe", str(recipe_path), "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    two = tmp_path / "two"
    done = subprocess.run(
        [sys.executable, "-m", "mixnas", *argv, "--out", str(two), "--nproc", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 2 epochs") == 1  # rank 0 alone reports
    record = json.loads((two / "train_record.json").read_text())
    assert record["ranks"] == 2 and record["test_top1"] is not None
    assert [r["epoch"] for r in read_metrics(two / "metrics.jsonl")] == [1, 2]

    one = tmp_path / "one"
    assert cli([*argv, "--out", str(one)]) == 0
    a = torch.load(two / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(one / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    rows_two, rows_one = read_metrics(two / "metrics.jsonl"), read_metrics(one / "metrics.jsonl")
    for r2, r1 in zip(rows_two, rows_one, strict=True):
        assert r2["train_loss"] == pytest.approx(r1["train_loss"], rel=1e-5)
        assert r2["val_top1"] == r1["val_top1"]


def test_more_gpu_ranks_than_gpus_is_one_line_before_any_rank_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(SearchSpace.from_dict(LN_ONLY).sample(0).to_json())
    argv = ["train", str(spec_path), "--device", "cuda", "--nproc", "2", "--quiet"]
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--device" in err
    assert cli(["train", str(spec_path), "--nproc", "0", "--quiet"]) == 2
    assert "--nproc" in capsys.readouterr().err
