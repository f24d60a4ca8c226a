"""Mixup and CutMix on a training batch, with soft targets.

Who calls what, when: the training loop (`evaluators.fulltrain.loop`) makes one `BatchMixer` per
epoch with a generator seeded by ``(seed, epoch)`` and calls it on every batch; the loss is then
`soft_cross_entropy` of the logits against the mixed targets. Seeding per epoch means a run resumed
at an epoch boundary draws exactly the mixing an uninterrupted run draws, with no state to save.

As timm's ``Mixup`` does: a batch is mixed with probability ``mix_prob``; each example is paired
with the batch's reverse (``x.flip(0)``); with both methods on, CutMix is chosen with probability
``mix_switch_prob``. Mixup: ``lam * x + (1 - lam) * x_flipped`` with ``lam ~ Beta(a, a)``
(Zhang et al., ICLR 2018). CutMix: a box of area ``1 - lam`` pasted from the paired image, ``lam``
then corrected to the box actually pasted after clipping (Yun et al., ICCV 2019). The targets are
the label-smoothed one-hots mixed by the same ``lam``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from evaluators.fulltrain.recipe import TrainError, TrainRecipe
from search_space.spec import InputSpec


def check_mixing(
    recipe: TrainRecipe, inp: InputSpec, source: str = "recipe", task: str = "classification"
) -> None:
    """Mixup needs float inputs and CutMix images: a token model cannot take either. Both mix
    one label per input: a task with other targets (a mask, an image, next tokens) is refused."""
    if recipe.mix_prob <= 0:
        return
    if task != "classification":
        for key in ("mixup_alpha", "cutmix_alpha"):
            value = getattr(recipe, key)
            if value > 0:
                raise TrainError(
                    f"{source}: {key}: mixup and CutMix mix class labels, but the task is "
                    f"{task}; allowed: 0 (got {value})"
                )
    if recipe.cutmix_alpha > 0 and inp.kind != "image":
        raise TrainError(
            f"{source}: cutmix_alpha: CutMix pastes image boxes, but the spec's input is "
            f"{inp.kind!r}; allowed: 0 (got {recipe.cutmix_alpha})"
        )
    if recipe.mixup_alpha > 0 and inp.vocab_size:
        raise TrainError(
            f"{source}: mixup_alpha: token ids cannot be mixed; allowed: 0 for a token model "
            f"(got {recipe.mixup_alpha})"
        )


def one_hot(y: torch.Tensor, classes: int, smoothing: float) -> torch.Tensor:
    """Label-smoothed one-hot targets (the distribution ``F.cross_entropy(label_smoothing=)``
    compares against: ``smoothing / classes`` everywhere, plus ``1 - smoothing`` on the label)."""
    off = smoothing / classes
    return F.one_hot(y, classes).float() * (1.0 - smoothing) + off


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy against target distributions (float32 whatever the autocast dtype)."""
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


class BatchMixer:
    """Mixes batches as the recipe says; draws come from ``rng`` alone (see the module docstring).

    Calling it returns the (possibly mixed) batch and its soft targets, or None as targets when
    the batch was left as it is (the loop then uses plain cross-entropy on the labels, the same
    value, without building one-hot targets)."""

    def __init__(self, recipe: TrainRecipe, classes: int, rng: np.random.Generator) -> None:
        self.recipe, self.classes, self.rng = recipe, classes, rng

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        r = self.recipe
        if not r.mixing:
            return x, None
        # the draws happen whatever the batch, so every rank and every resume draws alike
        apply = self.rng.random() < r.mix_prob
        use_cutmix = r.cutmix_alpha > 0 and (
            r.mixup_alpha <= 0 or self.rng.random() < r.mix_switch_prob
        )
        alpha = r.cutmix_alpha if use_cutmix else r.mixup_alpha
        lam = float(self.rng.beta(alpha, alpha))
        box = self.rng.random(2)  # the CutMix box's centre, as fractions of the image
        if not apply or len(y) < 2:
            return x, None
        flipped = x.flip(0)
        if use_cutmix:
            x, lam = _cutmix(x, flipped, lam, (float(box[0]), float(box[1])))
        else:
            x = x * lam + flipped * (1.0 - lam)
        targets = one_hot(y, self.classes, r.label_smoothing)
        return x, targets * lam + targets.flip(0) * (1.0 - lam)


def _cutmix(
    x: torch.Tensor, other: torch.Tensor, lam: float, centre: tuple[float, float]
) -> tuple[torch.Tensor, float]:
    """Pastes a box of ``other`` (area about ``1 - lam``) into ``x``; returns the batch and the
    share of ``x`` that remains (``lam`` corrected for the box's clipping at the borders)."""
    h, w = x.shape[-2:]
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(centre[0] * h), int(centre[1] * w)
    top, bottom = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    left, right = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    mixed = x.clone()
    mixed[..., top:bottom, left:right] = other[..., top:bottom, left:right]
    return mixed, 1.0 - (bottom - top) * (right - left) / (h * w)


__all__ = ["BatchMixer", "check_mixing", "one_hot", "soft_cross_entropy"]
