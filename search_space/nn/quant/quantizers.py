"""Fake quantizers: quantize then dequantize in float, with straight-through gradients.

Who calls what: `search_space.nn.quant.policy.apply_policy` attaches a quantizer to the weight and
input of each Linear/Conv layer (and to the attention score path of the mixers that call
`search_space.nn.quant.attend`). Every forward pass then runs ``x -> dequant(quant(x))``.

Ranges. Until calibrated, a quantizer takes the range of the tensor it sees (dynamic min-max,
which suits quantization-aware training: weights move). `observe` makes it record what passes
through; `freeze` then fixes the range with a calibration method: ``minmax`` (the observed
extremes), ``percentile`` (clip the tails of the observed values) or ``mse`` (the clipping of the
min-max range that minimises the squared quantization error; Banner et al., "Post-training 4-bit
quantization of convolutional networks for rapid-deployment", NeurIPS 2019; Nagel et al., "A White
Paper on Neural Network Quantization", 2021).

Gradients: the straight-through estimator (Bengio et al., 2013; Jacob et al., CVPR 2018):
rounding passes the gradient unchanged; clipping passes it only inside the range. Ranges carry no
gradient and quantizers own no parameters (only non-persistent buffers), so a quantized model
has the float model's parameters and state dict.
"""

from __future__ import annotations

import torch
from torch import nn

from search_space.quant import check_bits, check_calibration

# Floor of a scale: a constant (e.g. all-zero) tensor must not divide by zero.
EPS = 1e-8
# Values an observer keeps per forward pass and in all, for percentile and MSE calibration.
SAMPLE_PER_CALL = 4096
SAMPLE_MAX = 1 << 16
PERCENTILE = 99.99
MSE_GRID = 40  # clipping ratios tried between 1/MSE_GRID and 1 of the min-max range


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` forward, identity backward (straight-through)."""
    return x + (torch.round(x) - x).detach()


class Observer:
    """Running extremes (per channel or per tensor) and a bounded, seeded sample of values."""

    def __init__(self) -> None:
        self.lo: torch.Tensor | None = None
        self.hi: torch.Tensor | None = None
        self.samples: list[torch.Tensor] = []
        self.count = 0
        self.gen = torch.Generator().manual_seed(0)

    def update(self, rows: torch.Tensor) -> None:
        """Records ``rows``: (channels, values), already detached."""
        lo, hi = rows.amin(dim=1), rows.amax(dim=1)
        self.lo = lo if self.lo is None else torch.minimum(self.lo, lo)
        self.hi = hi if self.hi is None else torch.maximum(self.hi, hi)
        if self.count >= SAMPLE_MAX:
            return
        n = rows.shape[1]
        if n > SAMPLE_PER_CALL:
            pick = torch.randperm(n, generator=self.gen)[:SAMPLE_PER_CALL].to(rows.device)
            rows = rows[:, pick]
        self.samples.append(rows.float().cpu())
        self.count += rows.shape[1]


class FakeQuantizer(nn.Module):
    """Base class: range handling, observation and calibration; subclasses define `fake`.

    Args:
        bits: bit-width (one of `search_space.spec.ALLOWED_BITS`, below 32).
        channel_axis: the axis with one range per index (per-channel), or None (per-tensor).
    """

    lo: torch.Tensor
    hi: torch.Tensor

    def __init__(self, bits: int, *, channel_axis: int | None = None) -> None:
        super().__init__()
        self.bits = check_bits(bits, "quantizer.bits")
        self.channel_axis = channel_axis
        self.register_buffer("lo", torch.zeros(0), persistent=False)
        self.register_buffer("hi", torch.zeros(0), persistent=False)
        self.frozen = False
        self.observer: Observer | None = None

    # -- to be defined by subclasses ------------------------------------------------------------
    def fake(self, x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        """Quantizes and dequantizes ``x`` for the range [lo, hi] (shaped to broadcast)."""
        raise NotImplementedError

    # -- shared machinery -----------------------------------------------------------------------
    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as (channels, values): one row per channel, or a single row."""
        if self.channel_axis is None:
            return x.reshape(1, -1)
        return x.movedim(self.channel_axis, 0).reshape(x.shape[self.channel_axis], -1)

    def shaped(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A per-row value ``v`` (channels,) shaped to broadcast against ``x``."""
        if self.channel_axis is None:
            return v.reshape(())
        shape = [1] * x.dim()
        shape[self.channel_axis] = -1
        return v.reshape(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observer is not None:
            self.observer.update(self.rows(x.detach()))
        if self.frozen:
            lo, hi = self.lo, self.hi
        else:  # dynamic range of this tensor
            rows = self.rows(x.detach())
            lo, hi = rows.amin(dim=1), rows.amax(dim=1)
        return self.fake(x, self.shaped(lo, x), self.shaped(hi, x))

    def observe(self) -> None:
        """Starts recording the values that pass (calibration); the output stays dynamic."""
        self.observer = Observer()
        self.frozen = False

    def freeze(self, method: str = "minmax", percentile: float = PERCENTILE) -> None:
        """Fixes the range from what was observed, with calibration ``method``."""
        check_calibration(method)
        obs = self.observer
        if obs is None or obs.lo is None or obs.hi is None:
            raise RuntimeError("freeze() needs observe() and at least one forward pass first")
        lo, hi = obs.lo, obs.hi
        if method != "minmax" and obs.samples:
            sample = torch.cat(obs.samples, dim=1)
            if method == "percentile":
                q = torch.tensor([1.0 - percentile / 100.0, percentile / 100.0])
                bounds = torch.quantile(sample, q, dim=1)
                lo, hi = bounds[0].to(lo), bounds[1].to(hi)
            else:
                lo, hi = self._mse_range(sample, lo.float().cpu(), hi.float().cpu())
                lo, hi = lo.to(obs.lo), hi.to(obs.hi)
        self.lo, self.hi = lo.clone(), hi.clone()
        self.frozen, self.observer = True, None

    def release(self) -> None:
        """Back to dynamic ranges (no calibration)."""
        self.frozen, self.observer = False, None

    @torch.no_grad()
    def _mse_range(
        self, sample: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row, the clipped range ``ratio * [lo, hi]`` with the least squared error."""
        best_err = torch.full_like(lo, float("inf"))
        best_lo, best_hi = lo.clone(), hi.clone()
        for i in range(MSE_GRID, 0, -1):
            ratio = i / MSE_GRID
            clo, chi = lo * ratio, hi * ratio
            err = (self.fake(sample, clo[:, None], chi[:, None]) - sample).square().mean(dim=1)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best_lo = torch.where(better, clo, best_lo)
            best_hi = torch.where(better, chi, best_hi)
        return best_lo, best_hi

    def extra_repr(self) -> str:
        axis = "per_tensor" if self.channel_axis is None else f"channel_axis={self.channel_axis}"
        return f"bits={self.bits}, {axis}, frozen={self.frozen}"


class UniformQuantizer(FakeQuantizer):
    """Uniform affine quantization (Jacob et al., CVPR 2018).

    Symmetric: integers in [-(2^(b-1) - 1), 2^(b-1) - 1], zero point 0, scale max|x| / (2^(b-1)
    - 1) (the narrow range, as for int8 weights). Asymmetric: integers in [0, 2^b - 1], the range
    widened to include 0 so that zero is exact (padding, ReLU outputs), zero point
    ``round(-lo / scale)``.
    """

    def __init__(
        self, bits: int, *, symmetric: bool = False, channel_axis: int | None = None
    ) -> None:
        super().__init__(bits, channel_axis=channel_axis)
        self.symmetric = symmetric

    def fake(self, x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        if self.symmetric:
            qmax = float(2 ** (self.bits - 1) - 1)
            qmin = -qmax
            scale = (torch.maximum(lo.abs(), hi.abs()) / qmax).clamp_min(EPS)
            zero = torch.zeros_like(scale)
        else:
            qmin, qmax = 0.0, float(2**self.bits - 1)
            lo, hi = lo.clamp(max=0.0), hi.clamp(min=0.0)
            scale = ((hi - lo) / qmax).clamp_min(EPS)
            zero = torch.round(-lo / scale)
        scale, zero = scale.detach(), zero.detach()
        q = torch.clamp(round_ste(x / scale) + zero, qmin, qmax)  # clamp: clipped STE
        return (q - zero) * scale

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, symmetric={self.symmetric}"


class Log2Quantizer(FakeQuantizer):
    """Power-of-two levels ``hi * 2^-e``, e in [0, 2^b - 2], and an exact zero (e = 2^b - 1).

    For non-negative values concentrated near 0, such as post-softmax attention probabilities,
    where a uniform grid wastes its levels on the rare large values (RepQ-ViT: Li et al., ICCV
    2023; FQ-ViT: Lin et al., IJCAI 2022). Negative inputs are quantized by magnitude. Gradient:
    straight-through over the whole quantizer.
    """

    def fake(self, x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        top = float(2**self.bits - 1)
        scale = torch.maximum(lo.abs(), hi.abs()).clamp_min(EPS).detach()
        mag = (x.detach().abs() / scale).clamp_min(2.0**-top)
        e = torch.clamp(torch.round(-torch.log2(mag)), 0.0, top)
        deq = torch.where(e >= top, torch.zeros_like(mag), scale * torch.pow(2.0, -e))
        deq = torch.sign(x.detach()) * deq
        return x + (deq - x).detach()
