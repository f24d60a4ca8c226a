"""Which subnets a training step runs: the sandwich rule, SPOS, multi-architecture sampling and
progressive shrinking.

Every choice of step ``t`` derives from ``(seed, t)`` alone (`step_rng`), so a resumed run draws
the same subnets as an uninterrupted one.

Progressive shrinking (Cai et al., "Once for All", ICLR 2020, Sec. 3.2) trains the largest
networks first and lets the elastic dimensions shrink one kind at a time. With
``progressive = f`` the first ``f`` of the steps are split into three equal phases; in each, the
dimensions not yet elastic are held at their largest choice:

====== =========== ==============================================================
phase  name        elastic dimensions
====== =========== ==============================================================
0      ``full``    the op *types* only (every mixer type trains at full size)
1      ``variants`` + op variants: kernel size, MLP ratio, head size (OFA's kernel)
2      ``depth``   + depth per stage and other counts (OFA's depth)
3      ``all``     + widths (OFA's width); the rest of the run
====== =========== ==============================================================

OFA's order is kernel, depth, width (its "width" is the MBConv expansion, our MLP ratio is a
variant). Op types stay free in every phase: a hybrid supernet holds one weight set per mixer
type, and freezing types would leave some untrained until late.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from evaluators.supernet.cover import extreme_values, numeric_dim
from search_space.declare.decisions import INACTIVE
from search_space.declare.space import SearchSpace
from search_space.spec import ArchSpec, Op

if TYPE_CHECKING:  # the recipe config lives with the training loop
    from evaluators.supernet.network import Supernet
    from evaluators.supernet.train import RecipeConfig

PHASES = ("full", "variants", "depth", "all")
# dimension kind -> the first phase in which it is elastic
_ELASTIC_FROM = {"type": 0, "variant": 1, "depth": 2, "width": 3}


def step_rng(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, step])


def shrink_phase(progressive: float, steps: int, step: int) -> int:
    """Index into `PHASES` of step ``step`` (the last phase when progressive shrinking is off)."""
    last = len(PHASES) - 1
    if progressive <= 0:
        return last
    span = progressive * steps / last
    return min(last, int(step // span)) if span > 0 else last


def dim_kind(name: str, choices: tuple[object, ...], numeric: bool) -> str:
    """``depth``, ``width``, ``variant`` (an op dimension whose ops come in several variants)
    or ``type`` (anything else: the op type, a block pattern, a quantization policy)."""
    if numeric:
        leaf = name.rsplit(".", 1)[-1]
        return "width" if leaf == "width" else "depth"
    if all(isinstance(c, Op) for c in choices):
        names = [c.name for c in choices if isinstance(c, Op)]
        if len(set(names)) < len(names):
            return "variant"
    return "type"


def restrict(space: SearchSpace, values: np.ndarray, phase: int) -> np.ndarray:
    """``values`` with every dimension not yet elastic in ``phase`` at its largest choice (an
    op dimension keeps its type and takes its largest variant)."""
    if phase >= len(PHASES) - 1:
        return values
    top = extreme_values(space, values, largest=True)
    out = np.array(values, dtype=np.int64)
    for i, dim in enumerate(space.dims):
        if _ELASTIC_FROM[dim_kind(dim.name, dim.choices, numeric_dim(dim))] > phase:
            out[i] = top[i]
    return out


def _random(space: SearchSpace, rng: np.random.Generator, phase: int) -> ArchSpec:
    spec = space.sample(rng)
    if phase >= len(PHASES) - 1:
        return spec
    # a held dimension may switch on blocks the draw left inactive: give them drawn values
    values = space.encode(spec)
    values = np.where(values == INACTIVE, space.random_values(rng), values)
    return space.decode(restrict(space, values, phase))


def subnets_of_step(supernet: Supernet, cfg: RecipeConfig, step: int) -> list[ArchSpec]:
    """The subnets step ``step`` trains, teacher first for the sandwich rule; for
    ``multi_arch``, ``num_archs`` random ones (subnet k trains on chunk k of the batch).

    Held dimensions (progressive shrinking) and the sandwich's extremes ignore the space's
    constraints: they train the supernet's weights, they are not search candidates."""
    rng = step_rng(cfg.seed, step)
    space = supernet.space
    phase = shrink_phase(cfg.progressive, cfg.steps, step)
    if cfg.recipe == "spos":
        return [_random(space, rng, phase)]
    if cfg.recipe == "multi_arch":  # one subnet per chunk of the batch (ViT-ResNAS)
        return [_random(space, rng, phase) for _ in range(cfg.num_archs)]
    if cfg.extremes == "global" and phase == len(PHASES) - 1:
        top, bottom = supernet.largest(), supernet.smallest()
    else:  # the extremes of the elastic dimensions within this step's op types
        types = space.random_values(rng)
        top = space.decode(extreme_values(space, types, largest=True))
        low = extreme_values(space, types, largest=False)
        bottom = space.decode(restrict(space, low, phase))
    rand = [_random(space, rng, phase) for _ in range(cfg.num_random)]
    # in the first phase the smallest elastic subnet is the largest one: train it once
    return [top, *([] if bottom == top else [bottom]), *rand]
