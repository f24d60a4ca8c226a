"""Quantized layers: Linear/Conv with fake-quantized weights and inputs, and the attention hook.

A float layer becomes a quantized one by changing its class in place (`quantize_layer`): the
parameters, their names and the state dict stay those of the float layer, and the quantizers are
submodules without parameters. `dequantize_layer` turns it back.

Attention mixers compute scores through `attend`: without a ``score_quant`` submodule it is
``scaled_dot_product_attention``; with one (set by the policy when the block quantizes
activations) it computes ``softmax(q k^T / sqrt(d) + mask) v`` explicitly, quantizing q, k and v
at the activation bit-width and the probabilities with a log2 (default) or uniform quantizer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_space.errors import SpaceError
from search_space.nn.quant.quantizers import FakeQuantizer, Log2Quantizer, UniformQuantizer
from search_space.quant import SCORE_QUANTIZERS


def _quantized_inputs(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    quant_in = layer._modules.get("input_quant")
    quant_w = layer._modules.get("weight_quant")
    weight: torch.Tensor = layer.weight  # type: ignore[assignment]
    return (
        x if quant_in is None else quant_in(x),
        weight if quant_w is None else quant_w(weight),
    )


class QLinear(nn.Linear):
    """``nn.Linear`` with optional ``input_quant`` and ``weight_quant`` submodules."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, weight = _quantized_inputs(self, x)
        return F.linear(x, weight, self.bias)


class QConv1d(nn.Conv1d):
    """``nn.Conv1d`` with optional ``input_quant`` and ``weight_quant`` submodules."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, weight = _quantized_inputs(self, x)
        return self._conv_forward(x, weight, self.bias)


class QConv2d(nn.Conv2d):
    """``nn.Conv2d`` with optional ``input_quant`` and ``weight_quant`` submodules."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, weight = _quantized_inputs(self, x)
        return self._conv_forward(x, weight, self.bias)


class QConv3d(nn.Conv3d):
    """``nn.Conv3d`` with optional ``input_quant`` and ``weight_quant`` submodules."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, weight = _quantized_inputs(self, x)
        return self._conv_forward(x, weight, self.bias)


# Exact float classes only: a subclass may override forward, and swapping would drop that.
QUANTIZED: dict[type[nn.Module], type[nn.Module]] = {
    nn.Linear: QLinear,
    nn.Conv1d: QConv1d,
    nn.Conv2d: QConv2d,
    nn.Conv3d: QConv3d,
}
FLOAT_OF = {q: f for f, q in QUANTIZED.items()}


def quantize_layer(
    layer: nn.Module, weight_bits: int, act_bits: int, *, per_channel: bool = False
) -> bool:
    """Makes ``layer`` (a float or quantized Linear/Conv) quantize at the given bits, in place.

    Weights: symmetric uniform, per output channel when ``per_channel``. Inputs: asymmetric
    uniform, per tensor. 32 bits leaves that side in float. Returns False for other layers.
    """
    base = FLOAT_OF.get(type(layer), type(layer))
    cls = QUANTIZED.get(base)
    if cls is None:
        return False
    dequantize_layer(layer)
    if weight_bits >= 32 and act_bits >= 32:
        return True
    layer.__class__ = cls
    if weight_bits < 32:
        axis = 0 if per_channel else None
        layer.weight_quant = UniformQuantizer(weight_bits, symmetric=True, channel_axis=axis)
    if act_bits < 32:
        layer.input_quant = UniformQuantizer(act_bits)
    return True


def dequantize_layer(layer: nn.Module) -> None:
    """Turns a quantized layer back into its float class (no-op for others)."""
    base = FLOAT_OF.get(type(layer))
    if base is None:
        return
    for name in ("input_quant", "weight_quant"):
        layer._modules.pop(name, None)
    layer.__class__ = base


class ScoreQuant(nn.Module):
    """Quantizers of an attention score path: q, k, v at ``bits`` and the probabilities."""

    def __init__(self, bits: int, probs: str = "log2") -> None:
        super().__init__()
        if probs not in SCORE_QUANTIZERS:
            raise SpaceError(
                "score_quantizer", f"must be one of {list(SCORE_QUANTIZERS)}", value=probs
            )
        self.q, self.k, self.v = (UniformQuantizer(bits) for _ in range(3))
        self.probs: FakeQuantizer = (
            Log2Quantizer(bits) if probs == "log2" else UniformQuantizer(bits)
        )

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q, k, v = self.q(q), self.k(k), self.v(v)
        scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:  # sdpa's convention: True takes part
                scores = scores.masked_fill(~attn_mask, float("-inf"))
            else:
                scores = scores + attn_mask
        return self.probs(scores.softmax(dim=-1)) @ v


def attend(
    module: nn.Module,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention of ``module``, through its ``score_quant`` when it has one.

    Mixers that call this declare ``QUANT_SCORES = True`` so that the policy knows to give them
    a `ScoreQuant` (the softmax inside ``scaled_dot_product_attention`` is out of reach).
    """
    score_quant = module._modules.get("score_quant")
    if score_quant is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    return score_quant(q, k, v, attn_mask)  # type: ignore[no-any-return]


def score_operand(module: nn.Module, role: str, t: torch.Tensor) -> torch.Tensor:
    """``t`` through ``module``'s score quantizer for ``role`` (``q``, ``k``, ``v`` or ``probs``)
    when it has one: for mixers that compute attention inline rather than through `attend`
    (they declare ``QUANT_SCORES = True`` too)."""
    score_quant = module._modules.get("score_quant")
    if score_quant is None:
        return t
    return getattr(score_quant, role)(t)  # type: ignore[no-any-return]
