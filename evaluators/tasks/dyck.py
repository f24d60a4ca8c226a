"""Dyck: well-nested strings of several bracket kinds, a language-modelling and counting task.

A Dyck-k word nests ``kinds`` kinds of brackets, e.g. with two kinds ``( [ ] ( ) )``. As a causal
language-modelling corpus (``train`` with ``task: causal_lm``, `evaluators.tasks.language`) an
opening bracket is a random choice, but every closing bracket is determined by the stack of
brackets still open, so the perplexity a model reaches measures how well its token mixers keep
that stack over the sequence (the formal-language probes of sequence models, e.g. Hahn 2020,
Yao et al. 2021). As a classification task the label is the word's nesting depth minus one (8
classes: depth 1..8), a global counting property. Written from the definition; no code taken.

Tokens (ids below ``vocab_size``; right-padded with 0): ``0`` padding, ``1..kinds`` the opening
brackets, ``kinds + 1..2 kinds`` the matching closing ones.

Drawing a word of depth D (the label + 1): its length is an even number drawn uniformly between
``min_fill`` times ``seq_len`` (at least 2 D) and ``seq_len``; it is a random walk of that many
steps that never goes below 0 or above D and ends at 0: each step opens a bracket (of a uniform
kind) with probability ``open_prob`` unless the depth is D or the steps left are needed to close
every open bracket, and closes the innermost one otherwise. A walk that never reaches D is drawn
again, within a bounded number of draws (an error names the depth that could not be drawn).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from evaluators.data import DatasetError
from evaluators.tasks.base import Knob, Task, input_error, register
from search_space.spec import InputSpec

PAD = 0
DEPTHS = 8  # classes: nesting depth 1..8
_DRAWS_PER_EXAMPLE = 100

KNOBS = {
    "kinds": Knob(int, 1, 15, "bracket kinds k; the ids need vocab_size >= 2 k + 1"),
    "open_prob": Knob(float, 0.2, 0.9, "chance that a free step opens a bracket"),
    "min_fill": Knob(float, 0.0, 1.0, "shortest word kept, as a fraction of seq_len"),
}
PRESETS: dict[str, dict[str, Any]] = {
    "easy": {"kinds": 2, "open_prob": 0.5, "min_fill": 0.0},
    "medium": {"kinds": 4, "open_prob": 0.5, "min_fill": 0.25},
    "hard": {"kinds": 8, "open_prob": 0.55, "min_fill": 0.5},
}


def vocab_size(kinds: int) -> int:
    """Padding plus an opening and a closing id per kind."""
    return 2 * kinds + 1


def settings(spec: InputSpec, knobs: Mapping[str, Any]) -> dict[str, Any]:
    """Checks that ``spec`` takes token ids that hold the brackets and the deepest word."""
    kinds = int(knobs["kinds"])
    if spec.kind != "tokens" or not spec.vocab_size:
        raise input_error(
            "dyck",
            "kind" if spec.kind != "tokens" else "vocab_size",
            spec.kind if spec.kind != "tokens" else spec.vocab_size,
            "dyck is token ids; allowed: kind tokens with a vocab_size",
        )
    if spec.vocab_size < vocab_size(kinds):
        raise input_error(
            "dyck",
            "vocab_size",
            spec.vocab_size,
            f"{kinds} bracket kinds need ids 0..{2 * kinds}; allowed: >= {vocab_size(kinds)} "
            "(or fewer kinds)",
        )
    if spec.seq_len < 2 * DEPTHS:
        raise input_error(
            "dyck",
            "seq_len",
            spec.seq_len,
            f"a word of depth {DEPTHS} takes {2 * DEPTHS} tokens; allowed: >= {2 * DEPTHS}",
        )
    return {
        "seq_len": int(spec.seq_len),
        "kinds": kinds,
        "open_prob": float(knobs["open_prob"]),
        "min_length": math.ceil(float(knobs["min_fill"]) * spec.seq_len),
    }


def generate(labels: np.ndarray, rng: np.random.Generator, s: Mapping[str, Any]) -> np.ndarray:
    """``len(labels)`` words as uint8 ``N x seq_len`` ids, word ``i`` of depth ``labels[i] + 1``."""
    length = int(s["seq_len"])
    out = np.zeros((len(labels), length), dtype=np.uint8)
    for i, label in enumerate(labels.tolist()):
        depth = int(label) + 1
        for _ in range(_DRAWS_PER_EXAMPLE):
            word = _walk(rng, depth, s)
            if word is not None:
                out[i, : len(word)] = word
                break
        else:
            raise DatasetError(
                f"dyck: no word of depth {depth} in {_DRAWS_PER_EXAMPLE} draws (seq_len "
                f"{length}, open_prob {s['open_prob']}, min_fill {s['min_length']}/{length}); "
                "raise open_prob or lower min_fill"
            )
    return out


def _walk(rng: np.random.Generator, depth: int, s: Mapping[str, Any]) -> list[int] | None:
    """One word of nesting depth at most ``depth``, or None when it stays below it."""
    length, kinds = int(s["seq_len"]), int(s["kinds"])
    shortest = max(2 * depth, int(s["min_length"]) + int(s["min_length"]) % 2)
    if shortest > length:
        return None
    steps = 2 * int(rng.integers(shortest // 2, length // 2 + 1))
    coins = rng.random(steps)
    kind_draws = rng.integers(1, kinds + 1, steps)
    stack: list[int] = []
    word: list[int] = []
    deepest = 0
    for t in range(steps):
        left = steps - t
        must_close = len(stack) >= left or len(stack) == depth
        if stack and (must_close or coins[t] >= float(s["open_prob"])):
            word.append(stack.pop() + kinds)
        else:
            kind = int(kind_draws[t])
            stack.append(kind)
            word.append(kind)
            deepest = max(deepest, len(stack))
    return word if deepest == depth else None


def depth_of(ids: np.ndarray | torch.Tensor, kinds: int) -> int:
    """The nesting depth of a word (padding ignored); raises ValueError when it is not well
    nested (a check for tests and users)."""
    stack: list[int] = []
    deepest = 0
    for i in (int(v) for v in ids):
        if i == PAD:
            continue
        if i <= kinds:
            stack.append(i)
            deepest = max(deepest, len(stack))
        elif not stack or stack.pop() != i - kinds:
            raise ValueError("not a well-nested word")
    if stack:
        raise ValueError("not a well-nested word: brackets left open")
    return deepest


def encode(raw: Mapping[str, np.ndarray], spec: InputSpec) -> dict[str, torch.Tensor]:
    """uint8 token ids as the int64 ``N x seq_len`` tensors a ``token_embed`` stem takes."""
    return {k: torch.from_numpy(v.astype(np.int64)) for k, v in raw.items()}


TASK = register(
    Task(
        name="dyck",
        version=1,
        num_classes=DEPTHS,
        knobs=KNOBS,
        presets=PRESETS,
        settings=settings,
        generate=generate,
        encode=encode,
        doc="nested brackets of k kinds: a causal LM corpus (closers follow the stack); "
        "classification: nesting depth (8 classes)",
    )
)
