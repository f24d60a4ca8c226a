"""`Supernet`: one set of shared weights for every spec of a declared space.

Who calls what, when: a training recipe (`evaluators.supernet.train`) calls ``configure(spec)``
then runs the supernet as a model, for several subnets per step; a subnet evaluator configures a
spec, recalibrates batch norm (`recalibrate`) and measures it; ``extract(spec)`` hands a
standalone model to export or fine-tuning.

How: the shared weights are one largest tensor per slot (`evaluators.supernet.slots`). Running a
configured subnet builds the builder's own model of that spec once (a *template*, cached), and
calls it through `torch.func.functional_call` with each parameter replaced by its slice of the
shared tensor (`evaluators.supernet.rules.take`). Gradients flow through the slices into the
shared tensors, and the subnet is by construction the same class and computation as
``build_model(spec)``: ``extract`` builds that model and loads the slices, so its output equals
the supernet's. The template keeps the subnet's own buffers (batch-norm running statistics,
attention masks); batch norm is recalibrated per subnet before evaluation (Yu et al., "BigNAS:
Scaling Up Neural Architecture Search with Big Single-Stage Models", ECCV 2020, Sec. 3.2), and
spaces with only LayerNorm/GroupNorm need nothing.

Elastic depth: a subnet of depth d uses blocks 0..d-1 of each stage (OFA keeps the first d).
Mixer choice: each block holds one weight set per mixer type, norms shared across types.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from evaluators.supernet.cover import check_space, covering_specs, extreme_spec
from evaluators.supernet.rules import Slot, take
from evaluators.supernet.slots import slots
from search_space import build_model
from search_space.declare.space import SearchSpace
from search_space.errors import SpaceError
from search_space.spec import ArchSpec

TEMPLATES = 32  # built subnets kept; a training step touches 3-4, an evaluation one


def _param_name(key: str) -> str:
    # ParameterDict names cannot hold dots; keys keep them readable elsewhere
    return key.replace(".", "~")


class Supernet(nn.Module):
    """Shared weights of every spec of ``space``.

    Args:
        space: a declared space, structured stages included (see `check_space`).
        seed: seeds the initial weights (each largest tensor starts from the builder's
            initialisation of a covering spec).
        strict: refuse ops that declare no sharing rule (`OpDef.sharing`); with False they
            get one weight set per exact shape.
    """

    def __init__(self, space: SearchSpace, *, seed: int = 0, strict: bool = True) -> None:
        super().__init__()
        check_space(space, strict=strict)
        self.space, self.seed, self.strict = space, seed, strict
        self.weights = nn.ParameterDict()
        self._templates: OrderedDict[str, tuple[nn.Module, dict[str, Slot]]] = OrderedDict()
        self._active: ArchSpec | None = None
        self._extremes: dict[bool, ArchSpec] = {}
        self._init_weights(covering_specs(space))

    # -- construction ---------------------------------------------------------------------------
    def _init_weights(self, specs: Iterable[ArchSpec]) -> None:
        shapes: dict[str, list[int]] = {}
        source: dict[str, torch.Tensor] = {}  # the largest initialised tensor seen per slot
        for spec in specs:
            model = build_model(spec, seed=self.seed)
            where = slots_of(spec, model, self.strict)
            for name, param in model.named_parameters():
                key = where[name].key
                old = shapes.get(key)
                shapes[key] = list(param.shape) if old is None else list(map(max, old, param.shape))
                if key not in source or param.numel() > source[key].numel():
                    source[key] = param.detach().clone()
        for key in sorted(shapes):
            full = _filler(tuple(shapes[key]), source[key], zlib.crc32(key.encode()) + self.seed)
            # the covering specs use the largest widths, so the source is almost always the
            # full shape; otherwise its values land in the prefix (any values are a valid start)
            index = tuple(slice(0, n) for n in source[key].shape)
            full[index] = source[key]
            self.weights[_param_name(key)] = nn.Parameter(full)

    # -- subnets --------------------------------------------------------------------------------
    def largest(self) -> ArchSpec:
        """The space's spec with the most parameters (the sandwich rule's teacher)."""
        if True not in self._extremes:
            self._extremes[True] = extreme_spec(self.space, largest=True)
        return self._extremes[True]

    def smallest(self) -> ArchSpec:
        if False not in self._extremes:
            self._extremes[False] = extreme_spec(self.space, largest=False)
        return self._extremes[False]

    def configure(self, spec: ArchSpec) -> Supernet:
        """Activates ``spec``'s subnet for the following forward passes; raises `SpaceError`
        when the spec uses a weight the supernet does not hold."""
        self._template(spec)
        self._active = spec
        return self

    @property
    def active(self) -> ArchSpec:
        if self._active is None:
            raise SpaceError("spec", "no subnet is active; call configure(spec) first")
        return self._active

    def subnet_parameters(self, spec: ArchSpec | None = None) -> dict[str, torch.Tensor]:
        """The (differentiable) slices the builder's model of ``spec`` uses, by parameter name."""
        spec = spec or self.active
        model, where = self._template(spec)
        return {
            name: take(self.weights[_param_name(where[name].key)], tuple(p.shape), where[name])
            for name, p in model.named_parameters()
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        model, _ = self._template(self.active)
        model.train(self.training)
        return functional_call(model, self.subnet_parameters(), (x,))  # type: ignore[no-any-return]

    def extract(self, spec: ArchSpec | None = None) -> nn.Module:
        """A standalone `MixNet` (``build_model(spec)``) holding the inherited weights and the
        subnet's buffers (recalibrated batch-norm statistics, if any)."""
        spec = spec or self.active
        model = build_model(spec, seed=self.seed)
        template, _ = self._template(spec)
        state = {k: v.detach().clone() for k, v in template.state_dict().items()}
        state.update({k: v.detach().clone() for k, v in self.subnet_parameters(spec).items()})
        model.load_state_dict(state, strict=True)
        return model.train(self.training)

    def recalibrate(self, batches: Iterable[torch.Tensor]) -> int:
        """Resets the active subnet's batch-norm statistics and re-estimates them as a plain
        average over ``batches`` (BigNAS); returns how many norm layers it touched."""
        return recalibrate(self, self.template(), batches)

    def template(self, spec: ArchSpec | None = None) -> nn.Module:
        """The builder's model of ``spec`` that the supernet runs (its parameters are unused
        placeholders; its buffers are the subnet's)."""
        return self._template(spec or self.active)[0]

    def _apply(self, fn: Any, recurse: bool = True) -> Supernet:
        # `to(device)` moves the cached subnets too: they are not submodules (the weights are
        # shared through functional_call), but their buffers must follow the weights
        super()._apply(fn, recurse)
        for model, _ in self._templates.values():
            model._apply(fn, recurse)
        return self

    # -- templates ------------------------------------------------------------------------------
    def _template(self, spec: ArchSpec) -> tuple[nn.Module, dict[str, Slot]]:
        cached = self._templates.get(spec.id)
        if cached is not None:
            self._templates.move_to_end(spec.id)
            return cached
        model = build_model(spec, seed=self.seed)
        where = slots_of(spec, model, self.strict)
        for name, p in model.named_parameters():
            key = _param_name(where[name].key)
            if key not in self.weights or any(
                a > b for a, b in zip(p.shape, self.weights[key].shape, strict=True)
            ):
                raise SpaceError(
                    "spec", f"uses a weight the supernet does not hold ({where[name].key})"
                )
        model.requires_grad_(False)  # its own parameters are placeholders
        weights = next(iter(self.weights.values()), None)
        if weights is not None and weights.device.type != "cpu":
            model.to(weights.device)  # its buffers (batch-norm statistics) live with the weights
        self._templates[spec.id] = (model, where)
        if len(self._templates) > TEMPLATES:
            self._templates.popitem(last=False)
        return model, where


def slots_of(spec: ArchSpec, model: nn.Module, strict: bool) -> dict[str, Slot]:
    return slots(spec, model, strict=strict)


def _filler(shape: tuple[int, ...], like: torch.Tensor, seed: int) -> torch.Tensor:
    """Initial values for the parts of a largest tensor no covering spec initialised alone:
    norm-like scales start at one, other vectors at zero, matrices like their source."""
    if len(shape) == 1:
        constant = bool((like == like.flatten()[0]).all())  # ones, zeros, a layer scale
        return torch.full(shape, float(like.flatten()[0]) if constant else 0.0)
    std = float(like.std()) if like.numel() > 1 else 0.02
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen) * std


@torch.no_grad()
def recalibrate(model: nn.Module, norms_of: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Re-estimates the running statistics of the batch norms inside ``norms_of`` as a plain
    average over ``batches`` run through ``model`` in training mode; returns the norm count."""
    norms = [m for m in norms_of.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was_training = model.training
    model.train()
    for x in batches:
        model(x)
    model.train(was_training)
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    return len(norms)
