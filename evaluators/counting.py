"""MACs counted on the built model: fvcore, plus handlers for what fvcore misses.

fvcore traces the model and counts MACs per aten op (it calls them FLOPs; they are MACs). It has no
handler for `scaled_dot_product_attention` (attention matmuls), FFTs, RMS norm or mixnas's own scan
op, and skips them silently. mixnas adds those handlers, so the counted total covers every mixer
family and can be cross-checked against the analytic formulas in `search_space.ops`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from search_space.ops.base import fft_macs

Handle = Callable[[list[Any], list[Any]], float]


def _shape(value: Any) -> list[int]:
    return list(value.type().sizes())


def _sdpa(inputs: list[Any], outputs: list[Any]) -> float:
    q, k, v = (_shape(t) for t in inputs[:3])
    batch = math.prod(q[:-2])
    return float(batch * q[-2] * k[-2] * (q[-1] + v[-1]))


def _fft_handle(*, real: bool, from_output: bool, ndim: int | None) -> Handle:
    """Counts an FFT op; real-to-complex ops take the size from the input, inverses from output."""

    def handle(inputs: list[Any], outputs: list[Any]) -> float:
        shape = _shape(outputs[0] if from_output else inputs[0])
        dims = _constant_ints(inputs[2]) if len(inputs) > 2 else None
        if not dims:
            dims = list(range(-(ndim or len(shape)), 0))
        points = math.prod(shape[d] for d in dims)
        return float(fft_macs(points, math.prod(shape) // points, real=real))

    return handle


def _constant_ints(value: Any) -> list[int] | None:
    """An int or int-list argument of a traced op; lists arrive as a ListConstruct node whose
    elements are constants, which ``toIValue`` alone does not resolve."""
    constant = value.toIValue()
    if isinstance(constant, int):
        return [constant]
    if constant is not None:
        return list(constant)
    node = value.node()
    if node.kind() == "prim::ListConstruct":
        items = [v.toIValue() for v in node.inputs()]
        if all(isinstance(i, int) for i in items):
            return items
    return None


def _scan(inputs: list[Any], outputs: list[Any]) -> float:
    # h_t = a_t * h_{t-1} + b_t: one multiply-accumulate per element
    return float(math.prod(_shape(inputs[0])))


def _adaptive_avg_pool(inputs: list[Any], outputs: list[Any]) -> float:
    # fvcore's rate for aten::adaptive_avg_pool2d (one per input element), for the 1-D and 3-D
    # variants it has no handle for
    return float(math.prod(_shape(inputs[0])))


# MACs per sampled value of aten::grid_sampler by interpolation mode (0 bilinear, 1 nearest,
# 2 bicubic): the weights of the 2x2, 1 or 4x4 neighbours. fvcore assumes bilinear for every mode.
_GRID_SAMPLE_RATE = {0: 4, 1: 0, 2: 16}


def _grid_sampler(inputs: list[Any], outputs: list[Any]) -> float:
    mode = inputs[2].toIValue()
    return float(_GRID_SAMPLE_RATE.get(mode, 4) * math.prod(_shape(outputs[0])))


def _rms_norm(inputs: list[Any], outputs: list[Any]) -> float:
    has_affine = len(inputs) > 2 and inputs[2].type().kind() != "NoneType"
    return float(math.prod(_shape(inputs[0])) * (4 if has_affine else 3))


EXTRA_HANDLES: dict[str, Handle] = {
    "aten::scaled_dot_product_attention": _sdpa,
    "aten::rms_norm": _rms_norm,
    "aten::adaptive_avg_pool1d": _adaptive_avg_pool,
    "aten::adaptive_avg_pool3d": _adaptive_avg_pool,
    "aten::grid_sampler": _grid_sampler,
    "mixnas::linear_scan": _scan,
    "aten::fft_rfft": _fft_handle(real=True, from_output=False, ndim=1),
    "aten::fft_rfft2": _fft_handle(real=True, from_output=False, ndim=2),
    "aten::fft_rfftn": _fft_handle(real=True, from_output=False, ndim=None),
    "aten::fft_irfft": _fft_handle(real=True, from_output=True, ndim=1),
    "aten::fft_irfft2": _fft_handle(real=True, from_output=True, ndim=2),
    "aten::fft_irfftn": _fft_handle(real=True, from_output=True, ndim=None),
    "aten::fft_fft": _fft_handle(real=False, from_output=False, ndim=1),
    "aten::fft_fft2": _fft_handle(real=False, from_output=False, ndim=2),
    "aten::fft_fftn": _fft_handle(real=False, from_output=False, ndim=None),
    "aten::fft_ifft": _fft_handle(real=False, from_output=False, ndim=1),
    "aten::fft_ifft2": _fft_handle(real=False, from_output=False, ndim=2),
    "aten::fft_ifftn": _fft_handle(real=False, from_output=False, ndim=None),
}


def fvcore_analysis(model: nn.Module, inputs: torch.Tensor | tuple[Any, ...]) -> Any:
    """An fvcore `FlopCountAnalysis` with mixnas's extra handlers and quiet warnings."""
    from fvcore.nn import FlopCountAnalysis

    args = inputs if isinstance(inputs, tuple) else (inputs,)
    analysis = FlopCountAnalysis(model, args).set_op_handle(**EXTRA_HANDLES)
    return analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)


def count_macs(model: nn.Module, inputs: torch.Tensor | tuple[Any, ...]) -> int:
    """MACs of one forward pass on ``inputs`` (in eval mode; divide by batch for per-sample)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return int(fvcore_analysis(model, inputs).total())
    finally:
        model.train(was_training)
