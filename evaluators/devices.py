"""Torch devices, named one way everywhere: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

Who calls what, when: `mixnas.job.prepare` calls `check_device` on every evaluator's ``device``
before a run starts, so asking for a GPU this machine lacks is a one-line config error;
`mixnas.pipeline.TrialPipeline` calls `resolve_device` in the process that evaluates trials and
hands the result to each evaluator as `evaluators.EvalContext.device`; the local worker pool calls
`worker_gpu` to pin worker ``i`` to one GPU (its ``CUDA_VISIBLE_DEVICES``), so that worker sees
that GPU as ``cuda:0``.

``auto`` is ``cuda`` where a GPU is visible and ``cpu`` otherwise, so every ``cuda`` code path is
also the one CPU tests run. torch is imported inside the functions: checking a config should not
pay for importing it when no evaluator asks for a GPU.

Mixed precision is named one way too, ``amp: off | bf16 | fp16`` (`AMP_MODES`): `autocast` gives
the context a forward pass runs in and `grad_scaler` the loss scaler fp16 training needs.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Any

from search_space.errors import MixnasError

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
# mixed precision, named one way everywhere: off, or autocast to bfloat16 / float16
AMP_MODES = ("off", "bf16", "fp16")


class DeviceError(MixnasError, ValueError):
    """A device name is malformed or names a GPU this process cannot see; one line."""


def gpu_count() -> int:
    """The CUDA devices this process sees (0 without a GPU or without CUDA in torch)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def device_index(name: str) -> int | None:
    """The GPU index ``name`` asks for (``cuda`` is 0); None for ``cpu`` and ``auto``."""
    if not DEVICE_PATTERN.fullmatch(name):
        raise DeviceError(f"device {name!r}: must be auto, cpu, cuda or cuda:N")
    if not name.startswith("cuda"):
        return None
    return int(name[5:]) if ":" in name else 0


def check_device(name: str, gpus: int | None = None) -> None:
    """Raises `DeviceError` unless ``name`` is usable with ``gpus`` visible GPUs (default: those
    this process sees)."""
    index = device_index(name)
    if index is None:
        return
    gpus = gpu_count() if gpus is None else gpus
    if gpus == 0:
        raise DeviceError(f"{name} asked but there is no CUDA device here; use device: cpu or auto")
    if index >= gpus:
        have = "cuda:0" if gpus == 1 else f"cuda:0 to cuda:{gpus - 1}"
        plural = "device" if gpus == 1 else "devices"
        raise DeviceError(f"{name} asked but this machine has {gpus} CUDA {plural} ({have})")


def resolve_device(name: str) -> str:
    """The torch device to run on: ``auto`` becomes ``cuda`` or ``cpu``; ``cpu``, ``cuda`` and
    ``cuda:N`` are returned as they are once `check_device` accepts them."""
    if name == "auto":
        return "cuda" if gpu_count() > 0 else "cpu"
    check_device(name)
    return name


def worker_gpu(index: int, gpus: int) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` value of local worker ``index`` when the machine has ``gpus``
    GPUs: one GPU each, round-robin (workers share a GPU when there are more workers than GPUs);
    None without GPUs (leave the variable alone). When the driver itself was given
    ``CUDA_VISIBLE_DEVICES``, the workers share out those GPUs, not the machine's first ones."""
    if gpus <= 0:
        return None
    given = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    ids = given[:gpus] if len(given) >= gpus else [str(i) for i in range(gpus)]
    return ids[index % gpus].strip()


def autocast(device: Any, amp: str) -> contextlib.AbstractContextManager[Any]:
    """The context a forward pass runs in: nothing for ``amp: off`` (so the results are the ones
    without mixed precision, bit for bit), else `torch.autocast` to bf16 or fp16 on ``device``'s
    type (the CPU autocasts too, so CPU tests run the same code as a GPU)."""
    import torch

    if amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(torch.device(device).type, dtype=dtype)


def grad_scaler(device: Any, amp: str) -> Any:
    """A `torch.amp.GradScaler` for ``amp: fp16`` (float16 gradients underflow without loss
    scaling), None otherwise (bf16 has float32's exponent range and needs none)."""
    import torch

    if amp != "fp16":
        return None
    return torch.amp.GradScaler(torch.device(device).type)


__all__ = [
    "AMP_MODES",
    "DEVICE_PATTERN",
    "DeviceError",
    "autocast",
    "check_device",
    "device_index",
    "gpu_count",
    "grad_scaler",
    "resolve_device",
    "worker_gpu",
]
