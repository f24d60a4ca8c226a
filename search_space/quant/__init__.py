"""Quantizers and calibration methods by name: the torch-free half of quantization.

A quantizer is a fake-quantization module (quantize, then dequantize, in float) that a
quantization policy (`search_space.spec.Quant`) attaches to weights and activations of a built
model; `search_space.nn.quant` holds the modules and applies a spec's policy. Here live the names,
so that a configuration can be validated without importing torch:

- ``uniform``: uniform affine quantization (Jacob et al., "Quantization and Training of Neural
  Networks for Efficient Integer-Arithmetic-Only Inference", CVPR 2018), per tensor or per
  channel, symmetric (weights) or asymmetric (activations);
- ``log2``: power-of-two levels for post-softmax attention probabilities, whose mass sits near 0
  (RepQ-ViT: Li et al., ICCV 2023; FQ-ViT: Lin et al., IJCAI 2022).

Calibration methods (how a frozen range is chosen from observed values, Nagel et al., "A White
Paper on Neural Network Quantization", 2021): ``minmax``, ``percentile`` and ``mse`` (the clipping
range that minimises the quantization error).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import import_module
from typing import Any

from search_space.errors import SpaceError
from search_space.registry import Registry
from search_space.spec import ALLOWED_BITS, FLOAT, FLOAT_BITS, ArchSpec, Quant

CALIBRATIONS = ("minmax", "percentile", "mse")
# Post-softmax probabilities: log2 levels (default) or the same uniform grid as other activations.
SCORE_QUANTIZERS = ("log2", "uniform")


@dataclass(frozen=True)
class QuantizerDef:
    """A registered quantizer: its name, its module (``"package.module:Class"``) and a doc line.

    The module's constructor is ``(bits, **options)`` with the options of the quantizer.
    """

    name: str
    module: str
    doc: str

    def module_class(self) -> Any:
        path, _, cls = self.module.partition(":")
        return getattr(import_module(path), cls)


QUANTIZERS: Registry[QuantizerDef] = Registry("quantizer")


def register(item: QuantizerDef) -> QuantizerDef:
    """Adds a quantizer; a duplicate name raises `RegistryError`."""
    return QUANTIZERS.register(item.name, item)


register(
    QuantizerDef(
        "uniform",
        "search_space.nn.quant.quantizers:UniformQuantizer",
        "uniform affine, per tensor or per channel, symmetric or asymmetric (Jacob et al. 2018)",
    )
)
register(
    QuantizerDef(
        "log2",
        "search_space.nn.quant.quantizers:Log2Quantizer",
        "power-of-two levels for values in [0, max], e.g. post-softmax (RepQ-ViT, FQ-ViT)",
    )
)


def check_bits(bits: Any, field: str) -> int:
    """``bits`` if it is an allowed bit-width, else a `SpaceError` naming ``field``."""
    if isinstance(bits, bool) or bits not in ALLOWED_BITS:
        raise SpaceError(field, f"must be one of {list(ALLOWED_BITS)}", value=bits)
    return int(bits)


def check_calibration(method: Any, field: str = "calibration") -> str:
    """``method`` if it names a calibration method, else a `SpaceError` naming ``field``."""
    if method not in CALIBRATIONS:
        raise SpaceError(field, f"must be one of {list(CALIBRATIONS)}", value=method)
    return str(method)


def with_policy(
    spec: ArchSpec, quant: Quant | list[Quant], boundary: Quant | None = None
) -> ArchSpec:
    """``spec`` with every block at ``quant`` (or stage i at ``quant[i]``) and the stem, the
    downsamplers and the head at ``boundary`` (unchanged when None).

    Benchmarks and tests use it to compare one architecture under several policies.
    """
    per_stage = quant if isinstance(quant, list) else [quant] * len(spec.stages)
    if len(per_stage) != len(spec.stages):
        raise SpaceError(
            "quant", f"needs one policy per stage ({len(spec.stages)})", value=len(per_stage)
        )
    for q in per_stage + ([boundary] if boundary is not None else []):
        check_bits(q.weight_bits, "quant.weight_bits")
        check_bits(q.act_bits, "quant.act_bits")
    stages = tuple(
        replace(stage, blocks=tuple(replace(b, quant=q) for b in stage.blocks))
        for stage, q in zip(spec.stages, per_stage, strict=True)
    )
    return spec.replace(
        stages=stages, boundary_quant=spec.boundary_quant if boundary is None else boundary
    )


def float_policy(spec: ArchSpec) -> ArchSpec:
    """``spec`` with every layer in float."""
    return with_policy(spec, FLOAT, FLOAT)


__all__ = [
    "CALIBRATIONS",
    "FLOAT_BITS",
    "QUANTIZERS",
    "SCORE_QUANTIZERS",
    "QuantizerDef",
    "check_bits",
    "check_calibration",
    "float_policy",
    "register",
    "with_policy",
]
