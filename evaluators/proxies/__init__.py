"""Training-free proxies: scores of an untrained network that correlate with its trained accuracy.

`compute(spec, names)` builds the model of ``spec`` once and runs each named proxy on its own copy
of it; `compute_detailed` also returns why a proxy could not score a model. Proxies are registered
in `PROXIES` by family modules:

- `static`: ``params``, ``macs`` (analytic, from `spec_cost`), ``l2_norm``;
- `gradient`: ``snip``, ``grasp``, ``grad_norm``, ``plain``, ``fisher``;
- `activation`: ``jacov``, ``nwot``, ``epe_nas``;
- `data_free`: ``synflow`` (returned as a log), ``zen``;
- `transformer`: ``dss`` (TF-TAS, returned as a log);
- `theory`: ``ntk_cond`` (minus the log NTK condition number), ``linear_regions`` (TE-NAS).

A new proxy is a function ``(model, inputs, targets, *, spec) -> float`` decorated with
``@proxy("name")`` in a module imported below.
"""

from __future__ import annotations

import copy
import math
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from evaluators.proxies import (  # noqa: F401 (registers)
    activation,
    data_free,
    gradient,
    quantization,
    static,
    theory,
    transformer,
)
from evaluators.proxies.registry import (
    PROXIES,
    SEGMENTATION,
    SUPER_RESOLUTION,
    ProxyError,
    ProxyFn,
    proxy,
    spec_task,
    unsupported,
)
from search_space.spec import ArchSpec

__all__ = [
    "PROXIES",
    "ProxyError",
    "ProxyFn",
    "ProxyScore",
    "compute",
    "compute_detailed",
    "default_batch",
    "names",
    "proxy",
]


@dataclass(frozen=True)
class ProxyScore:
    """One proxy's result: ``value`` (NaN when it could not score), ``error`` (why), ``seconds``."""

    value: float
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error and math.isfinite(self.value)


def names() -> list[str]:
    return PROXIES.names()


def default_batch(spec: ArchSpec, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch of the spec's input shape and random targets of its task (labels, masks
    or images), both drawn from ``seed``."""
    from search_space import example_input, output_shape

    inputs = example_input(spec, batch_size, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)  # targets independent of the input draw
    task = spec_task(spec)
    if task == SUPER_RESOLUTION:
        return inputs, torch.rand(output_shape(spec, batch_size), generator=gen)
    shape = (batch_size, *spec.input.grid) if task == SEGMENTATION else (batch_size,)
    return inputs, torch.randint(0, spec.input.num_classes, shape, generator=gen)


def compute_detailed(
    spec: ArchSpec,
    names: Sequence[str],
    *,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
    seed: int = 0,
    batch_size: int = 64,
    device: str = "cpu",
) -> dict[str, ProxyScore]:
    """Scores ``spec`` with each proxy in ``names``; never raises for a bad model.

    The model is built once with ``build_model(spec, seed=seed)`` and each proxy gets a deep copy
    (proxies change weights and modes). ``data`` is ``(inputs, targets)``; None means a random
    batch from ``seed`` (data-free proxies only use its shape). Each proxy runs under a forked
    RNG seeded with ``seed``, so scores are deterministic and the caller's RNG is untouched.
    The weights and the batch are drawn on the CPU and then moved to ``device`` (a torch device
    name), so a GPU scores the same network and batch as the CPU does.
    Raises `KeyError` (listing the known proxies) for an unknown name, before any work.
    """
    from search_space import build_model

    fns = {name: PROXIES.get(name) for name in names}
    inputs, targets = data if data is not None else default_batch(spec, batch_size, seed)
    inputs, targets = inputs.to(device), targets.to(device)
    model = build_model(spec, seed=seed).to(device)
    results: dict[str, ProxyScore] = {}
    for name, fn in fns.items():
        start = time.perf_counter()
        refusal = unsupported(name, spec)
        if refusal:  # a proxy that needs class labels, for a causal LM: said, not attempted
            results[name] = ProxyScore(math.nan, refusal, 0.0)
            continue
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                value = float(fn(copy.deepcopy(model), inputs, targets, spec=spec))
            error = "" if math.isfinite(value) else f"non-finite value {value}"
        except Exception as exc:  # one proxy failing on one model is a result, not a crash
            value = math.nan
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        results[name] = ProxyScore(
            value if not error else math.nan, error, time.perf_counter() - start
        )
    return results


def compute(
    spec: ArchSpec,
    names: Sequence[str],
    *,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
    seed: int = 0,
    batch_size: int = 64,
    device: str = "cpu",
) -> dict[str, float]:
    """The value of each proxy in ``names`` (NaN where one failed; see `compute_detailed`)."""
    detailed = compute_detailed(
        spec, names, data=data, seed=seed, batch_size=batch_size, device=device
    )
    return {name: score.value for name, score in detailed.items()}
