"""Declarative search spaces, architecture specs, the operation registries and the model builder.

The declarative core (specs, spaces, validation, analytic costs) is torch-free; `build_model` and
`example_input` import torch on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search_space.costs import SpecCost, spec_cost
from search_space.declare import SearchSpace, load_space
from search_space.errors import InfeasibleError, MixnasError, RegistryError, SpaceError
from search_space.plan import output_shape, plan, validate_spec
from search_space.spec import ArchSpec, Block, InputSpec, Op, Quant, Stage

if TYPE_CHECKING:
    import torch

__all__ = [
    "ArchSpec",
    "Block",
    "InfeasibleError",
    "InputSpec",
    "MixnasError",
    "Op",
    "Quant",
    "RegistryError",
    "SearchSpace",
    "SpaceError",
    "SpecCost",
    "Stage",
    "build_model",
    "example_input",
    "load_space",
    "output_shape",
    "plan",
    "spec_cost",
    "validate_spec",
]


def build_model(
    spec: ArchSpec, *, seed: int = 0, drop_path_rate: float = 0.0, quantize: bool = True
) -> torch.nn.Module:
    """Builds the `torch.nn.Module` of ``spec`` (deterministic for a given seed), fake-quantized
    as its quantization policy says unless ``quantize=False`` (the float model)."""
    from search_space.nn.builder import build_model as _build

    return _build(spec, seed=seed, drop_path_rate=drop_path_rate, quantize=quantize)


def example_input(spec: ArchSpec, batch_size: int = 2, *, seed: int = 0) -> Any:
    """An input batch the model of ``spec`` accepts (images, token ids or feature vectors)."""
    from search_space.nn.builder import example_input as _example

    return _example(spec, batch_size, seed=seed)
