"""Causal language-modelling data: token sequences as inputs and next-token targets.

`lm_dataset(source, input_spec, seed=..., options=...)` is what the ``train`` evaluator loads for
``task: causal_lm``. It returns a `evaluators.data.Dataset` whose inputs are ``N x L`` token ids
(L = the spec's ``seq_len``) and whose targets ``y`` are ``N x L`` too: ``y[:, t]`` is the token
that follows position t, or `IGNORE` where there is none (padding, the end of a sequence), so a
model with an LM head (logits ``N x L x vocab``) is trained and scored on every real next token.

Sources:

* ``None`` or ``dyck`` (the default), or any generated token task (``listops``): the task's
  sequences (`evaluators.tasks`, with its options: sizes, difficulty, knobs), right-padded with
  id 0, which is never a target; the task's class labels are not used.
* a path to an ``.npz`` file with an integer array ``x`` (``N x L'`` token ids below the spec's
  ``vocab_size``; an array ``y``, if any, is ignored). Each row gives inputs ``row[:L]`` and
  targets ``row[1:L + 1]``: rows longer than L + 1 are cut, shorter ones padded, and the padded
  positions are never targets. Option ``pad_id`` names an id that marks padding inside the
  rows (not a target either); ``val_fraction`` (0.2) sets the seeded validation split.

Deterministic per seed, as the generated tasks (which are cached on disk) and the file splits are.
Errors are one-line `evaluators.data.DatasetError`s naming the file or option.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluators.data import Dataset, DatasetError
from search_space.spec import InputSpec

IGNORE = -100  # the target of a position without a next token (torch's cross-entropy default)
DEFAULT_SOURCE = "dyck"
_NPZ_OPTIONS = ("pad_id", "val_fraction")


def next_tokens(x: torch.Tensor, pad: int | None = 0) -> torch.Tensor:
    """``N x L`` targets: the id after each position, `IGNORE` after the last position and where
    the next id is ``pad`` (None: every id is a token)."""
    y = torch.full_like(x, IGNORE)
    y[:, :-1] = x[:, 1:]
    if pad is not None:
        y[:, :-1][x[:, 1:] == pad] = IGNORE
    return y


def lm_dataset(
    source: str | Path | None,
    input_spec: InputSpec,
    *,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
) -> Dataset:
    """Inputs and next-token targets from ``source`` for ``input_spec`` (see the module
    docstring)."""
    options = dict(options or {})
    if input_spec.kind != "tokens" or not input_spec.vocab_size:
        raise DatasetError(
            "causal_lm: input.kind: next-token prediction reads token ids; allowed: kind tokens "
            f"with a vocab_size (got kind {input_spec.kind!r}, vocab_size {input_spec.vocab_size})"
        )
    name = DEFAULT_SOURCE if source is None else str(source)
    from evaluators.tasks import TASKS, load_task, names

    if name in names():
        # the task's own class count: its labels are drawn but not used as targets
        spec = dataclasses.replace(input_spec, num_classes=TASKS[name].num_classes)
        data = load_task(name, spec, seed=seed, options=options)
        assert data.x_test is not None
        return Dataset(
            f"{name} (causal_lm)",
            data.x_train,
            next_tokens(data.x_train),
            data.x_val,
            next_tokens(data.x_val),
            input_spec.vocab_size,
            x_test=data.x_test,
            y_test=next_tokens(data.x_test),
        )
    path = Path(name)
    if path.suffix == ".npz" and path.is_file():
        return _npz(path, input_spec, seed, options)
    raise DatasetError(
        f"causal_lm: unknown data {name!r}; allowed: {', '.join(names())} (token tasks) or a "
        "path to an .npz file with an array x of token sequences"
    )


def check_lm_source(source: Any, options: Mapping[str, Any], input_spec: InputSpec | None) -> None:
    """Checks an LM data source and its options without generating or reading anything (a
    search config's check before its first trial); raises a one-line `DatasetError`."""
    from evaluators.data import dataset_source
    from evaluators.tasks import TASKS, names, resolve

    if isinstance(source, Mapping):
        source, given = dataset_source(source)
        options = {**given, **options}
    name = DEFAULT_SOURCE if source is None else str(source)
    if name in names():
        if input_spec is not None:
            spec = dataclasses.replace(input_spec, num_classes=TASKS[name].num_classes)
            resolve(name, spec, options)
        return
    path = Path(name)
    if path.suffix != ".npz" or not path.is_file():
        raise DatasetError(
            f"causal_lm: unknown data {name!r}; allowed: {', '.join(names())} (token tasks) or a "
            "path to an .npz file with an array x of token sequences"
        )
    _npz_options(path, options)


def _npz_options(path: Path, options: Mapping[str, Any]) -> tuple[int | None, float]:
    """The ``pad_id`` and ``val_fraction`` of an LM ``.npz`` source, checked."""
    unknown = sorted(set(options) - set(_NPZ_OPTIONS))
    if unknown:
        raise DatasetError(
            f"{path}: unknown option {unknown[0]!r}; allowed: {', '.join(_NPZ_OPTIONS)}"
        )
    pad = options.get("pad_id")
    if pad is not None and (isinstance(pad, bool) or not isinstance(pad, int)):
        raise DatasetError(f"{path}: pad_id: must be an integer token id or null (got {pad!r})")
    fraction = options.get("val_fraction", 0.2)
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise DatasetError(
            f"{path}: val_fraction: must lie strictly between 0 and 1 (got {fraction!r})"
        )
    return pad, float(fraction)


def _npz(path: Path, spec: InputSpec, seed: int, options: Mapping[str, Any]) -> Dataset:
    pad, fraction = _npz_options(path, options)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays.files:
                raise DatasetError(
                    f"{path}: missing array 'x'; an LM .npz needs x, an N x L integer array of "
                    f"token ids (found: {', '.join(arrays.files) or 'none'})"
                )
            raw = np.asarray(arrays["x"])
    except DatasetError:
        raise
    except Exception as exc:  # zip/pickle errors of a corrupt file: say so in one line
        raise DatasetError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None
    if raw.ndim != 2 or not np.issubdtype(raw.dtype, np.integer) or len(raw) < 2:
        raise DatasetError(
            f"{path}: x must be an N x L integer array of token ids with N >= 2 (got {raw.dtype} "
            f"with shape {raw.shape})"
        )
    if raw.size and (raw.min() < 0 or raw.max() >= spec.vocab_size):
        raise DatasetError(
            f"{path}: x: token ids must lie in 0..{spec.vocab_size - 1} (the spec's vocab_size); "
            f"got {raw.min()}..{raw.max()}"
        )
    length = spec.seq_len
    window = torch.zeros((len(raw), length + 1), dtype=torch.int64)
    given = min(raw.shape[1], length + 1)
    window[:, :given] = torch.from_numpy(raw[:, :given].astype(np.int64))
    x, y = window[:, :length].contiguous(), window[:, 1:].clone()
    y[:, max(0, given - 1) :] = IGNORE  # positions whose next token the file does not hold
    if pad is not None:
        y[y == pad] = IGNORE
    n = len(raw)
    n_val = min(n - 1, max(1, round(n * fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))
    val, train = order[:n_val], order[n_val:]
    return Dataset(str(path), x[train], y[train], x[val], y[val], spec.vocab_size)
