"""The ``ptq`` evaluator: short float training, then post-training quantization to the spec's
policy, reporting the accuracy of the quantized model.

Who calls what: a run driver calls ``evaluators.create("ptq", **options).evaluate(spec, ctx)``
like ``train`` (same budget, data and options, see `evaluators.training.ShortTraining`). The model
is built in float (``build_model(spec, quantize=False)``), trained, validated (``top1_fp32``),
then quantized as the spec's policy says (`search_space.nn.quant.policy.apply_policy`),
calibrated on a few training batches and validated again (``top1``). A search that names
``top1`` of this evaluator therefore optimises "short training + PTQ" accuracy, the objective of
joint architecture x bit-width searches evaluated without quantization-aware training
(SimQ-NAS: Sarah et al., 2023, searches the policy of a trained super-network the same way).

Calibration (Nagel et al., "A White Paper on Neural Network Quantization", 2021): ``minmax``,
``percentile`` or ``mse`` ranges over ``calib_batches`` batches of ``calib_batch_size`` training
samples. The quick reconstruction option ``bias_correction`` removes the mean output shift that
weight quantization causes in each Linear/Conv layer with a bias, ``b -= (W_q - W) E[x]``, with
E[x] measured on the calibration batches (Nagel et al., "Data-Free Quantization Through Weight
Equalization and Bias Correction", ICCV 2019; empirical variant).

Metrics: ``top1`` and ``loss`` (quantized model), ``top1_fp32``, ``loss_fp32``, ``top1_drop``
(``top1_fp32 - top1``, points), ``train_loss``, ``train_seconds``, ``steps``,
``calib_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from evaluators.base import MAX_BATCH, register
from evaluators.data import Dataset
from evaluators.training import (
    _SETTINGS,
    SETTING_TYPES,
    ShortTraining,
    TrainingError,
    _validate,
)
from search_space import build_model
from search_space.nn.quant.layers import QConv1d, QConv2d, QConv3d, QLinear
from search_space.nn.quant.policy import apply_policy, calibrate
from search_space.option_types import Opt
from search_space.quant import CALIBRATIONS, SCORE_QUANTIZERS
from search_space.spec import ArchSpec

PTQ_SETTINGS: dict[str, Any] = {
    **_SETTINGS,
    "calibration": "mse",
    "calib_batches": 4,
    "calib_batch_size": 64,
    "percentile": 99.99,
    "score_quantizer": "log2",
    "bias_correction": False,
}


def _check(cfg: Mapping[str, Any]) -> None:
    if cfg["calibration"] not in CALIBRATIONS:
        raise TrainingError(
            f"ptq.calibration: must be one of {list(CALIBRATIONS)} (got {cfg['calibration']!r})"
        )
    if cfg["score_quantizer"] not in SCORE_QUANTIZERS:
        raise TrainingError(
            f"ptq.score_quantizer: must be one of {list(SCORE_QUANTIZERS)} "
            f"(got {cfg['score_quantizer']!r})"
        )
    for key in ("calib_batches", "calib_batch_size"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TrainingError(f"ptq.{key}: must be an integer >= 1 (got {value!r})")
    pct = cfg["percentile"]
    if isinstance(pct, bool) or not isinstance(pct, int | float) or not 50.0 < pct <= 100.0:
        raise TrainingError(f"ptq.percentile: must be a number in (50, 100] (got {pct!r})")
    if not isinstance(cfg["bias_correction"], bool):
        raise TrainingError(
            f"ptq.bias_correction: must be true or false (got {cfg['bias_correction']!r})"
        )


def calibration_batches(data: Dataset, cfg: Mapping[str, Any], device: Any) -> list[torch.Tensor]:
    """The first ``calib_batches`` x ``calib_batch_size`` training samples, in batches."""
    size = int(cfg["calib_batch_size"])
    n = min(len(data.y_train), size * int(cfg["calib_batches"]))
    return [data.x_train[i : i + size].to(device) for i in range(0, n, size)]


@torch.no_grad()
def correct_biases(model: nn.Module, batches: list[torch.Tensor]) -> int:
    """Bias correction: each quantized layer with a bias absorbs the mean shift of its output
    that weight quantization causes, ``E[(W_q - W) x]`` over the layer's (quantized) inputs on
    ``batches`` (padding and groups included, as the layer computes it). Returns the number of
    corrected layers."""
    layers = [
        m
        for m in model.modules()
        if isinstance(m, QLinear | QConv1d | QConv2d | QConv3d)
        and m.bias is not None
        and "weight_quant" in m._modules
    ]
    sums: dict[int, torch.Tensor] = {}
    counts: dict[int, int] = {}

    def hook(module: Any, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0]
        quant_in = module._modules.get("input_quant")
        x = quant_in(x) if quant_in is not None else x
        delta = module.weight_quant(module.weight) - module.weight
        if isinstance(module, QLinear):
            out = F.linear(x, delta).reshape(-1, delta.shape[0])
        else:
            out = module._conv_forward(x, delta, None).transpose(0, 1).flatten(1).T
        sums[id(module)] = sums.get(id(module), 0) + out.sum(dim=0)
        counts[id(module)] = counts.get(id(module), 0) + out.shape[0]

    handles = [m.register_forward_pre_hook(hook) for m in layers]
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    for m in layers:
        if id(m) in sums and m.bias is not None:
            m.bias -= sums[id(m)] / counts[id(m)]
    return sum(1 for m in layers if id(m) in sums)


@register
class PostTrainingQuantization(ShortTraining):
    """Short float training, then PTQ to the spec's policy (see the module docstring).

    Options: those of ``train``, and
        calibration: ``minmax``, ``percentile`` or ``mse`` (default ``mse``).
        calib_batches, calib_batch_size: calibration data, from the training split (4 x 64).
        percentile: upper percentile of the ``percentile`` method (99.99).
        score_quantizer: ``log2`` (default) or ``uniform`` for post-softmax probabilities.
        bias_correction: the quick reconstruction step (False).
    """

    name = "ptq"
    metrics: tuple[str, ...] = (
        "top1",
        "loss",
        "top1_fp32",
        "loss_fp32",
        "top1_drop",
        "train_loss",
        "train_seconds",
        "steps",
        "calib_seconds",
    )
    defaults: ClassVar[dict[str, Any]] = PTQ_SETTINGS
    option_types: ClassVar[Mapping[str, Opt] | None] = {
        **SETTING_TYPES,
        "calibration": Opt("str", choices=tuple(CALIBRATIONS)),
        "calib_batches": Opt("int", min=1, max=100_000),
        "calib_batch_size": Opt("int", min=1, max=MAX_BATCH),
        "percentile": Opt("float", min=50.0, max=100.0),
        "score_quantizer": Opt("str", choices=tuple(SCORE_QUANTIZERS)),
        "bias_correction": Opt("bool"),
    }

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        _check(self.settings)

    def build(self, spec: ArchSpec, seed: int, drop_path_rate: float) -> nn.Module:
        return build_model(spec, seed=seed, drop_path_rate=drop_path_rate, quantize=False)

    def after_training(
        self,
        spec: ArchSpec,
        model: nn.Module,
        data: Dataset,
        cfg: Mapping[str, Any],
        final: dict[str, float],
    ) -> dict[str, float]:
        _check(cfg)
        start = time.perf_counter()
        device = next(model.parameters()).device
        batches = calibration_batches(data, cfg, device)
        apply_policy(model, spec, score_quantizer=str(cfg["score_quantizer"]))
        calibrate(model, batches, str(cfg["calibration"]), percentile=float(cfg["percentile"]))
        if cfg["bias_correction"]:
            correct_biases(model, batches)
        seconds = time.perf_counter() - start
        quantized = _validate(model, data.x_val.to(device), data.y_val.to(device), cfg)
        return {
            **quantized,
            "top1_fp32": final["top1"],
            "loss_fp32": final["loss"],
            "top1_drop": final["top1"] - quantized["top1"],
            "calib_seconds": seconds,
        }


__all__ = ["PTQ_SETTINGS", "PostTrainingQuantization", "calibration_batches", "correct_biases"]
