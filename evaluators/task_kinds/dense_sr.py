"""The ``super_resolution`` kind: a larger image from a head with ``output: image``.

The head (``sr_head``) turns the low-resolution input ``B x C x H x W`` into ``B x C x sH x sW``,
s = its ``scale`` parameter. Loss: L1 against the high-resolution target (intensities in [0, 1],
not normalised). Metrics, the output first clamped to [0, 1] as when it is saved as an image:
``psnr`` (dB, data range 1, the mean over images of each image's PSNR; an exact match counts
as 100 dB), ``ssim`` (the mean over images of SSIM: Gaussian window 11, sigma 1.5, K1 0.01,
K2 0.03, 'valid' filtering as in Wang et al.'s reference code, per channel then averaged; the
window shrinks to the largest odd size that fits an image smaller than 11), ``l1`` (mean
absolute error of the clamped image), ``loss`` (the training L1 on the unclamped output) and
``psnr_bilinear`` (the PSNR of the input's bilinear upsampling: the baseline a model must beat;
computed once per split). Primary: ``psnr``, higher is better.

Data: ``sr_images`` by default (`evaluators.tasks.sr_images`), any generated task with image
targets, or the user's HR images, whose LR versions are made by the generated task's
`evaluators.tasks.sr_images.downsample` (the mean of each ``s x s`` block):

* an ``.npz`` file with ``hr`` (``N x C x H x W``, ``N x H x W x C`` or ``N x H x W``; uint8
  0..255 or floats in [0, 1]) and optionally ``lr`` (then used as it is: it must be at the spec's
  resolution and ``hr`` exactly s times it);
* a folder of HR images (``*.png|jpg|jpeg|bmp``).

HR images of another size are centre-cropped to the target's aspect ratio and resized (PIL or
torch bicubic, antialiased) to s times the spec's resolution. Options ``val_fraction`` (0.2).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from evaluators.data import Dataset, DatasetError, _check_options, _split, read_npz_arrays
from evaluators.task_kinds import SUPER_RESOLUTION, Metrics, TaskKind, register
from evaluators.task_kinds.dense_seg import dense_source
from search_space.spec import ArchSpec, InputSpec

DEFAULT_SOURCE = "sr_images"
FILE_OPTIONS = ("scale", "val_fraction")
PEAK_DB = 100.0  # the PSNR of an exact match (MSE 0)
_PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of ``B x C x H x W`` images in [0, 1] (data range 1)."""
    mse = (output.double() - target.double()).square().flatten(1).mean(dim=1)
    return (10.0 * torch.log10(1.0 / mse.clamp_min(10 ** (-PEAK_DB / 10)))).float()


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The normalised 2-D Gaussian ``size x size`` window (float64)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(
    output: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Per-image SSIM of ``B x C x H x W`` images: the mean of the SSIM map over the positions
    where the window fits ('valid'), per channel, then over the channels (float64 inside)."""
    x, y = output.double(), target.double()
    channels, h, w = x.shape[1:]
    size = min(size, h, w)
    size -= 1 - size % 2  # odd
    window = gaussian_window(size, sigma).to(x.device).expand(channels, 1, size, size)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return ssim_map.mean(dim=(2, 3)).mean(dim=1).float()


class SuperResolutionMetrics(Metrics):
    """Sums: L1 of the raw output, elements, L1 of the clamped output, PSNR, SSIM, images."""

    def __init__(self) -> None:
        super().__init__(6)

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        _check_shapes(output, target)
        out = output.float()
        clamped = out.clamp(0.0, 1.0)
        self.sums += torch.tensor(
            [
                float((out - target).abs().double().sum()),
                float(target.numel()),
                float((clamped - target).abs().double().sum()),
                float(psnr(clamped, target).double().sum()),
                float(ssim(clamped, target).double().sum()),
                float(len(target)),
            ],
            dtype=torch.float64,
        )

    def result(self) -> dict[str, float]:
        loss, elements, l1, total_psnr, total_ssim, images = self.sums.tolist()
        n, e = max(1.0, images), max(1.0, elements)
        return {
            "psnr": total_psnr / n,
            "ssim": total_ssim / n,
            "l1": l1 / e,
            "loss": loss / e,
        }


def _check_shapes(output: torch.Tensor, target: torch.Tensor) -> None:
    if output.shape != target.shape:
        raise ValueError(
            f"super_resolution: the model's output is {'x'.join(map(str, output.shape))} but "
            f"the HR targets are {'x'.join(map(str, target.shape))}; the data's scale must be "
            "the head's"
        )


# psnr_bilinear per input tensor (by identity, while it lives): once per split, not at every
# evaluation; a tensor's ``==`` is elementwise, so it cannot key a WeakKeyDictionary
_BASELINES: dict[int, tuple[weakref.ref[torch.Tensor], int, dict[str, float]]] = {}


class SuperResolution(TaskKind):
    """A larger image (see the module docstring)."""

    name = SUPER_RESOLUTION
    output = "image"
    metrics_names = ("psnr", "ssim", "l1", "loss", "psnr_bilinear")
    columns = ("psnr", "ssim", "l1", "loss")
    primary = "psnr"
    head_hint = "a super-resolution head ('sr_head', as in the sr space)"

    def loss(
        self,
        output: torch.Tensor,
        target: torch.Tensor,
        *,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> torch.Tensor:
        _check_shapes(output, target)
        return F.l1_loss(output.float(), target, reduction=reduction)

    def metrics(self, num_classes: int | None = None) -> Metrics:
        return SuperResolutionMetrics()

    def baseline(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        cached = _BASELINES.get(id(x))
        if cached is not None and cached[0]() is x and cached[1] == x._version:
            return dict(cached[2])
        total = 0.0
        for begin in range(0, len(x), 256):
            hr = y[begin : begin + 256]
            up = F.interpolate(
                x[begin : begin + 256].float(),
                size=hr.shape[-2:],
                mode="bilinear",
                align_corners=False,
            )
            total += float(psnr(up.clamp(0.0, 1.0), hr).double().sum())
        out = {"psnr_bilinear": total / max(1, len(x))}
        for key in [k for k, (ref, _, _) in _BASELINES.items() if ref() is None]:
            del _BASELINES[key]  # tensors gone: their ids may be reused
        _BASELINES[id(x)] = (weakref.ref(x), x._version, dict(out))
        return out

    def data_options(self, spec: ArchSpec, options: Mapping[str, Any]) -> dict[str, Any]:
        scale = head_scale(spec)
        given = options.get("scale")
        if given is not None and given != scale:
            raise DatasetError(
                f"super_resolution: data option scale {given!r}: the spec's head "
                f"{spec.head.name!r} upscales x{scale}; allowed: {scale}, or leave it out"
            )
        return {**options, "scale": scale}

    def dataset(
        self,
        source: str | None,
        input_spec: InputSpec,
        *,
        seed: int,
        options: Mapping[str, Any],
    ) -> Dataset:
        return dense_source(source, input_spec, seed, options, "image", DEFAULT_SOURCE, _files)


def head_scale(spec: ArchSpec) -> int:
    """The upscaling factor of ``spec``'s head (its ``scale`` parameter; 1 without one)."""
    from search_space.ops import HEADS

    if spec.head.name not in HEADS:
        return 1
    params = HEADS.get(spec.head.name).complete(spec.head.kwargs, "head.params")
    return int(params.get("scale", 1))


# -- the user's images -------------------------------------------------------------------------


def _files(path: Path, spec: InputSpec, seed: int, options: Mapping[str, Any]) -> Dataset:
    _check_options(str(path), dict(options), FILE_OPTIONS)
    if spec.kind != "image":
        raise DatasetError(
            f"{path}: super-resolution data are images, but the spec's input is tokens"
        )
    scale = int(options.get("scale") or 2)
    h, w = (int(v) for v in spec.resolution)
    target = (scale * h, scale * w)
    lr: np.ndarray | None = None
    if path.is_dir():
        hr = _read_folder(path, spec.channels, target)
    elif path.suffix == ".npz" and path.is_file():
        hr, lr = _read_npz(path, spec, target)
    else:
        raise DatasetError(
            f"{path}: not super-resolution data; allowed: an .npz file (array hr, or arrays lr "
            "and hr) or a folder of HR images"
        )
    if len(hr) < 2:
        raise DatasetError(f"{path}: needs at least 2 images for a train/validation split")
    if lr is None:
        from evaluators.tasks.sr_images import downsample

        lr = downsample(hr, scale)
    x = torch.from_numpy(lr).float().mul_(1 / 255.0)
    y = torch.from_numpy(hr).float().mul_(1 / 255.0)
    rest = {k: v for k, v in options.items() if k != "scale"}
    return _split(str(path), x, y, spec.num_classes, seed, rest)


def _read_folder(root: Path, channels: int, target: tuple[int, int]) -> np.ndarray:
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in _PIL_SUFFIXES)
    if not files:
        raise DatasetError(f"{root}: no HR images with suffix {', '.join(_PIL_SUFFIXES)}")
    try:
        from PIL import Image
    except ImportError:
        raise DatasetError(f"{root}: reading images needs Pillow; or use an .npz file") from None
    out = []
    for file in files:
        try:
            with Image.open(file) as opened:
                img = opened.convert("L" if channels == 1 else "RGB")
                box = _crop_box(img.height, img.width, target)
                img = img.crop(box).resize(target[::-1], Image.Resampling.BICUBIC)
                arr = np.asarray(img, dtype=np.uint8)
        except OSError as exc:
            raise DatasetError(f"{file}: not a readable image ({exc})") from None
        out.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    return np.stack(out)


def _crop_box(h: int, w: int, target: tuple[int, int]) -> tuple[int, int, int, int]:
    """The centred (left, top, right, bottom) box of ``h x w`` with the target's aspect ratio."""
    th, tw = target
    if h * tw > w * th:  # too tall
        keep = max(1, round(w * th / tw))
        top = (h - keep) // 2
        return 0, top, w, top + keep
    keep = max(1, round(h * tw / th))
    left = (w - keep) // 2
    return left, 0, left + keep, h


def _read_npz(
    path: Path, spec: InputSpec, target: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    need = "super-resolution data need hr (HR images) and optionally lr"
    arrays = read_npz_arrays(path, ("hr",), need, optional=("lr",))
    hr, lr = arrays["hr"], arrays.get("lr")
    hr_t = _images(hr, spec.channels, f"{path}: hr")
    if lr is None:
        return _fit(hr_t, target), None
    lr_t = _images(lr, spec.channels, f"{path}: lr")
    if len(lr_t) != len(hr_t):
        raise DatasetError(f"{path}: lr has {len(lr_t)} images but hr has {len(hr_t)}")
    h, w = spec.resolution
    if tuple(lr_t.shape[-2:]) != (h, w) or tuple(hr_t.shape[-2:]) != target:
        raise DatasetError(
            f"{path}: lr {lr_t.shape[-2]}x{lr_t.shape[-1]} and hr {hr_t.shape[-2]}x"
            f"{hr_t.shape[-1]}; allowed: lr at the spec's {h}x{w} and hr at {target[0]}x"
            f"{target[1]} (the head's scale), or hr alone (lr derived)"
        )
    return hr_t.numpy(), lr_t.numpy()


def _images(raw: np.ndarray, channels: int, where: str) -> torch.Tensor:
    """uint8 ``N x C x H x W`` with the spec's channels, from any layout and range allowed."""
    if not np.issubdtype(raw.dtype, np.number) or raw.ndim not in (3, 4):
        raise DatasetError(
            f"{where}: must be numeric N x H x W, N x C x H x W or N x H x W x C images (got "
            f"{raw.dtype} with shape {raw.shape})"
        )
    if np.issubdtype(raw.dtype, np.integer):
        if raw.size and (raw.min() < 0 or raw.max() > 255):
            raise DatasetError(
                f"{where}: integer images must lie in 0..255 (got {raw.min()}..{raw.max()})"
            )
        values = raw.astype(np.float32) / 255.0
    else:
        if raw.size and not (np.isfinite(raw).all() and raw.min() >= 0 and raw.max() <= 1):
            raise DatasetError(
                f"{where}: float images must lie in [0, 1] (got {np.nanmin(raw):g}.."
                f"{np.nanmax(raw):g}); or store uint8 0..255"
            )
        values = raw.astype(np.float32)
    x = torch.from_numpy(values)
    if x.ndim == 3:
        x = x[:, None]
    elif x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.permute(0, 3, 1, 2)
    if x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.repeat(1, channels, 1, 1)
        elif channels == 1:
            x = x.mean(dim=1, keepdim=True)
        else:
            raise DatasetError(
                f"{where}: images have {x.shape[1]} channels; the spec needs {channels}"
            )
    return torch.round(x * 255.0).to(torch.uint8)


def _fit(hr: torch.Tensor, target: tuple[int, int]) -> np.ndarray:
    """HR images centre-cropped to the target's aspect ratio and resized to it (bicubic,
    antialiased), as uint8."""
    if tuple(hr.shape[-2:]) == target:
        return hr.numpy()
    left, top, right, bottom = _crop_box(hr.shape[-2], hr.shape[-1], target)
    crop = hr[:, :, top:bottom, left:right].float()
    resized = F.interpolate(crop, size=target, mode="bicubic", align_corners=False, antialias=True)
    return resized.round().clamp(0, 255).to(torch.uint8).numpy()


SUPER_RESOLUTION_KIND = register(SuperResolution())

__all__ = [
    "PEAK_DB",
    "SUPER_RESOLUTION_KIND",
    "SuperResolutionMetrics",
    "gaussian_window",
    "head_scale",
    "psnr",
    "ssim",
]
