"""Trial statuses: the one definition every package uses (evaluators, strategies, run records).

A status is a `str` enum, so a member compares equal to its string, hashes like it and is
written to JSON and SQLite as that string: records stored before the enum existed load unchanged,
and a status read back from a store (a plain ``str``) compares equal to the member.
"""

from __future__ import annotations

from enum import Enum


class StringEnum(str, Enum):
    """A `str` enum that prints as its value (what `enum.StrEnum` does from Python 3.11 on; the
    project supports 3.10). ``repr`` is the value's too, so messages and tuples of members read as
    the stored strings do."""

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return repr(self.value)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """The allowed strings, in declaration order."""
        return tuple(str(m.value) for m in cls)


class TrialStatus(StringEnum):
    """Where a trial stands. ``running`` exists only in a run's store (a trial started, not yet
    told); an evaluation or an observation is always one of the finished ones."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    PRUNED = "pruned"  # stopped early by a multi-fidelity schedule or screened out


FINISHED: tuple[TrialStatus, ...] = (TrialStatus.OK, TrialStatus.FAILED, TrialStatus.PRUNED)
# a dict lookup, not `TrialStatus(value)`: records and observations are read by the 100,000
BY_VALUE: dict[str, TrialStatus] = {str(s.value): s for s in TrialStatus}
_FINISHED_BY_VALUE = {str(s.value): s for s in FINISHED}


def finished_status(value: str, what: str = "status") -> TrialStatus:
    """``value`` as a finished `TrialStatus`; a ValueError naming ``what`` and the allowed ones
    otherwise."""
    try:
        return _FINISHED_BY_VALUE[value]
    except (KeyError, TypeError):
        raise ValueError(f"{what} must be one of {', '.join(FINISHED)}, got {value!r}") from None
