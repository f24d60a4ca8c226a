"""The ``ptq`` evaluator (short float training, calibration, quantized accuracy) and bias
correction."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import evaluators
from evaluators import EvalContext
from evaluators.ptq import correct_biases
from evaluators.training import TrainingError
from search_space.nn.quant.policy import calibrate, quantize_module
from search_space.quant import with_policy
from search_space.spec import Quant
from tests.test_quant import tiny_spec

CONTEXT = EvalContext(seed=0, budget={"steps": 40}, options={"batch_size": 32})


def _run(weight_bits: int, act_bits: int, **options: object) -> dict[str, float]:
    spec = with_policy(tiny_spec(), Quant(weight_bits, act_bits), Quant(weight_bits, act_bits))
    result = evaluators.create("ptq", calib_batches=2, **options).evaluate(spec, CONTEXT)
    assert result.status == "ok", result.error
    return dict(result.metrics)


def test_ptq_reports_quantized_and_float_accuracy() -> None:
    eight = _run(8, 8)
    assert eight["top1_drop"] == pytest.approx(eight["top1_fp32"] - eight["top1"])
    assert eight["top1_fp32"] > 40.0  # learned something (4 classes)
    assert abs(eight["top1_drop"]) <= 5.0
    two = _run(2, 2, calibration="minmax")
    assert two["top1_fp32"] == eight["top1_fp32"]  # same float training
    assert two["loss"] > eight["loss"]


def test_ptq_options_are_checked() -> None:
    with pytest.raises(TrainingError, match=r"ptq\.calibration: must be one of"):
        evaluators.create("ptq", calibration="kl")
    with pytest.raises(TrainingError, match=r"ptq\.calib_batches: must be an integer >= 1"):
        evaluators.create("ptq", calib_batches=0)
    with pytest.raises(TrainingError, match="unknown training option 'bits'"):
        evaluators.create("ptq", bits=8)


def test_bias_correction_removes_the_mean_output_shift() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8), nn.Conv1d(8, 8, 3, padding=1, groups=2))
    fp = torch.nn.Sequential(nn.Linear(16, 8), nn.Conv1d(8, 8, 3, padding=1, groups=2))
    fp.load_state_dict(model.state_dict())

    class Net(nn.Module):
        def __init__(self, seq: nn.Sequential) -> None:
            super().__init__()
            self.seq = seq

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.seq[1](self.seq[0](x).transpose(1, 2))

    quantized, reference = Net(quantize_module(model, Quant(3, 32))), Net(fp)
    batches = [torch.randn(4, 10, 16) + 1.5 for _ in range(3)]
    calibrate(quantized, batches, "minmax")
    with torch.no_grad():
        x = torch.cat(batches)
        before = (quantized(x) - reference(x)).mean(dim=(0, 2)).abs()
        assert correct_biases(quantized, batches) == 2
        after = (quantized(x) - reference(x)).mean(dim=(0, 2)).abs()
    assert after.mean() < 0.5 * before.mean()
