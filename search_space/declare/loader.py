"""Reading a space declaration from a YAML or JSON file (or a built-in space's name)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from search_space import paths
from search_space.declare.space import SearchSpace
from search_space.errors import SpaceError, shorten
from search_space.spaces import builtin_path
from search_space.spec import ArchSpec

MAX_FILE_BYTES = 16 * 2**20  # a space, config or spec file; far above any real one
MAX_NESTING = 64  # levels of mappings and lists; a real spec or config has about ten
MAX_VALUES = 1_000_000  # values after YAML aliases are expanded (a "billion laughs" file)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``6.0e6`` and ``1e5`` as floats (YAML 1.2, JSON and Python
    do; YAML 1.1 insists on a signed exponent and would silently read a string), and refusing a
    key given twice in one mapping (YAML 1.2 forbids it; PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[object, object]:
        if isinstance(node, yaml.MappingNode):
            seen: set[object] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # '<<: *base' merges defaults that later keys may override
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    continue  # an unhashable key: the safe constructor names it below
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {shorten(key)} (YAML forbids a key twice in one mapping)",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep)  # type: ignore[no-any-return]


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_text(path: str | Path, *, what: str = "file") -> str:
    """A file's text, checked: readable, at most `MAX_FILE_BYTES`, UTF-8 (a BOM is allowed).
    Each problem raises `SpaceError` naming the file (and the offset of an undecodable byte)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise SpaceError("<file>", f"cannot be read: {why}", source=str(path)) from None
    if len(data) > MAX_FILE_BYTES:
        raise SpaceError(
            "<file>",
            f"is larger than the {MAX_FILE_BYTES // 2**20} MiB a {what} may have",
            source=str(path),
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpaceError(
            "<file>",
            f"is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} cannot be "
            f"decoded (is it a binary or a {what} saved in another encoding?)",
            source=str(path),
        ) from None


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def parse_json(text: str, source: str) -> object:
    """JSON text, parsed and checked like a declaration (`check_structure`); a syntax error, a
    key given twice or nesting too deep raises `SpaceError` naming ``source``."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise SpaceError(
            f"line {exc.lineno}", f"JSON syntax error: {exc.msg}", source=source
        ) from None
    except _DuplicateKey as exc:
        raise SpaceError(
            "<json>", f"a key is given twice in one object: {shorten(exc.args[0])}", source=source
        ) from None
    except RecursionError:
        raise _too_deep(source) from None
    check_structure(data, source)
    return data


def parse_yaml(text: str, source: str) -> object:
    """YAML text with `_Loader`; errors as in `parse_json`."""
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "<yaml>"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpaceError(where, f"YAML syntax error: {problem}", source=source) from None
    except RecursionError:
        raise _too_deep(source) from None
    check_structure(data, source)
    return data


def _too_deep(source: str) -> SpaceError:
    return SpaceError(
        "<file>",
        f"is nested more than {MAX_NESTING} levels deep (mappings and lists)",
        source=source,
    )


def check_structure(data: object, source: str) -> None:
    """Refuses parsed data nested more than `MAX_NESTING` levels, or holding more than
    `MAX_VALUES` values once YAML aliases are expanded, before any recursive code sees it.
    Iterative; a shared (aliased) value is measured once and counted where it is used."""
    measured: dict[int, tuple[int, int]] = {}  # id -> (height, values) of the expanded value
    if not isinstance(data, dict | list):
        return
    stack: list[tuple[object, int, bool]] = [(data, 1, False)]
    while stack:
        value, depth, children_done = stack.pop()
        if depth > MAX_NESTING:
            raise _too_deep(source)
        items: list[object] = list(value.values()) if isinstance(value, dict) else list(value)  # type: ignore[call-overload]
        if not children_done:
            if id(value) in measured:
                continue
            measured[id(value)] = (1, 1)  # provisional; safe YAML has no cycles
            stack.append((value, depth, True))
            stack.extend((v, depth + 1, False) for v in items if isinstance(v, dict | list))
            continue
        height, values = 1, 1
        for v in items:
            h, n = measured[id(v)] if isinstance(v, dict | list) else (0, 1)
            height, values = max(height, h + 1), values + n
        if height > MAX_NESTING:
            raise _too_deep(source)
        if values > MAX_VALUES:
            raise SpaceError(
                "<file>",
                f"holds more than {MAX_VALUES:,} values (after expanding YAML aliases)",
                source=source,
            )
        measured[id(value)] = (height, values)


def read_declaration(path: str | Path) -> object:
    """The parsed content of a YAML or JSON file (YAML with `_Loader`'s rules); each problem
    (unreadable, too large, not UTF-8, a syntax error, a duplicate key, nesting too deep)
    raises `SpaceError` naming the file. Used for spaces and run configs."""
    path = Path(path)
    text = read_text(path, what="declaration")
    if path.suffix == ".json":
        return parse_json(text, str(path))
    return parse_yaml(text, str(path))


def load_space(path: str | Path) -> SearchSpace:
    """Loads a space from a ``.yaml``/``.yml``/``.json`` file, or a built-in space by name
    (``hybrid``, ``isotropic``, ...). Errors name the file, the field path and what is allowed."""
    p = Path(path)
    if not paths.exists(p) and builtin_path(str(path)) is not None:
        p = builtin_path(str(path))  # type: ignore[assignment]
    return space_from_declaration(read_declaration(p), str(path))


def load_spec(path: str | Path) -> ArchSpec:
    """A spec file (or an exported record, whose spec is under ``spec``), checked like every
    loader: readable, UTF-8, within the size and nesting limits, no key twice, a valid spec."""
    from search_space.plan import validate_spec

    source = str(path)
    data = parse_json(read_text(path, what="spec file"), source)
    if isinstance(data, list):
        raise SpaceError(
            "<root>",
            f"holds a JSON list of {len(data)} item(s), as 'mixnas space sample --json' writes; "
            "a spec file holds one spec (one item's 'spec' object, or an exported record)",
            source=source,
        )
    if isinstance(data, dict) and "spec" in data and "stages" not in data:
        data = data["spec"]  # an exported record ({"id", "spec", metrics...})
    return validate_spec(ArchSpec.from_dict(data, source=source), source=source)


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
