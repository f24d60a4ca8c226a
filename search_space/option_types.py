"""Declared options of plug-ins: each option's type and range, checked before any work starts.

A strategy or an evaluator lists its options as ``option_types = {"population_size":
Opt("int", min=1, max=100_000), ...}``. `mixnas.job` checks a config's ``strategy.options`` and
each evaluator's ``options`` against the declaration when the config is read, so a wrong type or
a value out of range is a one-line error naming the field, before the run folder exists, instead
of a ``TypeError`` in the middle of a run. `check_options` is the one check; a plug-in without a
declaration is checked by its constructor alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from search_space.errors import MixnasError, shorten

KINDS = ("int", "float", "bool", "str", "mapping", "str_list", "number_list", "any")
_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "mapping": "a mapping",
    "str_list": "a list of strings",
    "number_list": "a list of numbers",
    "any": "any value",
}


class OptionError(MixnasError, ValueError):
    """An option has the wrong type or is out of its declared range (one line)."""

    def __init__(self, key: str, message: str, value: Any = ...) -> None:
        self.key, self.message, self.value = key, message, value
        shown = "" if value is ... else f" (got {shorten(value)})"
        super().__init__(f"{key}: {message}{shown}")


@dataclass(frozen=True)
class Opt:
    """One option: its kind (see `KINDS`), an inclusive range for numbers (and for the items of
    a number list), the allowed values of a string, whether null is allowed."""

    kind: str
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] = ()
    nullable: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown option kind {self.kind!r}; known: {', '.join(KINDS)}")

    def describe(self) -> str:
        """What a valid value is, in words: ``an integer in [1, 100000]``."""
        text = _WORDS[self.kind]
        if self.choices:
            text = "one of " + ", ".join(map(str, self.choices))
        elif self.min is not None and self.max is not None:
            text += f" in [{self.min:g}, {self.max:g}]"
        elif self.min is not None:
            text += f" >= {self.min:g}"
        elif self.max is not None:
            text += f" <= {self.max:g}"
        return f"{text} or null" if self.nullable else text

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if self.kind == "any":
            return True
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "str":
            return isinstance(value, str) and (not self.choices or value in self.choices)
        if self.kind == "mapping":
            return isinstance(value, Mapping) and all(isinstance(k, str) for k in value)
        if self.kind == "str_list":
            return _listlike(value) and all(
                isinstance(v, str) and (not self.choices or v in self.choices) for v in value
            )
        if self.kind == "number_list":
            return _listlike(value) and all(self._number(v, integer=False) for v in value)
        return self._number(value, integer=self.kind == "int")

    def _number(self, value: Any, *, integer: bool) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if integer and not isinstance(value, int):
            return False
        if not integer and not math.isfinite(value):
            return False
        low = self.min if self.min is not None else -math.inf
        high = self.max if self.max is not None else math.inf
        return low <= value <= high


def _listlike(value: Any) -> bool:
    return isinstance(value, list | tuple)


def check_options(options: Mapping[Any, Any], declared: Mapping[str, Opt], owner: str) -> None:
    """Raises `OptionError` for the first option of ``options`` that ``declared`` does not
    name, or whose value it does not accept; ``owner`` names the plug-in in the message."""
    for key, value in options.items():
        opt = declared.get(key) if isinstance(key, str) else None
        if opt is None:
            allowed = ", ".join(sorted(declared)) or "none"
            raise OptionError(str(key), f"unknown option of {owner}; allowed: {allowed}")
        if not opt.accepts(value):
            raise OptionError(key, f"must be {opt.describe()}", value)
