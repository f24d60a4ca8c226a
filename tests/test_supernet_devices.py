"""Supernet training and scoring on a device and in mixed precision: ``auto`` is the CPU here and
changes nothing, a GPU that is not there is a one-line error naming ``supernet.device``, bf16 and
fp16 autocast run on the CPU too (fp16 with its loss scaler, resumable), and the cached subnets
follow the weights to another device."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import evaluators
from evaluators import EvalContext
from evaluators import devices as devices_module
from evaluators.supernet.train import (
    RecipeConfig,
    SupernetError,
    evaluate_subnet,
    load_checkpoint,
    train_supernet,
)
from mixnas.cli import main as cli
from tests.test_supernet_train import DATA, MINI, _setup, _weights

CFG = RecipeConfig(recipe="sandwich", steps=4, batch_size=16, num_random=1, checkpoint_every=2)


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices_module, "gpu_count", lambda: 0)


def test_auto_is_the_cpu_here_and_changes_nothing(no_gpu: None) -> None:
    runs = {}
    for device in ("auto", "cpu"):
        supernet, data = _setup()
        out = train_supernet(supernet, data, replace(CFG, device=device))
        runs[device] = (out, _weights(supernet))
    assert runs["auto"][0]["device"] == "cpu" and runs["auto"][0]["ranks"] == 1
    assert runs["auto"][0]["history"] == runs["cpu"][0]["history"]
    assert all(torch.equal(v, runs["cpu"][1][k]) for k, v in runs["auto"][1].items())


def test_cuda_without_a_gpu_is_an_error_naming_the_field(no_gpu: None) -> None:
    supernet, data = _setup()
    with pytest.raises(SupernetError, match=r"^supernet\.device: cuda asked but there is no CUDA"):
        train_supernet(supernet, data, replace(CFG, device="cuda"))


def test_cli_cuda_without_a_gpu_exits_2_with_one_line(
    tmp_path: Path, no_gpu: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sn.yaml"
    config = {"space": MINI, "data": "synthetic", "data_options": DATA, "runs_dir": str(tmp_path)}
    path.write_text(yaml.safe_dump({**config, "supernet": {"steps": 2, "device": "cuda"}}))
    assert cli(["supernet", "train", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "supernet.device" in err and "no CUDA device" in err
    path.write_text(yaml.safe_dump({**config, "supernet": {"steps": 2, "device": "gpu"}}))
    assert cli(["supernet", "train", str(path), "--quiet"]) == 2
    assert "supernet.device: must be auto, cpu, cuda or cuda:N" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("data", "field"),
    [({"device": "tpu"}, "device"), ({"amp": "fp8"}, "amp"), ({"device": 0}, "device")],
)
def test_bad_device_options_name_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(SupernetError, match=f"supernet.{field}"):
        RecipeConfig.from_dict(data)


def test_bf16_autocast_trains_on_the_cpu_with_float32_weights() -> None:
    supernet, data = _setup()
    plain = train_supernet(supernet, data, CFG)
    half, _ = _setup()
    out = train_supernet(half, data, replace(CFG, amp="bf16"))
    assert all(np.isfinite(out["history"])) and out["history"] != plain["history"]
    assert all(p.dtype == torch.float32 for p in half.parameters())
    # within bf16's 3 significant digits of the float32 run on the first step
    assert out["history"][0] == pytest.approx(plain["history"][0], rel=2e-2)
    spec = half.space.sample(1)
    scores = evaluate_subnet(half, spec, data, amp="bf16", recalibration_batches=2)
    assert 0 <= scores["top1"] <= 100 and np.isfinite(scores["loss"])


def test_fp16_scales_the_loss_and_resumes_exactly(tmp_path: Path) -> None:
    cfg = replace(CFG, amp="fp16")
    whole, data = _setup()
    reference = train_supernet(whole, data, cfg)
    assert all(np.isfinite(reference["history"]))
    ckpt = tmp_path / "fp16.pt"
    first, _ = _setup()
    train_supernet(first, data, cfg, checkpoint=ckpt, stop_after=3)
    state = load_checkpoint(ckpt)
    assert state["step"] == 2 and state["scaler"]["scale"] > 0  # the loss scaler is kept
    resumed, _ = _setup()
    out = train_supernet(resumed, data, cfg, checkpoint=ckpt)
    assert out["resumed"] and out["history"] == reference["history"]
    assert all(torch.equal(v, _weights(whole)[k]) for k, v in _weights(resumed).items())
    # amp decides the weights: a resume may not change it; the device may change
    with pytest.raises(SupernetError, match=r"amp: 'fp16' -> 'off'"):
        train_supernet(resumed, data, replace(cfg, amp="off", steps=6), checkpoint=ckpt)
    again, _ = _setup()
    assert train_supernet(again, data, replace(cfg, device="cpu"), checkpoint=ckpt)["resumed"]


def test_cached_subnets_follow_the_weights_to_another_device() -> None:
    """The subnets' templates are not submodules; `Supernet.to` moves their buffers too (the
    meta device stands in for a GPU: it moves without computing)."""
    supernet, _ = _setup()
    spec = next(s for s in (supernet.space.sample(k) for k in range(50)) if "batchnorm" in str(s))
    supernet.configure(spec)
    supernet.to("meta")
    buffers = list(supernet.template(spec).buffers())
    assert buffers and all(b.device.type == "meta" for b in buffers)
    later = supernet.space.sample(99)
    supernet.configure(later)  # built after the move: on the weights' device from the start
    assert all(b.device.type == "meta" for b in supernet.template(later).buffers())


def test_the_evaluator_takes_an_amp_option(tmp_path: Path) -> None:
    with pytest.raises(SupernetError, match="amp must be one of"):
        evaluators.create("supernet", amp="half")
    evaluator = evaluators.create("supernet", amp="bf16", recalibration_batches=1)
    spec = _setup()[0].space.sample(2)
    result = evaluator.evaluate(spec, EvalContext(data="synthetic"))
    assert result.ok and 0 <= result.metrics["top1"] <= 100


def test_gpu_check_supernet_section_dry_runs_on_the_cpu(tmp_path: Path) -> None:
    """``GPU_CHECK_DEVICES=cpu`` runs the script's code paths without a GPU; here the supernet
    section alone, with a short budget: a row per precision and the bf16/fp32 ratio."""
    import os
    import subprocess

    out = tmp_path / "gpu_check.md"
    env = {
        **os.environ,
        "GPU_CHECK_DEVICES": "cpu",
        "GPU_CHECK_SECTIONS": "supernet",
        "GPU_CHECK_SUPERNET_SECONDS": "0.2",
        "GPU_CHECK_SUPERNET_BATCH": "16",
        "OMP_NUM_THREADS": "1",
    }
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        ["bash", str(root / "bench" / "gpu_check.sh"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "### Supernet training" in text and "bf16/fp32 on cpu" in text
    rows = [line for line in text.splitlines() if line.startswith("| cpu |")]
    assert [row.split("|")[3].strip() for row in rows] == ["fp32", "bf16"]
