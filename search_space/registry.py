"""Named registries: the extension points of mixnas.

Specs refer to operations by stable string names; a registry maps each name to its definition. A
duplicate name raises (no silent overwrite), an unknown name raises an error listing the known ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from search_space.errors import RegistryError, shorten

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from stable names to definitions of one kind (token mixers, proxies, ...)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if not name or name != name.strip():
            raise RegistryError(f"{self.kind}: invalid name {name!r}")
        if name in self._items:
            raise RegistryError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        if not isinstance(name, str) or name not in self._items:
            # a name read from a file may be anything: a list, a mapping, a number
            known = ", ".join(sorted(self._items))
            raise RegistryError(f"unknown {self.kind} {shorten(name)}; known: {known}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
