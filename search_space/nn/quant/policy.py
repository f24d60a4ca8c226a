"""A spec's quantization policy applied to a built `MixNet`, and calibration of its quantizers.

Who calls what: `search_space.nn.builder.build_model` calls `apply_policy` unless asked for the
float model (``quantize=False``); post-training quantization builds the float model, trains it,
then calls `apply_policy` and `calibrate`.

Where each policy applies: every block's Linear/Conv layers (its token mixer, channel mixer and
the structure around them) at the block's ``quant``; the stem, the downsamplers, skip merges,
latent read/write and the head at ``spec.boundary_quant``. Blocks whose token mixer declares
``QUANT_SCORES`` also quantize their attention score path (`ScoreQuant`) when the block's
activations are quantized. Norms, element-wise ops and parameters used outside Linear/Conv layers
(FFT filters, state-space parameters, position biases) stay float: see docs/quantization.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from search_space.nn.quant.layers import ScoreQuant, dequantize_layer, quantize_layer
from search_space.nn.quant.quantizers import PERCENTILE, FakeQuantizer
from search_space.quant import check_calibration
from search_space.spec import FLOAT_BITS, ArchSpec, Quant


def quantize_module(
    root: nn.Module,
    quant: Quant,
    *,
    score_quantizer: str = "log2",
    done: set[int] | None = None,
) -> nn.Module:
    """Fake-quantizes every Linear/Conv inside ``root`` (and the score path of attention mixers
    that declare ``QUANT_SCORES``) at ``quant``, in place; modules whose id is in ``done`` are
    skipped, and each visited one is added to it. Returns ``root``."""
    done = set() if done is None else done
    for module in root.modules():
        if id(module) in done:  # shared blocks: the first policy wins
            continue
        done.add(id(module))
        quantize_layer(
            module,
            quant.weight_bits,
            quant.act_bits,
            per_channel=quant.granularity == "per_channel",
        )
        if getattr(type(module), "QUANT_SCORES", False):
            module._modules.pop("score_quant", None)
            if quant.act_bits < FLOAT_BITS:
                module.score_quant = ScoreQuant(quant.act_bits, score_quantizer)
    return root


def _stage_parts(stage_module: Any) -> tuple[list[nn.Module], list[nn.Module]]:
    """(block modules, boundary modules) of one built stage (``nn.Sequential`` or
    `search_space.nn.builder.StructuredStage`)."""
    if isinstance(stage_module, nn.Sequential):
        parts = list(stage_module)
        return parts[1:], parts[:1]
    kinds: list[str] = stage_module.kinds  # StructuredStage: data/latent blocks, read/write
    blocks = [m for k, m in zip(kinds, stage_module.steps, strict=True) if k in ("data", "latent")]
    boundary = [m for k, m in zip(kinds, stage_module.steps, strict=True) if k in ("read", "write")]
    extras = (stage_module.downsample, stage_module.merge, stage_module.latents)
    return blocks, [*boundary, *(m for m in extras if m is not None)]


def policy_groups(model: Any, spec: ArchSpec) -> list[tuple[str, list[nn.Module], Quant]]:
    """The parts of ``model`` one policy applies to: ``stages[i].blocks[j]`` (one module per
    block) at the block's ``quant``, then ``boundary`` (stem, downsamplers, merges, latent
    read/write, head) at ``spec.boundary_quant``."""
    groups: list[tuple[str, list[nn.Module], Quant]] = []
    boundary: list[nn.Module] = [model.stem]
    for i, (stage_module, stage) in enumerate(zip(model.stages, spec.stages, strict=True)):
        blocks, extras = _stage_parts(stage_module)
        boundary.extend(extras)
        for j, (module, block) in enumerate(zip(blocks, stage.blocks, strict=True)):
            groups.append((f"stages[{i}].blocks[{j}]", [module], block.quant))
    boundary.append(model.head)
    groups.append(("boundary", boundary, spec.boundary_quant))
    return groups


def apply_policy(model: nn.Module, spec: ArchSpec, *, score_quantizer: str = "log2") -> nn.Module:
    """Fake-quantizes ``model`` (built from ``spec``) in place as the spec's policy says.

    Applying again replaces the quantizers (ranges become dynamic again); a float policy turns
    layers back to float. Returns ``model``.
    """
    done: set[int] = set()
    for _, modules, quant in policy_groups(model, spec):
        for module in modules:
            quantize_module(module, quant, score_quantizer=score_quantizer, done=done)
    return model


def strip_policy(model: nn.Module) -> nn.Module:
    """Turns every quantized layer of ``model`` back to float and drops score quantizers."""
    for module in model.modules():
        dequantize_layer(module)
        module._modules.pop("score_quant", None)
    return model


def quantizers(model: nn.Module) -> Iterator[FakeQuantizer]:
    """Every fake quantizer inside ``model``."""
    return (m for m in model.modules() if isinstance(m, FakeQuantizer))


@torch.no_grad()
def calibrate(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    method: str = "minmax",
    *,
    percentile: float = PERCENTILE,
) -> int:
    """Post-training calibration: runs ``batches`` through ``model`` in eval mode while every
    quantizer observes its inputs, then freezes each range with ``method`` (``minmax``,
    ``percentile`` or ``mse``; see `search_space.nn.quant.quantizers`). Weight ranges are
    observed the same way (they are the same tensor every pass). Returns the number of
    quantizers calibrated."""
    check_calibration(method)
    found = list(quantizers(model))
    if not found:
        return 0
    was_training = model.training
    model.eval()
    for quantizer in found:
        quantizer.observe()
    seen = 0
    for batch in batches:
        model(batch)
        seen += 1
    if seen == 0:
        raise ValueError("calibrate() needs at least one batch")
    for quantizer in found:
        if quantizer.observer is not None and quantizer.observer.lo is not None:
            quantizer.freeze(method, percentile)
        else:  # never reached by the batches (e.g. an unused branch): stay dynamic
            quantizer.release()
    model.train(was_training)
    return len(found)


def release(model: nn.Module) -> None:
    """Back to dynamic ranges everywhere (undoes `calibrate`)."""
    for quantizer in quantizers(model):
        quantizer.release()
