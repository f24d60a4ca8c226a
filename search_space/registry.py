"""Named registries: the extension points of mixnas.

Specs refer to operations by stable string names; a registry maps each name to its definition. A
duplicate name raises (no silent overwrite), an unknown name raises an error listing the known ones.

A registry may name an entry point group (``mixnas.ops``, ``mixnas.strategies``, ...) and a
function that imports its built-ins: on the first lookup or listing (never on `register`), it
imports the built-ins, then the installed plug-ins of its group (`search_space.plugins`). Each
name remembers where it came from (`Registry.origin`), so ``mixnas plugins`` can say who
registered what and a broken plug-in's partial registrations can be taken back.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from search_space.errors import RegistryError, shorten

T = TypeVar("T")

# the plug-in whose entry point is being loaded ("" while built-ins register)
_loading: list[str] = []
_ALL: weakref.WeakSet[Registry[object]] = weakref.WeakSet()


@contextmanager
def registering_as(origin: str) -> Iterator[None]:
    """Names registered inside this block record ``origin`` (a plug-in) as where they came from."""
    _loading.append(origin)
    try:
        yield
    finally:
        _loading.pop()


def discard(origin: str) -> list[tuple[str, str]]:
    """Removes from every registry the names ``origin`` registered; returns (kind, name) pairs."""
    removed = []
    for registry in list(_ALL):
        for name in [n for n, o in registry._origins.items() if o == origin]:
            del registry._items[name], registry._origins[name]
            removed.append((registry.kind, name))
    return removed


def registered_by(origin: str) -> list[tuple[str, str]]:
    """The (kind, name) pairs that ``origin`` registered, across every registry."""
    return sorted(
        (registry.kind, name)
        for registry in list(_ALL)
        for name, o in registry._origins.items()
        if o == origin
    )


class Registry(Generic[T]):
    """A mapping from stable names to definitions of one kind (token mixers, proxies, ...).

    Args:
        kind: what the items are, for messages ("token mixer").
        group: the entry point group whose plug-ins may add items, loaded on first lookup.
        builtins: imports the built-in items, called once before the plug-ins load (so that a
            plug-in reusing a built-in name is the one refused).
    """

    def __init__(
        self,
        kind: str,
        *,
        group: str | None = None,
        builtins: Callable[[], object] | None = None,
    ) -> None:
        self.kind = kind
        self.group = group
        self._builtins = builtins
        self._ready = group is None and builtins is None
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        _ALL.add(self)  # type: ignore[arg-type]

    def _load(self) -> None:
        if self._ready:
            return
        self._ready = True  # first, so that a lookup during loading does not loop
        if self._builtins is not None:
            self._builtins()
        if self.group is not None:
            from search_space.plugins import load_group

            load_group(self.group)

    def register(self, name: str, item: T) -> T:
        if not isinstance(name, str) or not name or name != name.strip():
            raise RegistryError(f"{self.kind}: invalid name {name!r}")
        if name in self._items:
            raise RegistryError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        if _loading:
            self._origins[name] = _loading[-1]
        return item

    def get(self, name: str) -> T:
        self._load()
        if not isinstance(name, str) or name not in self._items:
            # a name read from a file may be anything: a list, a mapping, a number
            known = ", ".join(sorted(self._items))
            raise RegistryError(f"unknown {self.kind} {shorten(name)}; known: {known}")
        return self._items[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def origin(self, name: str) -> str:
        """The plug-in that registered ``name`` (its entry point), or "" for a built-in."""
        return self._origins.get(name, "")

    def __contains__(self, name: object) -> bool:
        self._load()
        return isinstance(name, str) and name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._items)
