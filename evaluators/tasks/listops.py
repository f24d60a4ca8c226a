"""ListOps: the value of a nested list expression (Nangia & Bowman 2018; Long Range Arena, Tay
et al. 2020). Written from the published description; no code taken from either.

An expression is ``[OP a1 a2 ... ]`` where OP is MIN, MAX, MED (median; the lower of the two
middle values for an even count) or SM (sum modulo 10), and each argument is a digit 0-9 or a
nested expression. Its value is a digit, the label (10 classes). Example, 14 tokens::

    [MAX 2 9 [MIN 4 7 ] 0 ]            -> 9
    [SM [MED 1 5 3 ] 8 [MAX 0 2 ] ]    -> (3 + 8 + 2) % 10 = 3

Tokens (the ids a ``tokens`` input with ``vocab_size >= 16`` receives; right-padded with 0):
``0`` padding, ``1..10`` the digits 0..9, ``11..14`` ``[MIN [MAX [MED [SM`` (an operator opens
its bracket, as in the original), ``15`` ``]``.

Drawing one expression: the root is an operator; every operator takes a uniform number of
arguments in ``2..max_args``; each argument is a nested expression with probability
``branch_prob`` while the nesting depth is below ``max_depth``, a uniform digit otherwise. An
expression longer than the input's ``seq_len`` (or shorter than ``min_fill`` times it) is
dropped, never cut. ListOps values are not uniform (MAX leans to 9, MIN to 0), so classes are
balanced by rejection: draws whose value's class is already full are dropped too, within a
bounded number of draws (an error names the class that could not be filled).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from evaluators.data import DatasetError
from evaluators.tasks.base import Knob, Task, input_error, register
from search_space.spec import InputSpec

PAD, DIGIT0, OP0, CLOSE = 0, 1, 11, 15
OPERATORS = ("MIN", "MAX", "MED", "SM")
VOCAB = ("<pad>", *(str(d) for d in range(10)), *(f"[{op}" for op in OPERATORS), "]")
VOCAB_SIZE = len(VOCAB)  # 16
SHORTEST = 4  # [OP d d ]
_DRAWS_PER_EXAMPLE = 200  # the rejection bound: at most this many draws per requested example
_BLOCK = 1 << 16  # uniform numbers drawn from numpy at a time

KNOBS = {
    "max_depth": Knob(int, 1, 20, "deepest nesting of brackets (1: a flat list)"),
    "max_args": Knob(int, 2, 20, "most arguments of an operator (at least 2)"),
    "branch_prob": Knob(float, 0.0, 0.95, "chance that an argument is a nested expression"),
    "min_fill": Knob(float, 0.0, 1.0, "shortest expression kept, as a fraction of seq_len"),
}
# at seq_len 128, medium keeps half of its draws (median ~50 tokens), hard a quarter (median ~80)
PRESETS: dict[str, dict[str, Any]] = {
    "easy": {"max_depth": 3, "max_args": 4, "branch_prob": 0.3, "min_fill": 0.0},
    "medium": {"max_depth": 5, "max_args": 5, "branch_prob": 0.4, "min_fill": 0.25},
    "hard": {"max_depth": 6, "max_args": 6, "branch_prob": 0.45, "min_fill": 0.5},
}


def settings(spec: InputSpec, knobs: Mapping[str, Any]) -> dict[str, Any]:
    """Checks that ``spec`` takes token ids listops can fill and returns the settings."""
    if spec.kind != "tokens" or not spec.vocab_size:
        raise input_error(
            "listops",
            "kind" if spec.kind != "tokens" else "vocab_size",
            spec.kind if spec.kind != "tokens" else spec.vocab_size,
            f"listops is token ids; allowed: kind tokens with vocab_size >= {VOCAB_SIZE}",
        )
    if spec.vocab_size < VOCAB_SIZE:
        raise input_error(
            "listops", "vocab_size", spec.vocab_size, f"allowed: >= {VOCAB_SIZE} (the token ids)"
        )
    if spec.seq_len < SHORTEST:
        raise input_error(
            "listops",
            "seq_len",
            spec.seq_len,
            f"expressions are never cut and take at least {SHORTEST} tokens; "
            f"allowed: >= {SHORTEST}",
        )
    min_length = math.ceil(float(knobs["min_fill"]) * spec.seq_len)
    return {
        "seq_len": int(spec.seq_len),
        "max_depth": int(knobs["max_depth"]),
        "max_args": int(knobs["max_args"]),
        "branch_prob": float(knobs["branch_prob"]),
        "min_length": min_length,
    }


def generate(labels: np.ndarray, rng: np.random.Generator, s: Mapping[str, Any]) -> np.ndarray:
    """``len(labels)`` expressions as uint8 ``N x seq_len`` token ids, expression ``i`` of value
    ``labels[i]`` (see the module docstring for the rejection rules)."""
    n = len(labels)
    length = int(s["seq_len"])
    out = np.zeros((n, length), dtype=np.uint8)
    slots = [list(np.flatnonzero(labels == c)[::-1]) for c in range(10)]  # filled from the end
    left = n
    uniform = _uniforms(rng)
    limit = _DRAWS_PER_EXAMPLE * n + 1000
    draws = 0
    while left and draws < limit:
        draws += 1
        drawn = _expression(uniform, s)
        if drawn is None:
            continue
        tokens, value = drawn
        if len(tokens) < s["min_length"] or not slots[value]:
            continue
        out[slots[value].pop(), : len(tokens)] = tokens
        left -= 1
    if left:
        short = min(range(10), key=lambda c: -len(slots[c]))
        raise DatasetError(
            f"listops: after {draws} draws class {short} still lacks {len(slots[short])} "
            f"expressions of {s['min_length']}..{length} tokens (seq_len {length}, max_depth "
            f"{s['max_depth']}, max_args {s['max_args']}, branch_prob {s['branch_prob']}); lower "
            "min_fill or change max_depth, max_args or branch_prob"
        )
    return out


def _uniforms(rng: np.random.Generator) -> Iterator[float]:
    """Uniform [0, 1) numbers from ``rng`` one at a time (drawn in blocks: fast and seeded)."""
    while True:
        yield from rng.random(_BLOCK).tolist()


class _TooLong(Exception):
    pass


def _expression(u: Iterator[float], s: Mapping[str, Any]) -> tuple[list[int], int] | None:
    """One drawn expression (tokens, value), or None once it outgrows ``seq_len``."""
    tokens: list[int] = []
    try:
        value = _node(u, 1, tokens, int(s["seq_len"]), s)
    except _TooLong:
        return None
    return tokens, value


def _node(
    u: Iterator[float], depth: int, tokens: list[int], limit: int, s: Mapping[str, Any]
) -> int:
    op = int(next(u) * len(OPERATORS))
    count = 2 + int(next(u) * (int(s["max_args"]) - 1))
    tokens.append(OP0 + op)
    nest = depth < int(s["max_depth"])
    branch = float(s["branch_prob"])
    values = []
    for _ in range(count):
        if nest and next(u) < branch:
            values.append(_node(u, depth + 1, tokens, limit, s))
        else:
            digit = int(next(u) * 10)
            tokens.append(DIGIT0 + digit)
            values.append(digit)
        if len(tokens) >= limit:  # the closing bracket still has to fit
            raise _TooLong
    tokens.append(CLOSE)
    return apply(OPERATORS[op], values)


def apply(op: str, values: list[int]) -> int:
    """The value of ``op`` over ``values`` (digits)."""
    if op == "MIN":
        return min(values)
    if op == "MAX":
        return max(values)
    if op == "MED":
        return sorted(values)[(len(values) - 1) // 2]
    return sum(values) % 10


def decode(ids: np.ndarray | torch.Tensor) -> str:
    """A token-id sequence as text (padding dropped), e.g. ``[MAX 2 9 ]``."""
    return " ".join(VOCAB[int(i)] for i in ids if int(i) != PAD)


def encode(raw: Mapping[str, np.ndarray], spec: InputSpec) -> dict[str, torch.Tensor]:
    """uint8 token ids as the int64 ``N x seq_len`` tensors a ``token_embed`` stem takes."""
    return {k: torch.from_numpy(v.astype(np.int64)) for k, v in raw.items()}


TASK = register(
    Task(
        name="listops",
        version=1,
        num_classes=10,
        knobs=KNOBS,
        presets=PRESETS,
        settings=settings,
        generate=generate,
        encode=encode,
        doc="long-range sequence task: value of a nested MIN/MAX/MED/SM expression (10 classes)",
    )
)
