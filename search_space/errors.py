"""The small exception hierarchy of mixnas.

Every error raised on user input names where it came from (file, field path), the bad value and what
is allowed, so that the CLI can print it as one line and exit with status 2.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any


def shorten(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters, saying how long it was: error
    messages stay one readable line however large the offending value."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # a huge int (> 4300 digits), a cyclic value
        text = f"<{type(value).__name__}>"
    if isinstance(value, int) and not isinstance(value, bool) and len(text) > 24:
        return f"{text[:6]}...({len(text)} digits)"
    if len(text) <= limit:
        return text
    if isinstance(value, str | PurePath) and len(text) <= 4 * limit and "\n" not in str(value):
        return text  # a path or name of one line: whole, the user needs all of it
    return f"{text[: limit - 20]}... ({len(text):,} characters)"


class MixnasError(Exception):
    """Base class of every error mixnas raises on purpose."""


class SpaceError(MixnasError, ValueError):
    """A search-space declaration or an architecture spec is invalid.

    Args:
        field: dotted path of the offending field, e.g. ``stages[1].width``.
        message: what is wrong and what is allowed.
        source: the file (or other origin) the declaration came from.
        value: the offending value, when there is one.
    """

    def __init__(self, field: str, message: str, *, source: str | None = None, value: Any = ...):
        self.field = field
        self.source = source
        self.value = value
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.source}: " if self.source else ""
        shown = "" if self.value is ... else f" (got {shorten(self.value)})"
        return f"{where}{self.field}: {self.message}{shown}"

    def with_source(self, source: str) -> SpaceError:
        """Returns the same error, attributed to ``source`` (a file path)."""
        return SpaceError(self.field, self.message, source=source, value=self.value)


class RegistryError(MixnasError, KeyError):
    """An unknown or duplicate name in a registry."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class RunFolderError(MixnasError, ValueError):
    """A run folder's file is missing, unreadable or damaged (the message names the file and
    what is wrong, in one line)."""


class InfeasibleError(MixnasError, RuntimeError):
    """No architecture satisfying the constraints was found within the allowed tries."""
