"""Random search: each candidate drawn independently from the space (the baseline)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from search_space.option_types import Opt
from strategies import register
from strategies.base import Strategy


@register
class RandomSearch(Strategy):
    """Uniform over active decisions, op types balanced; constraints as in `space.sample`."""

    name = "random"
    option_types: ClassVar[Mapping[str, Opt]] = {}

    def _propose(self, n: int):  # type: ignore[no-untyped-def]
        return self._random(n)
