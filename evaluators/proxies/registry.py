"""The proxy registry and the helpers every proxy family shares.

A proxy is a function ``(model, inputs, targets, *, spec) -> float``. It gets its own copy of the
model (so it may change weights or modes freely), runs under a seeded RNG, and raises `ProxyError`
with a reason when it cannot score a model; `evaluators.proxies.compute_detailed` turns that (or
any exception, or a non-finite value) into a NaN score that carries the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch
from torch import nn

from search_space.registry import Registry
from search_space.spec import ArchSpec


class ProxyFn(Protocol):
    def __call__(
        self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec
    ) -> float: ...


class ProxyError(RuntimeError):
    """A proxy cannot score this model; the message says why."""


def _builtins() -> None:
    import evaluators.proxies  # noqa: F401 (its family modules register the built-ins)


# built-ins first, then the plug-ins of the group, on the first lookup
PROXIES: Registry[ProxyFn] = Registry("proxy", group="mixnas.proxies", builtins=_builtins)

# what a spec's model learns (`evaluators.task_kinds`, from what its head produces): one label
# per input, the next token at every position (a causal LM head), a label per pixel (a
# segmentation head) or a larger image (a super-resolution head)
CLASSIFICATION, CAUSAL_LM = "classification", "causal_lm"
SEGMENTATION, SUPER_RESOLUTION = "segmentation", "super_resolution"
ALL_TASKS = (CLASSIFICATION, CAUSAL_LM, SEGMENTATION, SUPER_RESOLUTION)
# the tasks each proxy can score; a proxy registered without saying supports all
PROXY_TASKS: dict[str, tuple[str, ...]] = {}


def proxy(name: str, *, tasks: tuple[str, ...] = ALL_TASKS) -> Callable[[ProxyFn], ProxyFn]:
    """Decorator: registers a proxy function under ``name``, scoring specs of ``tasks``
    (a proxy that groups samples by class label supports ``classification`` only)."""

    def wrap(fn: ProxyFn) -> ProxyFn:
        PROXIES.register(name, fn)
        PROXY_TASKS[name] = tuple(tasks)
        return fn

    return wrap


def spec_task(spec: ArchSpec) -> str:
    """The task a spec's head serves: ``classification``, ``causal_lm``, ``segmentation`` or
    ``super_resolution`` (`evaluators.task_kinds.infer`; an unknown head: classification)."""
    from evaluators.task_kinds import infer

    return infer(spec)


def unsupported(name: str, spec: ArchSpec) -> str:
    """Why proxy ``name`` cannot score ``spec``'s task, in one line, or "" when it can."""
    task = spec_task(spec)
    if task in PROXY_TASKS.get(name, ALL_TASKS):
        return ""
    able = [n for n in PROXIES.names() if task in PROXY_TASKS.get(n, ALL_TASKS)]
    return (
        f"proxy {name!r} supports tasks {', '.join(PROXY_TASKS[name])}, not {task} (head "
        f"{spec.head.name!r}); proxies for {task}: {', '.join(able)}"
    )


# Activation modules whose *input* sign gives a NASWOT binary code (see `activation.nwot`).
def activation_types() -> tuple[type[nn.Module], ...]:
    from search_space.nn.activations import StarReLU

    return (
        nn.ReLU,
        nn.ReLU6,
        nn.LeakyReLU,
        nn.GELU,
        nn.SiLU,
        nn.Hardswish,
        nn.ELU,
        nn.Mish,
        StarReLU,
    )


LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def real(t: torch.Tensor) -> torch.Tensor:
    """A real view of ``t``: proxies must never produce complex scores (FFT filters)."""
    return torch.view_as_real(t) if t.is_complex() else t


def weights(model: nn.Module) -> Iterator[nn.Parameter]:
    """The prunable weights: every trainable parameter with at least two dimensions.

    This is the Linear/Conv weights the papers prune plus the weight tensors of mixers that are not
    Linear/Conv (GFNet's complex filter, SSM ``A_log``, relative position tables, embeddings), so
    every token mixer contributes; biases and norm affines (1-D) are left out as in the papers.
    """
    for p in model.parameters():
        if p.requires_grad and p.dim() >= 2:
            yield p


# a pixel without a label in a segmentation mask (the ``train`` evaluator's convention)
IGNORE_PIXEL = 255


def loss_of(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The training loss the gradient proxies differentiate, that of the model's task: for a
    causal LM head (logits ``B x L x vocab``) next-token cross-entropy whose targets are the
    token ids themselves shifted by one (``targets`` is not used then); for a segmentation
    head (``B x K x H x W``, integer masks ``B x H x W``) per-pixel cross-entropy; for a
    super-resolution head (an image, float targets of its shape) the L1 loss; else
    cross-entropy on the labels."""
    out = model(inputs)
    if out.dim() == 3 and not inputs.is_floating_point():
        return nn.functional.cross_entropy(out[:, :-1].flatten(0, 1), inputs[:, 1:].flatten())
    if targets.is_floating_point() and targets.shape == out.shape:
        return nn.functional.l1_loss(out, targets)
    if out.dim() == 4:
        return nn.functional.cross_entropy(out, targets, ignore_index=IGNORE_PIXEL)
    return nn.functional.cross_entropy(out, targets)


def input_jacobian(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """``d sum(logits) / d input`` per sample, flattened to ``(B, D)`` (Mellor et al.'s Jacobian).

    Token ids are not differentiable, so for integer inputs the Jacobian is taken at the stem's
    output (the token embeddings) instead.
    """
    model.zero_grad(set_to_none=True)
    if inputs.is_floating_point():
        x = inputs.detach().clone().requires_grad_(True)
        out = model(x)
        out.backward(torch.ones_like(out))
        assert x.grad is not None
        return x.grad.detach().flatten(1)
    stem = getattr(model, "stem", None)
    if stem is None:
        raise ProxyError("integer inputs and no `stem` module to differentiate at")
    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: Any, out: torch.Tensor) -> None:
        out.retain_grad()
        captured.append(out)

    handle = stem.register_forward_hook(hook)
    try:
        out = model(inputs)
    finally:
        handle.remove()
    out.backward(torch.ones_like(out))
    grad = captured[0].grad
    if grad is None:
        raise ProxyError("the stem output received no gradient")
    return grad.detach().flatten(1)


def corrcoef(jac: torch.Tensor, what: str) -> torch.Tensor:
    """Row correlation matrix in float64; raises `ProxyError` for constant rows (a network whose
    output does not depend on its input has no Jacobian correlation to score)."""
    jac = jac.double()
    centered = jac - jac.mean(dim=1, keepdim=True)
    norms = centered.norm(dim=1)
    if not bool((norms > 0).all()):
        raise ProxyError(f"{what}: the input Jacobian is constant for some sample")
    unit = centered / norms[:, None]
    return (unit @ unit.T).clamp(-1.0, 1.0)
