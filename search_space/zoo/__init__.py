"""The zoo: architectures of the seed papers as `ArchSpec`s, built by the one generic builder.

``names()`` lists the models, ``get(name)`` returns a model's spec, ``info(name)`` its metadata
(paper, published size and its source, mixer families, macro structures). ``seeds(space)``
returns the zoo specs a search space contains, to seed a search population, and
``space_around(name_or_spec)`` declares a space centred on a model.

Everything here is torch-free: a zoo spec is validated and costed analytically in microseconds.
"""

from __future__ import annotations

import difflib
from functools import cache
from typing import TYPE_CHECKING

from search_space.errors import RegistryError, SpaceError
from search_space.spec import ArchSpec
from search_space.zoo import (  # noqa: F401  (importing registers the models)
    dense,
    efficient,
    hybrids,
    isotropic,
    metaformer,
    pyramids,
    structures,
)
from search_space.zoo.around import space_around
from search_space.zoo.registry import MODELS, Published, ZooModel

if TYPE_CHECKING:
    from search_space.declare.decisions import DecisionSpace

__all__ = ["Published", "ZooModel", "get", "info", "names", "seeds", "space_around"]


def names() -> list[str]:
    """Every zoo model name, sorted."""
    return MODELS.names()


def info(name: str) -> ZooModel:
    """The metadata of one model; an unknown name raises `RegistryError` naming close matches."""
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS.names(), n=5, cutoff=0.5)
        hint = f"did you mean: {', '.join(close)}" if close else "see 'mixnas zoo list'"
        raise RegistryError(f"unknown zoo model {name!r}; {hint}")
    return MODELS.get(name)


@cache
def get(name: str) -> ArchSpec:
    """The spec of zoo model ``name`` (validated against the registries)."""
    from search_space.plan import validate_spec
    from search_space.zoo._build import complete_ops

    return validate_spec(complete_ops(info(name).factory()))


def seeds(
    space: DecisionSpace, names_: list[str] | None = None, *, adapt_input: bool = False
) -> list[ArchSpec]:
    """The zoo specs ``space`` contains, in name order, to seed a search population.

    A spec is a seed only when ``space.contains(spec)`` holds: same input, every choice among the
    space's, constraints met. Spaces declared with `space_around` contain their centre.

    Args:
        space: any space with ``contains`` (a declared `SearchSpace`, NAS-Bench-201, ...).
        names_: the models to try; every zoo model when None. Unknown names raise.
        adapt_input: first give each spec the space's input (resolution, classes), so that
            ImageNet models can seed a search on another dataset; specs that are invalid at
            that input (a grid that vanishes, a window that no longer fits) are left out.
    """
    target = getattr(getattr(space, "decl", None), "input", None)
    chosen = names() if names_ is None else list(names_)
    out = []
    for name in chosen:
        spec = get(name)
        if adapt_input and target is not None:
            spec = spec.replace(input=target)
        try:
            inside = space.contains(spec)
        except SpaceError:
            inside = False
        if inside:
            out.append(spec)
    return out
