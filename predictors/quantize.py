"""Executable precision for timing: fp32, half precision, or int8 where a policy asks for it.

Torch's CPU int8 path that needs no calibration data is dynamic quantization
(``torch.ao.quantization.quantize_dynamic``; Jacob et al., CVPR 2018 for the integer scheme): the
weights of every ``nn.Linear`` are stored as int8 and activations are quantized on the fly. There
are no CPU kernels below 8 bits, so a policy with <= 8-bit weights runs on the int8 kernels (the
closest thing that executes); convolutions, norms and FFTs stay in float. The timing therefore
measures what torch can deploy, and the spec's bit-widths stay exact in the analytic costs.
"""

from __future__ import annotations

import warnings
from typing import Any

from search_space.spec import Quant

INT8_MAX_BITS = 8


def wants_int8(quant: Quant, dtype: str) -> bool:
    """True if a layer under ``quant`` runs on int8 kernels for timing option ``dtype``."""
    if dtype == "int8":
        return True
    return dtype == "auto" and quant.weight_bits <= INT8_MAX_BITS


def quantize_inplace(module: Any) -> Any:
    """Replaces every ``nn.Linear`` inside ``module`` by its dynamically quantized int8 version."""
    import torch
    from torch import nn

    with warnings.catch_warnings():
        # eager-mode quantization is deprecated in favour of torchao, which is not a dependency
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return module


def float_dtype(dtype: str) -> Any:
    """The torch float dtype of a timing option (fp32 for ``int8`` and ``auto``)."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(dtype, torch.float32)


def prepare_model(model: Any, spec: Any, dtype: str) -> Any:
    """Puts a built `MixNet` of ``spec`` in the precision timing option ``dtype`` asks for.

    Blocks follow their own policy; stem, downsamplers and head follow ``spec.boundary_quant``.
    """
    from search_space.nn.quant.policy import strip_policy

    # a model built with its policy carries fake quantizers: time the float ops or int8 kernels
    strip_policy(model)
    if dtype in ("fp16", "bf16"):
        return model.to(float_dtype(dtype))
    if wants_int8(spec.boundary_quant, dtype):
        for part in (model.stem, model.head, *(stage[0] for stage in model.stages)):
            quantize_inplace(part)
    for stage_module, stage in zip(model.stages, spec.stages, strict=True):
        for j, block in enumerate(stage.blocks):
            if wants_int8(block.quant, dtype):
                quantize_inplace(stage_module[j + 1])
    return model
