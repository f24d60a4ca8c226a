"""Expanding declared op choices into finite lists of concrete ops.

In a space file an op choice is written as a name with per-parameter values, where a list means
"any of these" and a scalar means "fixed"::

    window_attention: {window: [4, 7], head_dim: 32, shift: [false, true]}

`expand_op` turns that into the concrete `Op`s it stands for (here four), each with every parameter
filled in, so a spec is always explicit. List-valued parameters (dilation lists) are written as a
list of lists.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from search_space.errors import RegistryError, SpaceError
from search_space.ops.base import OpDef
from search_space.registry import Registry
from search_space.spec import Op


def lookup(registry: Registry[OpDef], name: Any, path: str) -> OpDef:
    if not isinstance(name, str):
        raise SpaceError(path, f"must be the name of a {registry.kind}", value=name)
    try:
        return registry.get(name)
    except RegistryError as err:
        raise SpaceError(path, str(err)) from None


def as_choices(value: Any, path: str, *, list_valued: bool = False) -> list[Any]:
    """A declared value as a non-empty list of choices (a scalar is a single choice)."""
    if list_valued:
        # a list of ints is one choice; a list of lists is several
        if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            choices = value
        else:
            choices = [value]
    elif isinstance(value, list):
        choices = value
    else:
        choices = [value]
    if not choices:
        raise SpaceError(path, "empty choice list; give at least one value")
    return choices


def expand_op(registry: Registry[OpDef], name: Any, params: Any, path: str) -> list[Op]:
    """Every concrete op a declared ``name: {param: choices}`` entry stands for."""
    op = lookup(registry, name, path)
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise SpaceError(
            path, "parameters must be a mapping of name to value or list of values", value=params
        )
    keys = list(params)
    grids = []
    for key in keys:
        pdef = op.param(key)
        if pdef is None:
            allowed = ", ".join(p.name for p in op.params) or "none"
            raise SpaceError(
                f"{path}.{key}",
                f"unknown parameter of {registry.kind} {op.name!r}; allowed: {allowed}",
            )
        grids.append(as_choices(params[key], f"{path}.{key}", list_valued=pdef.kind is list))
    ops = []
    for combo in itertools.product(*grids):
        full = op.complete(dict(zip(keys, combo, strict=True)), path)
        ops.append(Op.of(op.name, full))
    return list(dict.fromkeys(ops))


def expand_entry(registry: Registry[OpDef], entry: Any, path: str) -> list[Op]:
    """A list entry written as ``name`` or ``{name: ..., param: choices}``."""
    if isinstance(entry, str):
        return expand_op(registry, entry, {}, path)
    if isinstance(entry, Mapping):
        if "name" not in entry:
            raise SpaceError(f"{path}.name", "is required")
        params = {k: v for k, v in entry.items() if k != "name"}
        return expand_op(registry, entry["name"], params, path)
    raise SpaceError(path, f"must be a {registry.kind} name or a mapping with a name", value=entry)


def expand_list(registry: Registry[OpDef], value: Any, path: str) -> list[Op]:
    """A declared list of op entries (or a single entry) as a de-duplicated list of ops."""
    entries = as_choices(value, path)
    ops: list[Op] = []
    for i, entry in enumerate(entries):
        ops.extend(expand_entry(registry, entry, f"{path}[{i}]"))
    return list(dict.fromkeys(ops))


def expand_menu(registry: Registry[OpDef], menu: Any, path: str) -> dict[str, list[Op]]:
    """A ``{name: {param: choices}}`` menu as concrete ops per name."""
    if not isinstance(menu, Mapping) or not menu:
        raise SpaceError(
            path,
            f"must be a non-empty mapping of {registry.kind} names to parameter choices",
            value=menu,
        )
    return {
        name: expand_op(registry, name, params, f"{path}.{name}") for name, params in menu.items()
    }


def select(
    menu: dict[str, list[Op]], entries: Any, path: str, registry: Registry[OpDef]
) -> list[Op]:
    """Picks ops from a menu: a name takes all its variants; ``{name: {param: choices}}`` narrows
    (or re-declares) the parameters for this place only."""
    chosen: list[Op] = []
    for i, entry in enumerate(as_choices(entries, path)):
        where = f"{path}[{i}]"
        if isinstance(entry, str):
            if entry not in menu:
                lookup(registry, entry, where)  # unknown names get the registry's message
                raise SpaceError(
                    where,
                    f"{registry.kind} {entry!r} is not in the space's menu; "
                    f"menu: {', '.join(menu)}",
                )
            chosen.extend(menu[entry])
        elif isinstance(entry, Mapping) and len(entry) == 1:
            ((name, params),) = entry.items()
            chosen.extend(expand_op(registry, name, params, f"{where}.{name}"))
        else:
            raise SpaceError(
                where,
                f"must be a {registry.kind} name or {{name: {{param: choices}}}}}}",
                value=entry,
            )
    return list(dict.fromkeys(chosen))
