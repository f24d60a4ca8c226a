"""Reading a space declaration from a YAML or JSON file (or a built-in space's name)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from search_space.declare.space import SearchSpace
from search_space.errors import SpaceError
from search_space.spaces import builtin_path


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``6.0e6`` and ``1e5`` as floats (YAML 1.2, JSON and Python
    do; YAML 1.1 insists on a signed exponent and would silently read a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_declaration(path: str | Path) -> object:
    """The parsed content of a YAML or JSON file (YAML with `_Loader`'s float rule); syntax
    errors raise `SpaceError` naming the file and line. Used for spaces and run configs."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpaceError("<file>", f"cannot be read: {exc.strerror}", source=str(path)) from None
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpaceError(
                f"line {exc.lineno}", f"JSON syntax error: {exc.msg}", source=str(path)
            ) from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "<yaml>"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpaceError(where, f"YAML syntax error: {problem}", source=str(path)) from None


def load_space(path: str | Path) -> SearchSpace:
    """Loads a space from a ``.yaml``/``.yml``/``.json`` file, or a built-in space by name
    (``hybrid``, ``isotropic``, ...). Errors name the file, the field path and what is allowed."""
    p = Path(path)
    if not p.exists() and builtin_path(str(path)) is not None:
        p = builtin_path(str(path))  # type: ignore[assignment]
    return space_from_declaration(read_declaration(p), str(path))


def space_from_declaration(data: object, source: str) -> SearchSpace:
    """The space a parsed declaration describes: an ordinary one, or one ``around`` a model."""
    if isinstance(data, dict) and "around" in data:
        return _around(data, source)
    return (
        SearchSpace.from_dict(data, source=source)
        if isinstance(data, dict)
        else (_not_a_mapping(source, data))
    )


def _around(data: dict[str, object], source: str) -> SearchSpace:
    """``around: {zoo: NAME, depth: 1, width: [0.75, 1, 1.25], mixers: {...}}``: a space
    centred on a zoo model (see `search_space.zoo.space_around`)."""
    from search_space import zoo
    from search_space.errors import RegistryError
    from search_space.zoo.around import AROUND_KEYS

    extra = sorted(set(data) - {"around"})
    if extra:
        raise SpaceError(
            extra[0], "a space declared 'around' a model has no other keys", source=source
        )
    spec = data["around"]
    if not isinstance(spec, dict) or "zoo" not in spec:
        raise SpaceError("around.zoo", "is required (a zoo model name)", source=source)
    unknown = sorted(set(spec) - AROUND_KEYS)
    if unknown:
        allowed = ", ".join(sorted(AROUND_KEYS))
        raise SpaceError(f"around.{unknown[0]}", f"unknown key; allowed: {allowed}", source=source)
    try:
        zoo.info(str(spec["zoo"]))
    except RegistryError as err:
        raise SpaceError("around.zoo", str(err), source=source) from None
    kwargs = {k: v for k, v in spec.items() if k != "zoo"}
    try:
        return zoo.space_around(str(spec["zoo"]), **kwargs)  # type: ignore[arg-type]
    except SpaceError as err:
        raise err.with_source(source) from None


def _not_a_mapping(source: str, data: object) -> SearchSpace:
    raise SpaceError(
        "<root>",
        "a space file must hold a mapping at the top level",
        source=source,
        value=type(data).__name__,
    )
