"""Where each decision's straight-through weight multiplies the sampled subnet.

GDAS and ProxylessNAS multiply the output of the *chosen op* of an edge by its (straight-through)
weight, so the loss's gradient reaches that edge's logits. A declared space has no edges: its
decisions are mixers per stage or block, widths, depths, stems, quantization policies. Each
decision is mapped to the module of the built subnet (`search_space.build_model`) whose output it
selects, by the decision's name (`SearchSpace._build_dims`):

====================================== ================================================
decision                               output multiplied
====================================== ================================================
``stages[s].patterns[k].blocks[j]``    token mixer of block j of stage s
``stages[s].pattern``, ``.patterns[k]`` every token mixer of stage s
``stages[s].channel_mixer``            every channel mixer of stage s
other ``stages[s].*`` (width, depth,   stage s
downsample, norm, quantization)
``stem``, ``head``                     the stem, the head
``num_stages``, ``layer_scale``, ...   the network's logits
====================================== ================================================

A multiplied output is the sampled path's contribution (a mixer's, inside its residual branch),
so ``dL/dw = <dL/dout, out>`` says whether more of that choice would have lowered the loss. The
weights are 1 in value (hard straight-through), so the forward pass is exactly the subnet's.
A module not found in a model (a structured stage's other layout) falls back to the stage, then
to the logits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

_STAGE = re.compile(r"^stages\[(\d+)\]\.(.*)$")
_BLOCK = re.compile(r"^patterns\[\d+\]\.blocks\[(\d+)\]$")
_WRAP = r"(?:(?:block|branch)\.)*"
OUTPUT = ""  # the network's logits


def target_of(name: str) -> tuple[str, int, int]:
    """``(kind, stage, block)`` a decision's weight multiplies: kind is ``token``, ``channel``,
    ``stage``, ``stem``, ``head`` or ``output``; block -1 means every block of the stage."""
    if name in ("stem", "head"):
        return name, -1, -1
    found = _STAGE.match(name)
    if found is None:
        return "output", -1, -1
    stage, rest = int(found.group(1)), found.group(2)
    block = _BLOCK.match(rest)
    if block is not None:
        return "token", stage, int(block.group(1))
    if rest == "pattern" or rest.startswith("patterns["):
        return "token", stage, -1
    if rest == "channel_mixer":
        return "channel", stage, -1
    return "stage", stage, -1


def modules_of(model: nn.Module, kind: str, stage: int, block: int) -> list[str]:
    """Names of the modules of ``model`` a decision's weight multiplies (see the table)."""
    names = [n for n, _ in model.named_modules()]
    if kind in ("stem", "head"):
        return [kind] if kind in names else [OUTPUT]
    if kind == "output":
        return [OUTPUT]
    if kind in ("token", "channel"):
        index = r"\d+" if block < 0 else str(block + 1)
        pattern = re.compile(rf"^stages\.{stage}\.{index}\.{_WRAP}{kind}\.{_WRAP}mixer$")
        found = [n for n in names if pattern.match(n)]
        if found:
            return found
    return [f"stages.{stage}"] if f"stages.{stage}" in names else [OUTPUT]


@contextmanager
def weighted_paths(
    model: nn.Module, targets: dict[str, torch.Tensor]
) -> Iterator[dict[str, torch.Tensor]]:
    """Multiplies the outputs of ``model``'s modules named in ``targets`` by their weight while
    the context is open; the weight of `OUTPUT` is left for the caller to apply to the logits."""
    modules = dict(model.named_modules())
    handles = []

    def hook(factor: torch.Tensor):  # type: ignore[no-untyped-def]
        def apply(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
            return output * factor.to(output.dtype)

        return apply

    try:
        for name, factor in targets.items():
            if name != OUTPUT:
                handles.append(modules[name].register_forward_hook(hook(factor)))
        yield targets
    finally:
        for handle in handles:
            handle.remove()


def path_weights(
    model: nn.Module,
    names: list[str],
    weights: list[torch.Tensor],
    active: list[bool],
    sizes: list[int],
) -> dict[str, torch.Tensor]:
    """Module name -> product of the weights of the active decisions that target it."""
    out: dict[str, torch.Tensor] = {}
    for name, weight, on, size in zip(names, weights, active, sizes, strict=True):
        if not on or size < 2:
            continue
        for module in modules_of(model, *target_of(name)):
            out[module] = out[module] * weight if module in out else weight
    return out
