"""The first-order linear recurrence ``h_t = a_t * h_{t-1} + b_t`` as a custom op.

`linear_scan` is registered as ``mixnas::linear_scan`` so that it is one node in traced graphs (the
MAC counter in `evaluators.counting` has a handler for it: one MAC per element) and so that its
backward is an explicit reverse scan instead of an autograd tape over thousands of steps.

The forward is a chunked scan with O(L) work and O(sqrt(L)) sequential steps, in plain torch:

1. split the sequence into C chunks of T ~ sqrt(L) steps and run the recurrence inside all chunks at
   once from a zero state, keeping only each chunk's final state s_c and the product p_c of its
   coefficients (T vectorised steps over tensors of 1/T of the data);
2. the chunk-boundary states satisfy the same recurrence, e_c = p_c * e_{c-1} + s_c, over C steps
   (solved recursively, so very long sequences stay cheap);
3. rerun the recurrence inside all chunks at once, this time started from the true boundary states
   e_{c-1}, writing the output (T more vectorised steps).

Only multiplications and additions are used (no division by running products and no logarithms),
so coefficients that underflow to 0 are handled exactly; the work is about three elementwise passes
over the tensor and no buffer larger than the output is allocated.
"""

from __future__ import annotations

import math

import torch

# At or below this length the recurrence runs step by step: the per-step tensors are already the
# whole batch, so chunking would only add passes.
_SEQUENTIAL_MAX = 16


def _sequential(
    a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, h: torch.Tensor | None, reverse: bool
) -> torch.Tensor:
    """Step-by-step scan along dim 1 into ``out``, from state ``h`` (None: zero); the last state."""
    steps = range(a.shape[1] - 1, -1, -1) if reverse else range(a.shape[1])
    for t in steps:
        if h is None:
            out[:, t].copy_(b[:, t])
        else:
            torch.addcmul(b[:, t], a[:, t], h, out=out[:, t])
        h = out[:, t]
    assert h is not None
    return h


def _scan_into(
    a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, h0: torch.Tensor | None, reverse: bool
) -> torch.Tensor | None:
    """Writes the scan of ``(a, b)`` along dim 1 into ``out``; returns the final state.

    Forward: ``h_t = a_t * h_{t-1} + b_t`` with ``h_{-1} = h0``. Reverse: ``h_t = a_t * h_{t+1} +
    b_t`` with ``h_L = h0``. ``h0`` None means a zero state. The tensors may be strided views along
    dim 1 (the backward passes shifted views to avoid copies).
    """
    length = a.shape[1]
    if length == 0:
        return h0
    if length <= _SEQUENTIAL_MAX:
        return _sequential(a, b, out, h0, reverse)
    size = math.isqrt(length - 1) + 1  # ceil(sqrt(L)) balances the two chunked loops and the carry
    chunks = length // size
    rest = length - chunks * size
    # The chunked region starts where the recurrence starts; the leftover steps run at its end.
    main = slice(rest, length) if reverse else slice(0, chunks * size)
    tail = slice(0, rest) if reverse else slice(chunks * size, length)
    av = a[:, main].unflatten(1, (chunks, size))
    bv = b[:, main].unflatten(1, (chunks, size))
    ov = out[:, main].unflatten(1, (chunks, size))
    steps = range(size - 1, -1, -1) if reverse else range(size)

    # 1. Local scans from a zero state: each chunk's final state and coefficient product.
    first = steps[0]
    local, prod = bv[:, :, first], av[:, :, first]  # views, only read: the loop makes new tensors
    for t in steps[1:]:
        local = torch.addcmul(bv[:, :, t], av[:, :, t], local)
        prod = prod * av[:, :, t]

    # 2. True state at each chunk boundary; chunk c starts from the boundary state of the chunk
    #    before it (after it when reversed), the first one from h0.
    ends = torch.empty_like(local)
    final = _scan_into(prod, local, ends, h0, reverse)
    start = torch.zeros_like(local) if h0 is None else h0.unsqueeze(1).expand_as(local).clone()
    if reverse:
        start[:, :-1] = ends[:, 1:]
    else:
        start[:, 1:] = ends[:, :-1]

    # 3. Rerun every chunk from its true start state, writing the output.
    h = start
    for t in steps:
        torch.addcmul(bv[:, :, t], av[:, :, t], h, out=ov[:, :, t])
        h = ov[:, :, t]
    if rest:
        final = _sequential(a[:, tail], b[:, tail], out[:, tail], final, reverse)
    return final


def scan_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The recurrence as a plain loop over dim 1 (differentiable by autograd; for tests)."""
    h = torch.zeros_like(b[:, 0])
    states = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        states.append(h)
    return torch.stack(states, dim=1)


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(
            f"linear_scan expects a and b of the same shape (B, L, E, S), got "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )


@torch.library.custom_op("mixnas::linear_scan", mutates_args=())
def linear_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` along dim 1 from ``h_{-1} = 0``; a, b and h are (B, L, E, S).

    Differentiable once (the backward is a reverse scan, not itself differentiable).
    """
    _check(a, b)
    a, b = a.contiguous(), b.contiguous()
    out = torch.empty_like(b)
    _scan_into(a, b, out, None, reverse=False)
    return out


@linear_scan.register_fake
def _linear_scan_fake(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    _check(a, b)
    return torch.empty_like(b)


def _setup_context(
    ctx: torch.autograd.function.FunctionCtx, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
) -> None:
    a, _ = inputs
    ctx.save_for_backward(a, output)


def reverse_scan_(a: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Turns ``grad`` = dL/dh into dL/db for ``h = linear_scan(a, b)``, in place; returns it.

    dL/db_t = dL/dh_t + a_{t+1} dL/db_{t+1}: a reverse scan whose coefficients are ``a`` shifted by
    one step, passed as views (a[:, 1:] against grad[:, :-1]) and started from the last step, whose
    gradient is already final. Each position is read before it is overwritten, so the scan can
    write into its own input. ``grad`` must be contiguous.
    """
    if grad.shape[1] > 1:
        _scan_into(a[:, 1:], grad[:, :-1], grad[:, :-1], grad[:, -1], reverse=True)
    return grad


def _backward(
    ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    a, h = ctx.saved_tensors  # type: ignore[attr-defined]
    grad_b = reverse_scan_(a.contiguous(), grad.clone(memory_format=torch.contiguous_format))
    grad_a = None
    if ctx.needs_input_grad[0]:  # type: ignore[attr-defined]
        # dL/da_t = dL/db_t * h_{t-1}, with h_{-1} = 0.
        grad_a = torch.empty_like(grad_b)
        grad_a[:, 0] = 0
        torch.mul(grad_b[:, 1:], h[:, :-1], out=grad_a[:, 1:])
    return grad_a, grad_b


linear_scan.register_autograd(_backward, setup_context=_setup_context)
