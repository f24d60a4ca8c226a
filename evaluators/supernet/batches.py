"""The training batches of the supernet, step by step, optionally augmented and prepared in
worker processes.

The batch of step ``t`` depends on ``(seed, t)`` alone: the epoch's order is a seeded
permutation, and the augmentation of the batch draws from a generator seeded with the step. So
the number of loader processes never changes the result, and a resumed run sees the batches an
uninterrupted one would have.

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


def batch_of_step(
    data: Dataset, batch_size: int, seed: int, step: int, augment: str = "none"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (inputs, labels) of step ``step``: full batches of a seeded per-epoch permutation."""
    n = len(data.y_train)
    size = max(1, min(batch_size, n))
    per_epoch = max(1, n // size)  # full batches: batch norm needs more than one sample
    epoch, position = divmod(step, per_epoch)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    index = torch.randperm(n, generator=gen)[position * size : (position + 1) * size]
    x, y = data.x_train[index], data.y_train[index]
    if augment != "none" and x.dim() == 4 and x.is_floating_point():
        x = _augment(x, augment, torch.Generator().manual_seed(seed * 7_919 + step))
    return x, y


def _augment(x: torch.Tensor, augment: str, gen: torch.Generator) -> torch.Tensor:
    b, _, h, w = x.shape
    pad_h, pad_w = max(1, h // 8), max(1, w // 8)
    padded = F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    top = torch.randint(0, 2 * pad_h + 1, (b,), generator=gen)
    left = torch.randint(0, 2 * pad_w + 1, (b,), generator=gen)
    rows = (top[:, None] + torch.arange(h)[None, :])[:, None, :, None]  # (b, 1, h, 1)
    cols = (left[:, None] + torch.arange(w)[None, :])[:, None, None, :]  # (b, 1, 1, w)
    batch = torch.arange(b)[:, None, None, None]
    channel = torch.arange(x.shape[1])[None, :, None, None]
    out = padded[batch, channel, rows, cols]
    if augment == "crop_flip":
        flip = torch.rand(b, generator=gen) < 0.5
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    return out


class _StepBatches(TorchDataset[tuple[torch.Tensor, torch.Tensor]]):
    """Item ``i`` is the batch of step ``first + i`` (a loader worker computes whole batches)."""

    def __init__(
        self, data: Dataset, batch_size: int, seed: int, first: int, last: int, augment: str
    ) -> None:
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.first, self.last, self.augment = first, last, augment

    def __len__(self) -> int:
        return max(0, self.last - self.first)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        step = self.first + i
        return batch_of_step(self.data, self.batch_size, self.seed, step, self.augment)


def step_batches(
    data: Dataset,
    *,
    batch_size: int,
    seed: int,
    first: int,
    last: int,
    augment: str = "none",
    workers: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of steps ``first`` .. ``last - 1`` in order; with ``workers`` > 0 they are
    prepared ahead in that many processes (torch's `DataLoader`, two batches each)."""
    if workers <= 0:
        for step in range(first, last):
            yield batch_of_step(data, batch_size, seed, step, augment)
        return
    items = _StepBatches(data, batch_size, seed, first, last, augment)
    # batch_size=None: each item already is a batch; the loader keeps their order
    loader = DataLoader(items, batch_size=None, shuffle=False, num_workers=workers)
    yield from loader
