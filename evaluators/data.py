"""Offline datasets for short training: nothing here downloads at run time.

`load_dataset(name_or_path, input_spec, seed=...)` returns a `Dataset`: train and validation
tensors already shaped for the spec's input (images ``N x C x H x W`` floats, token ids ``N x L``
int64, feature sequences ``N x L x F`` floats) and integer labels. Sources:

* ``synthetic`` (also for ``None``): a seeded, learnable classification task in any input shape,
  generated in memory; the fast default.
* ``digits``: scikit-learn's bundled 8x8 digits (1797 images, 10 classes), resized to the spec's
  resolution and repeated to its channel count.
* a path to an ``.npz`` file holding arrays ``x`` and ``y``.
* a path to a folder of images per class (``root/<class>/*.png|jpg|jpeg|bmp|npy``), read with PIL;
  ``.npy`` files (one image array each) are accepted too.
* ``pathfinder``, ``listops``, ``textured_shapes``, ``same_different``: generated tasks with a
  held-out test split (`evaluators.tasks`, docs/tasks.md), cached on disk.
* ``seg_shapes``, ``sr_images``: the generated dense tasks (a mask per image, an HR image per
  LR one); the user's segmentation and super-resolution files are read by their task kinds
  (`evaluators.task_kinds.dense_seg`, `evaluators.task_kinds.dense_sr`), not here.

``name_or_path`` may also be a mapping ``{name: ..., <option>: ...}`` (a config's
``data: {name: pathfinder, n_train: 4000}``); explicit keyword options win over its entries.

Every error on user input is a `DatasetError`: one line naming the file or field, the bad value and
what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from search_space.errors import MixnasError
from search_space.spec import InputSpec

BUILTIN = ("digits", "synthetic")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".npy")
_SYNTHETIC_OPTIONS = ("size", "val_fraction", "difficulty")
_FILE_OPTIONS = ("val_fraction", "normalize")


class DatasetError(MixnasError, ValueError):
    """A dataset name, file or option is invalid; the message is one line."""


def generated() -> tuple[str, ...]:
    """The generated tasks' names (`evaluators.tasks`), those of installed plug-ins included."""
    from evaluators.tasks import names

    return names()


def __getattr__(name: str) -> Any:
    # ``GENERATED``: computed on use, so that plug-in tasks count and the tasks (and torch's
    # generators) are imported only when asked for
    if name == "GENERATED":
        return generated()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Dataset:
    """In-memory train/validation splits shaped for one `InputSpec`.

    Attributes:
        name: where the data came from (a builtin name or a path).
        x_train, y_train: training inputs and their targets: int64 labels (``N``), or what the
            task learns (`evaluators.task_kinds`): next tokens ``N x L``, masks ``N x H x W``,
            HR images ``N x C x sH x sW``.
        x_val, y_val: validation inputs and targets.
        num_classes: the number of classes the labels index (that of the spec).
        x_test, y_test: a held-out test split that searches never see (generated tasks);
            None for sources without one.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None

    @property
    def sizes(self) -> tuple[int, int]:
        return len(self.y_train), len(self.y_val)


def load_dataset(
    name_or_path: str | Path | Mapping[str, Any] | None,
    input_spec: InputSpec,
    *,
    seed: int = 0,
    **options: Any,
) -> Dataset:
    """Loads ``name_or_path`` shaped for ``input_spec``, split deterministically by ``seed``.

    Options: ``val_fraction`` (default 0.2) for every source; ``size`` (default 1200) and
    ``difficulty`` (default 1.0, the noise level) for ``synthetic``; ``normalize`` (default True)
    for images from files or ``digits``; the generated tasks take theirs (`evaluators.tasks`).
    """
    if isinstance(name_or_path, Mapping):
        name_or_path, given = dataset_source(name_or_path)
        options = {**given, **options}
    name = "synthetic" if name_or_path is None else str(name_or_path)
    if name in generated():
        from evaluators.tasks import load_task

        return load_task(name, input_spec, seed=seed, options=options)
    if name == "synthetic":
        _check_options(name, options, _SYNTHETIC_OPTIONS)
        x, y = synthetic(
            input_spec,
            size=int(options.get("size", 1200)),
            difficulty=float(options.get("difficulty", 1.0)),
            seed=seed,
        )
        return _split(name, x, y, input_spec.num_classes, seed, options)
    _check_options(name, options, _FILE_OPTIONS)
    if name == "digits":
        if input_spec.kind != "image":
            raise DatasetError(
                f"digits: an image dataset, but the spec's input is {input_spec.kind!r}; "
                "use 'synthetic' or an .npz file of tokens"
            )
        from sklearn.datasets import load_digits  # bundled with scikit-learn, no network

        bunch = load_digits()
        # pixel values are 0..16; NCHW with one channel, adapted to the spec below
        raw_x: np.ndarray = bunch.images.astype(np.float32)[:, None] / 16.0
        raw_y: np.ndarray = bunch.target
    else:
        path = Path(name)
        if path.is_dir():
            raw_x, raw_y = _read_image_folder(path, input_spec)
        elif path.suffix == ".npz" and path.is_file():
            raw_x, raw_y = _read_npz(path)
        elif path.exists():
            raise DatasetError(f"{path}: not an .npz file or a folder of class sub-folders")
        else:
            raise DatasetError(
                f"unknown dataset {name!r}; allowed: {', '.join((*BUILTIN, *generated()))}, "
                "a path to an .npz file (arrays x, y) or to a folder of images per class"
            )
    y = _labels(raw_y, input_spec.num_classes, name)
    if len(y) != len(raw_x):
        raise DatasetError(f"{name}: x has {len(raw_x)} samples but y has {len(y)}")
    x = _adapt(raw_x, input_spec, name)
    if input_spec.kind == "image" and options.get("normalize", True):
        x = _normalize(x)
    return _split(name, x, y, input_spec.num_classes, seed, options)


def dataset_source(data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A ``{name: ..., <option>: ...}`` mapping as the name and the options it carries."""
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise DatasetError(
            f"data.name: a dataset mapping needs a name, e.g. {{name: pathfinder}} (got {name!r})"
        )
    return name, {str(k): v for k, v in data.items() if k != "name"}


# -- synthetic ---------------------------------------------------------------------------------


def synthetic(
    input_spec: InputSpec, *, size: int = 1200, difficulty: float = 1.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded classification task shaped for ``input_spec``, balanced over its classes.

    Each class has a fixed pattern and every sample is that pattern plus noise, so a model that
    learns anything about its input beats chance quickly; ``difficulty`` scales the noise (images,
    features) or dilutes the class signal (token ids).
    """
    if size < 2:
        raise DatasetError(f"synthetic.size: must be an integer >= 2 (got {size})")
    if not difficulty > 0:
        raise DatasetError(f"synthetic.difficulty: must be a number > 0 (got {difficulty})")
    gen = torch.Generator().manual_seed(seed)
    k = input_spec.num_classes
    # balanced labels in a seeded order: no class is missing from a small validation split
    y = torch.arange(size) % k
    y = y[torch.randperm(size, generator=gen)]
    if input_spec.kind == "image":
        c, (h, w) = input_spec.channels, input_spec.resolution
        protos = _gratings(k, c, h, w, gen)
        # noise 2.5x the pattern's std: a tiny model reaches ~70% in 100 steps, not 100%, so
        # architectures still differ at the default difficulty
        x = protos[y] + 2.5 * difficulty * torch.randn(size, c, h, w, generator=gen)
        return x, y
    length = input_spec.seq_len
    if input_spec.vocab_size:
        vocab = input_spec.vocab_size
        # each class prefers a few tokens; a sample draws from them with probability `signal` and
        # uniformly otherwise, so the class shows in token counts (learnable by pooling models)
        preferred = torch.stack(
            [torch.randperm(vocab, generator=gen)[: max(1, min(8, vocab // 2))] for _ in range(k)]
        )
        signal = min(0.9, 0.25 / difficulty)
        pick = torch.randint(0, preferred.shape[1], (size, length), generator=gen)
        from_class = preferred[y][torch.arange(size)[:, None], pick]
        uniform = torch.randint(0, vocab, (size, length), generator=gen)
        use_class = torch.rand(size, length, generator=gen) < signal
        return torch.where(use_class, from_class, uniform), y
    dim = input_spec.feature_dim
    # a class-dependent mean vector modulated along the sequence by a class-dependent frequency
    means = torch.randn(k, 1, dim, generator=gen)
    freq = torch.rand(k, 1, 1, generator=gen) * 3 + 0.5
    pos = torch.linspace(0, 2 * math.pi, max(length, 1))[None, :, None]
    protos = means * torch.cos(freq * pos)
    # noise 2x the pattern: hard enough that 100 steps of a tiny model do not saturate
    return protos[y] + 2.0 * difficulty * torch.randn(size, length, dim, generator=gen), y


def _gratings(k: int, c: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    """One unit-variance pattern per class: two sinusoidal gratings with class-specific
    frequencies, orientations and phases, mixed into the channels with class-specific weights."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    protos = torch.zeros(k, c, h, w)
    for cls in range(k):
        for _ in range(2):
            freq = float(torch.rand(1, generator=gen)) * 3 + 1
            angle = float(torch.rand(1, generator=gen)) * math.pi
            phase = float(torch.rand(1, generator=gen)) * 2 * math.pi
            wave = torch.sin(
                2 * math.pi * freq * (xx * math.cos(angle) + yy * math.sin(angle)) + phase
            )
            weights = torch.randn(c, 1, 1, generator=gen)
            protos[cls] += weights * wave
    std = protos.flatten(1).std(dim=1).clamp_min(1e-6)
    return protos / std[:, None, None, None]


# -- files -------------------------------------------------------------------------------------


def read_npz_arrays(
    path: Path, required: tuple[str, ...], need: str, optional: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    """The ``required`` arrays of an ``.npz`` file, and those of ``optional`` it holds; a
    missing array or an unreadable file is a one-line `DatasetError` (``need`` says what the
    file must hold)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in required if key not in data.files]
            if missing:
                raise DatasetError(
                    f"{path}: missing array {missing[0]!r}; {need} "
                    f"(found: {', '.join(data.files) or 'none'})"
                )
            return {k: np.asarray(data[k]) for k in (*required, *optional) if k in data.files}
    except DatasetError:
        raise
    except Exception as exc:  # zip/pickle errors of a corrupt file: say so in one line
        raise DatasetError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    arrays = read_npz_arrays(path, ("x", "y"), "an .npz dataset needs arrays 'x' and 'y'")
    return arrays["x"], arrays["y"]


def _read_image_folder(root: Path, input_spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """Reads ``root/<class>/*`` images resized to the spec's resolution (classes sorted by name)."""
    if input_spec.kind != "image":
        raise DatasetError(f"{root}: an image folder, but the spec's input is tokens")
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DatasetError(f"{root}: no class sub-folders (expected {root}/<class>/<image>)")
    h, w = input_spec.resolution
    images: list[np.ndarray] = []
    labels: list[int] = []
    for index, folder in enumerate(classes):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for file in files:
            images.append(_read_image(file, input_spec.channels, h, w))
            labels.append(index)
    if not images:
        raise DatasetError(f"{root}: no images with suffix {', '.join(IMAGE_SUFFIXES)}")
    return np.stack(images), np.asarray(labels)


def _read_image(file: Path, channels: int, h: int, w: int) -> np.ndarray:
    """One image as a C x H x W float array in [0, 1] (``.npy``: as stored, resized later)."""
    if file.suffix.lower() == ".npy":
        arr = np.load(file, allow_pickle=False).astype(np.float32)
        arr = arr[None] if arr.ndim == 2 else arr
        if arr.ndim != 3:
            raise DatasetError(f"{file}: an image array must be H x W or C x H x W ({arr.shape})")
        tensor = torch.from_numpy(arr)[None]
        return F.interpolate(tensor, size=(h, w), mode="bilinear", align_corners=False)[0].numpy()
    try:
        from PIL import Image
    except ImportError:
        raise DatasetError(f"{file}: reading images needs Pillow; or store .npy files") from None
    try:
        with Image.open(file) as opened:
            mode = "L" if channels == 1 else "RGB"
            img = opened.convert(mode).resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except OSError as exc:
        raise DatasetError(f"{file}: not a readable image ({exc})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


# -- adapting arrays to a spec -----------------------------------------------------------------


def _check_options(name: str, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DatasetError(f"{name}: unknown option {unknown[0]!r}; allowed: {', '.join(allowed)}")


def _labels(raw: np.ndarray, num_classes: int, name: str) -> torch.Tensor:
    if raw.ndim != 1 or not np.issubdtype(raw.dtype, np.integer):
        raise DatasetError(
            f"{name}: y must be a 1-D integer array of class indices (got {raw.dtype} "
            f"with shape {raw.shape})"
        )
    if len(raw) and (raw.min() < 0 or raw.max() >= num_classes):
        raise DatasetError(
            f"{name}: y must lie in 0..{num_classes - 1} for the spec's {num_classes} classes "
            f"(got {raw.min()}..{raw.max()})"
        )
    return torch.from_numpy(raw.astype(np.int64))


def _adapt(raw: np.ndarray, spec: InputSpec, name: str) -> torch.Tensor:
    """Shapes ``raw`` for ``spec``: images resized and channel-matched, sequences cut or padded."""
    if spec.kind == "image":
        if not np.issubdtype(raw.dtype, np.number) or raw.ndim not in (3, 4):
            raise DatasetError(
                f"{name}: image x must be numeric N x H x W, N x C x H x W or N x H x W x C "
                f"(got {raw.dtype} with shape {raw.shape})"
            )
        x = torch.from_numpy(raw.astype(np.float32))
        if x.ndim == 3:
            x = x[:, None]
        elif x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            x = x.permute(0, 3, 1, 2)  # channels-last (the layout of most image libraries)
        if x.shape[1] != spec.channels:
            if x.shape[1] == 1:
                x = x.repeat(1, spec.channels, 1, 1)
            elif spec.channels == 1:
                x = x.mean(dim=1, keepdim=True)
            else:
                raise DatasetError(
                    f"{name}: images have {x.shape[1]} channels; the spec needs "
                    f"{spec.channels} (1-channel data is repeated, any data can become gray)"
                )
        if tuple(x.shape[-2:]) != tuple(spec.resolution):
            x = F.interpolate(x, size=spec.resolution, mode="bilinear", align_corners=False)
        return x.contiguous()
    length = spec.seq_len
    if spec.vocab_size:
        if raw.ndim != 2 or not np.issubdtype(raw.dtype, np.integer):
            raise DatasetError(
                f"{name}: token x must be an N x L integer array of ids (got {raw.dtype} "
                f"with shape {raw.shape})"
            )
        if raw.size and (raw.min() < 0 or raw.max() >= spec.vocab_size):
            raise DatasetError(
                f"{name}: token ids must lie in 0..{spec.vocab_size - 1} (got "
                f"{raw.min()}..{raw.max()})"
            )
        x = torch.from_numpy(raw.astype(np.int64))
    else:
        if raw.ndim != 3 or raw.shape[2] != spec.feature_dim:
            raise DatasetError(
                f"{name}: feature x must be N x L x {spec.feature_dim} (got shape {raw.shape})"
            )
        x = torch.from_numpy(raw.astype(np.float32))
    # sequences longer than the spec's are cut and shorter ones padded with id 0 / zero vectors
    if x.shape[1] > length:
        x = x[:, :length]
    elif x.shape[1] < length:
        pad = torch.zeros((x.shape[0], length - x.shape[1], *x.shape[2:]), dtype=x.dtype)
        x = torch.cat([x, pad], dim=1)
    return x.contiguous()


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """Per-channel zero mean, unit variance (statistics of the whole set: the splits are random
    draws from it, so this leaks nothing that matters for ranking architectures)."""
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (x - mean) / std


def _split(
    name: str,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    seed: int,
    options: dict[str, Any],
) -> Dataset:
    fraction = float(options.get("val_fraction", 0.2))
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"{name}.val_fraction: must lie strictly between 0 and 1 ({fraction})")
    n = len(y)
    n_val = min(n - 1, max(1, round(n * fraction)))
    if n < 2:
        raise DatasetError(f"{name}: needs at least 2 samples for a train/validation split ({n})")
    # a seeded permutation independent of the global RNG: the same seed, the same split anywhere
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))
    val, train = order[:n_val], order[n_val:]
    return Dataset(name, x[train], y[train], x[val], y[val], num_classes)
