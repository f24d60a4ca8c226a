"""The training batches of the supernet, step by step, optionally augmented and prepared in
worker processes.

The batch of step ``t`` depends on ``(seed, t)`` alone: the epoch's order is a seeded
permutation, and the augmentation of the batch draws from a generator seeded with the step. So
the number of loader processes never changes the result, and a resumed run sees the batches an
uninterrupted one would have. ``batch_size`` is the global batch: data-parallel training
(`evaluators.supernet.distributed`) hands each rank some of its rows (``rows``), and the rows a
rank takes are drawn and augmented exactly as in the whole batch, so the number of ranks never
changes which samples a step trains on.

Augmentations (image inputs only):

* ``none``: the samples as loaded;
* ``crop``: pad 1/8 of the side by reflection, then a random crop back to the side (the
  translation jitter of CIFAR/MNIST training recipes);
* ``crop_flip``: the crop, then a horizontal flip with probability 1/2 (not for digits, whose
  mirror image is another glyph).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from evaluators.data import Dataset

AUGMENTATIONS = ("none", "crop", "crop_flip")


def batch_size_of(data: Dataset, batch_size: int) -> int:
    """The rows of a step's batch: ``batch_size``, at most the training split."""
    return max(1, min(batch_size, len(data.y_train)))


def batch_of_step(
    data: Dataset,
    batch_size: int,
    seed: int,
    step: int,
    augment: str = "none",
    rows: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (inputs, labels) of step ``step``: full batches of a seeded per-epoch permutation;
    with ``rows`` (positions in that batch) only those rows, drawn as in the whole batch."""
    n = len(data.y_train)
    size = batch_size_of(data, batch_size)
    per_epoch = max(1, n // size)  # full batches: batch norm needs more than one sample
    epoch, position = divmod(step, per_epoch)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    index = torch.randperm(n, generator=gen)[position * size : (position + 1) * size]
    if rows is not None:
        index = index[rows]
    x, y = data.x_train[index], data.y_train[index]
    if augment != "none" and x.dim() == 4 and x.is_floating_point():
        gen = torch.Generator().manual_seed(seed * 7_919 + step)
        x = _augment(x, augment, gen, size, rows)
    return x, y


def _augment(
    x: torch.Tensor,
    augment: str,
    gen: torch.Generator,
    size: int | None = None,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Crops (and flips) ``x``; the offsets are drawn for the whole batch of ``size`` rows and
    ``rows`` picks those of ``x``'s samples, so a rank's rows get the whole batch's jitter."""
    b, _, h, w = x.shape
    size = b if size is None else size
    pad_h, pad_w = max(1, h // 8), max(1, w // 8)
    padded = F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    top = torch.randint(0, 2 * pad_h + 1, (size,), generator=gen)
    left = torch.randint(0, 2 * pad_w + 1, (size,), generator=gen)
    flip = torch.rand(size, generator=gen) < 0.5 if augment == "crop_flip" else None
    if rows is not None:
        top, left = top[rows], left[rows]
        flip = None if flip is None else flip[rows]
    rows = (top[:, None] + torch.arange(h)[None, :])[:, None, :, None]  # (b, 1, h, 1)
    cols = (left[:, None] + torch.arange(w)[None, :])[:, None, None, :]  # (b, 1, 1, w)
    batch = torch.arange(b)[:, None, None, None]
    channel = torch.arange(x.shape[1])[None, :, None, None]
    out = padded[batch, channel, rows, cols]
    if flip is not None:
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    return out


class _StepBatches(TorchDataset[tuple[torch.Tensor, torch.Tensor]]):
    """Item ``i`` is the batch of step ``first + i`` (a loader worker computes whole batches)."""

    def __init__(
        self,
        data: Dataset,
        batch_size: int,
        seed: int,
        first: int,
        last: int,
        augment: str,
        rows: torch.Tensor | None = None,
    ) -> None:
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.first, self.last, self.augment, self.rows = first, last, augment, rows

    def __len__(self) -> int:
        return max(0, self.last - self.first)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        step = self.first + i
        return batch_of_step(self.data, self.batch_size, self.seed, step, self.augment, self.rows)


def step_batches(
    data: Dataset,
    *,
    batch_size: int,
    seed: int,
    first: int,
    last: int,
    augment: str = "none",
    workers: int = 0,
    rows: torch.Tensor | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of steps ``first`` .. ``last - 1`` in order (only ``rows`` of each, if
    given); with ``workers`` > 0 they are prepared ahead in that many processes (torch's
    `DataLoader`, two batches each)."""
    if workers <= 0:
        for step in range(first, last):
            yield batch_of_step(data, batch_size, seed, step, augment, rows)
        return
    items = _StepBatches(data, batch_size, seed, first, last, augment, rows)
    # batch_size=None: each item already is a batch; the loader keeps their order
    loader = DataLoader(items, batch_size=None, shuffle=False, num_workers=workers)
    yield from loader
