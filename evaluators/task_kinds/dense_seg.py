"""The ``segmentation`` kind: a class per pixel, from a head with ``output: mask``.

The head (``seg_head``) gives logits ``B x K x H x W`` at the input's resolution, K = the spec's
``num_classes`` (the background, class 0, counts). Loss: per-pixel cross-entropy over the
labelled pixels (a target of `UNLABELLED`, 255, is skipped; no label smoothing). Metrics, all
from one confusion matrix accumulated over the whole split: ``top1`` (pixel accuracy, percent),
``miou`` (percent: IoU = TP / (TP + FP + FN) per class, averaged over the classes present in the
prediction or the target), ``dice`` (percent: 2 TP / (2 TP + FP + FN) per class, same average)
and ``loss`` (the mean cross-entropy per labelled pixel). Primary: ``miou``, higher is better.

Data: ``seg_shapes`` by default (`evaluators.tasks.seg_shapes`), any generated task with mask
targets, or the user's:

* an ``.npz`` file with ``x`` (images ``N x C x H x W``, ``N x H x W x C`` or ``N x H x W``) and
  ``y`` (masks ``N x H x W`` of integer class indices, 255 for unlabelled pixels);
* a folder with ``images/`` and ``masks/``: a mask per image, with the image's file stem, a PNG
  (gray or palette) whose pixel values are class indices.

Images are resized to the spec's resolution (bilinear) and masks with it (nearest), then the
images are normalised per channel; options ``val_fraction`` (0.2), ``normalize`` (true).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from evaluators.data import (
    IMAGE_SUFFIXES,
    Dataset,
    DatasetError,
    _adapt,
    _check_options,
    _normalize,
    _read_image,
    _split,
    read_npz_arrays,
)
from evaluators.task_kinds import SEGMENTATION, Metrics, TaskKind, register
from search_space.spec import InputSpec

UNLABELLED = 255
DEFAULT_SOURCE = "seg_shapes"
FILE_OPTIONS = ("val_fraction", "normalize")


class SegmentationMetrics(Metrics):
    """Sums: loss, then the ``K x K`` confusion matrix (rows: target, columns: prediction).
    K None: the first batch's output channels (give it, so that ranks agree on the size)."""

    def __init__(self, num_classes: int | None) -> None:
        super().__init__(1 + (num_classes or 0) ** 2)
        self.k = num_classes or 0

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        if not self.k:
            self.k = int(output.shape[1])
            self.sums = torch.cat([self.sums[:1], torch.zeros(self.k**2, dtype=torch.float64)])
        logits = output.float()
        loss = F.cross_entropy(logits, target, ignore_index=UNLABELLED, reduction="sum")
        labelled = target != UNLABELLED
        pred = logits.argmax(dim=1)[labelled]
        truth = target[labelled]
        confusion = torch.bincount(truth * self.k + pred, minlength=self.k * self.k)
        self.sums[0] += loss.item()
        self.sums[1:] += confusion.cpu().double()

    def confusion(self) -> torch.Tensor:
        return self.sums[1:].view(self.k, self.k)

    def result(self) -> dict[str, float]:
        if not self.k:  # nothing was added
            return dict.fromkeys(("top1", "miou", "dice", "loss"), 0.0)
        cm = self.confusion()
        total = float(cm.sum())
        hits = cm.diagonal()
        union = cm.sum(dim=0) + cm.sum(dim=1)  # 2 TP + FP + FN per class
        seen = union > 0  # present in the prediction or the target
        iou = hits[seen] / (union[seen] - hits[seen])
        dice = 2 * hits[seen] / union[seen]
        n = max(1.0, total)
        return {
            "top1": 100.0 * float(hits.sum()) / n,
            "miou": 100.0 * float(iou.mean()) if bool(seen.any()) else 0.0,
            "dice": 100.0 * float(dice.mean()) if bool(seen.any()) else 0.0,
            "loss": float(self.sums[0]) / n,
        }


class Segmentation(TaskKind):
    """A class per pixel (see the module docstring)."""

    name = SEGMENTATION
    output = "mask"
    metrics_names = ("top1", "miou", "dice", "loss")
    columns = ("top1", "miou", "dice", "loss")
    primary = "miou"
    head_hint = "a segmentation head ('seg_head', as in the unet_seg space)"

    def loss(
        self,
        output: torch.Tensor,
        target: torch.Tensor,
        *,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> torch.Tensor:
        # label smoothing is a classification regulariser: not applied per pixel
        return F.cross_entropy(output.float(), target, ignore_index=UNLABELLED, reduction=reduction)

    def metrics(self, num_classes: int | None = None) -> Metrics:
        return SegmentationMetrics(num_classes)

    def dataset(
        self,
        source: str | None,
        input_spec: InputSpec,
        *,
        seed: int,
        options: Mapping[str, Any],
    ) -> Dataset:
        return dense_source(source, input_spec, seed, options, "mask", DEFAULT_SOURCE, _files)


def dense_source(
    source: str | None,
    input_spec: InputSpec,
    seed: int,
    options: Mapping[str, Any],
    target: str,
    default: str,
    files: Any,
) -> Dataset:
    """A generated task whose targets are ``target`` (`DenseTask.target`), or ``files(path,
    input_spec, seed, options)`` for a path; anything else is a one-line `DatasetError`."""
    from evaluators.tasks import TASKS, load_task, names
    from evaluators.tasks.dense import DenseTask

    name = default if source is None else str(source)
    kind = "segmentation" if target == "mask" else "super_resolution"
    fitting = [
        n for n in names() if isinstance(task := TASKS[n], DenseTask) and task.target == target
    ]
    if name in fitting:
        return load_task(name, input_spec, seed=seed, options=options)
    path = Path(name)
    if path.exists():
        return files(path, input_spec, seed, options)  # type: ignore[no-any-return]
    raise DatasetError(
        f"{kind}: unknown data {name!r}; allowed: {', '.join(fitting)} (generated), or a path "
        f"to {_FILE_KINDS[target]}"
    )


_FILE_KINDS = {
    "mask": "an .npz file (arrays x, y: images and masks) or a folder with images/ and masks/",
    "image": "an .npz file (array hr, or arrays lr and hr) or a folder of HR images",
}


def _files(path: Path, spec: InputSpec, seed: int, options: Mapping[str, Any]) -> Dataset:
    _check_options(str(path), dict(options), FILE_OPTIONS)
    if spec.kind != "image":
        raise DatasetError(f"{path}: segmentation data are images, but the spec's input is tokens")
    if path.is_dir():
        raw_x, raw_y = _read_folder(path, spec)
    elif path.suffix == ".npz" and path.is_file():
        raw_x, raw_y = _read_npz(path)
    else:
        raise DatasetError(
            f"{path}: not segmentation data; allowed: {_FILE_KINDS['mask']} (masks/<stem>.png)"
        )
    if raw_y.ndim == 4 and raw_y.shape[1] == 1:
        raw_y = raw_y[:, 0]
    if raw_y.ndim != 3 or not np.issubdtype(raw_y.dtype, np.integer):
        raise DatasetError(
            f"{path}: y must be N x H x W integer class indices (got {raw_y.dtype} with shape "
            f"{raw_y.shape})"
        )
    if len(raw_y) != len(raw_x):
        raise DatasetError(f"{path}: x has {len(raw_x)} images but y has {len(raw_y)} masks")
    k = spec.num_classes
    bad = (raw_y != UNLABELLED) & ((raw_y < 0) | (raw_y >= k))
    if bad.any():
        value = int(raw_y[bad].flat[0])
        raise DatasetError(
            f"{path}: mask value {value}: must be a class in 0..{k - 1} (the spec's "
            f"{k} classes, background 0) or {UNLABELLED} for unlabelled pixels"
        )
    x = _adapt(raw_x, spec, str(path))
    if raw_x.ndim == 4 and raw_x.shape[-1] in (1, 3, 4) and raw_x.shape[1] not in (1, 3, 4):
        size = raw_x.shape[1:3]  # channels-last
    else:
        size = raw_x.shape[-2:]
    if tuple(raw_y.shape[1:]) != tuple(size):
        raise DatasetError(
            f"{path}: masks are {raw_y.shape[1]}x{raw_y.shape[2]} but images "
            f"{size[0]}x{size[1]}; allowed: a mask of its image's size"
        )
    y = torch.from_numpy(raw_y.astype(np.int64))
    if tuple(y.shape[1:]) != tuple(spec.resolution):
        resized = F.interpolate(y[:, None].float(), size=spec.resolution, mode="nearest")
        y = resized[:, 0].round().long()
    if options.get("normalize", True):
        x = _normalize(x)
    return _split(str(path), x, y, k, seed, dict(options))


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    need = "segmentation data need x (images) and y (N x H x W masks)"
    arrays = read_npz_arrays(path, ("x", "y"), need)
    return arrays["x"], arrays["y"]


def _read_folder(root: Path, spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """``root/images/*`` at the spec's size and ``root/masks/<stem>.png`` at the same size."""
    images_dir, masks_dir = root / "images", root / "masks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DatasetError(
                f"{folder}: missing; segmentation data need {root}/images/ and {root}/masks/ "
                "(a mask per image, same file stem)"
            )
    files = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{images_dir}: no images with suffix {', '.join(IMAGE_SUFFIXES)}")
    h, w = spec.resolution
    images, masks = [], []
    for file in files:
        mask_file = masks_dir / f"{file.stem}.png"
        if not mask_file.is_file():
            raise DatasetError(f"{mask_file}: missing; the mask of {file} (same stem, .png)")
        images.append(_read_image(file, spec.channels, h, w))
        masks.append(_read_mask(mask_file, h, w))
    return np.stack(images), np.stack(masks)


def _read_mask(file: Path, h: int, w: int) -> np.ndarray:
    """A PNG mask (gray or palette: the values are class indices) resized with nearest."""
    try:
        from PIL import Image
    except ImportError:
        raise DatasetError(f"{file}: reading masks needs Pillow; or use an .npz file") from None
    try:
        with Image.open(file) as opened:
            if opened.mode not in ("L", "P", "I", "I;16", "1"):
                raise DatasetError(
                    f"{file}: mask mode {opened.mode}; allowed: a one-channel PNG (gray or "
                    "palette) whose values are class indices"
                )
            mask = opened.resize((w, h), Image.Resampling.NEAREST)
            return np.asarray(mask).astype(np.int64)
    except OSError as exc:
        raise DatasetError(f"{file}: not a readable image ({exc})") from None


SEGMENTATION_KIND = register(Segmentation())

__all__ = ["SEGMENTATION_KIND", "UNLABELLED", "SegmentationMetrics", "dense_source"]
