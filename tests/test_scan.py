"""The ``mixnas::linear_scan`` custom op against a plain loop: values, gradients, registration."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from evaluators.counting import count_macs
from search_space.nn.scan import linear_scan, reverse_scan_, scan_reference

# Lengths around the chunking thresholds: sequential (<= 16), exact squares, remainders.
LENGTHS = (1, 2, 16, 17, 25, 49, 64, 100, 303)


def _inputs(
    length: int, dtype: torch.dtype = torch.float64, seed: int = 0, shape: tuple[int, int] = (3, 4)
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(2, length, *shape, generator=gen, dtype=dtype)
    b = torch.randn(2, length, *shape, generator=gen, dtype=dtype)
    return a, b


@pytest.mark.parametrize("length", LENGTHS)
def test_values_match_loop(length: int) -> None:
    a, b = _inputs(length)
    torch.testing.assert_close(linear_scan(a, b), scan_reference(a, b))


@pytest.mark.parametrize("length", LENGTHS)
def test_gradients_match_loop(length: int) -> None:
    a, b = _inputs(length)
    a.requires_grad_(True)
    b.requires_grad_(True)
    grad = torch.randn(a.shape, generator=torch.Generator().manual_seed(1), dtype=a.dtype)
    got = torch.autograd.grad(linear_scan(a, b), (a, b), grad)
    want = torch.autograd.grad(scan_reference(a, b), (a, b), grad)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("length", [5, 40])
def test_gradcheck(length: int) -> None:
    a, b = _inputs(length, shape=(2, 3))
    assert torch.autograd.gradcheck(linear_scan, (a.requires_grad_(), b.requires_grad_()))


def test_only_b_requires_grad() -> None:
    a, b = _inputs(30)
    b.requires_grad_(True)
    (grad_b,) = torch.autograd.grad(linear_scan(a, b).sum(), b)
    (want,) = torch.autograd.grad(scan_reference(a, b).sum(), b)
    torch.testing.assert_close(grad_b, want)


def test_underflowing_coefficients() -> None:
    # decays exp(dt * A) underflow to exactly 0 for large steps: the scan must just reset there
    a, b = _inputs(200, dtype=torch.float32)
    a[:, ::7] = 0.0
    a[:, 3::11] = 1e-30
    h = linear_scan(a, b)
    assert torch.isfinite(h).all()
    torch.testing.assert_close(h, scan_reference(a, b))
    assert torch.equal(h[:, 7], b[:, 7])


def test_float32_long_sequence() -> None:
    a, b = _inputs(3136, dtype=torch.float32, shape=(4, 2))
    torch.testing.assert_close(linear_scan(a, b), scan_reference(a, b), rtol=1e-4, atol=1e-4)


def test_reverse_scan_in_place() -> None:
    a, _ = _inputs(77)
    grad = torch.randn(a.shape, generator=torch.Generator().manual_seed(2), dtype=a.dtype)
    want = torch.zeros_like(grad)
    acc = torch.zeros_like(grad[:, 0])
    for t in range(grad.shape[1] - 1, -1, -1):
        acc = grad[:, t] + (a[:, t + 1] * acc if t + 1 < grad.shape[1] else 0)
        want[:, t] = acc
    out = grad.clone()
    assert reverse_scan_(a, out) is out
    torch.testing.assert_close(out, want)


def test_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        linear_scan(torch.rand(1, 4, 2, 3), torch.rand(1, 4, 2, 2))


def test_op_registration() -> None:
    # schema, fake (meta) kernel, autograd registration and AOT dispatch
    a, b = _inputs(20, dtype=torch.float32)
    torch.library.opcheck(linear_scan, (a.requires_grad_(), b.requires_grad_()))


class _ScanModule(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return linear_scan(a, b)


def test_counted_as_one_mac_per_element() -> None:
    a, b = _inputs(50, dtype=torch.float32)
    assert count_macs(_ScanModule(), (a, b)) == a.numel()


@pytest.mark.slow
def test_selective_ssm_speed() -> None:
    """Forward + backward of the default selective_ssm at 56x56 tokens, width 64, batch 8.

    On one thread: intra-op threads that share their cores with other processes stall at every
    op's barrier, which would measure the machine's load rather than the mixer.
    """
    from search_space.nn.mixers.ssm import SelectiveSSM

    module = SelectiveSSM(
        64, grid=(56, 56), state=16, expand=2, conv_kernel=4, dt_rank=0, bidirectional=False
    )
    x = torch.randn(8, 56 * 56, 64, requires_grad=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            module(x).square().mean().backward()
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    assert best < 2.0, f"selective_ssm forward+backward took {best:.2f} s"
