"""A shared check: a spec's built model matches its analytic costs and trains (`mixnas.testing`)."""

from __future__ import annotations

import math

import torch

from evaluators.counting import count_macs
from search_space import build_model, example_input, spec_cost
from search_space.plan import output_shape
from search_space.spec import ArchSpec


def built_matches_analytic(spec: ArchSpec, *, rel_tol: float = 1e-9) -> None:
    """Parameters equal the analytic count, fvcore's MACs (with mixnas's handlers) equal the
    analytic MACs within ``rel_tol``, and a forward and backward pass run finite; the output has
    the shape its head declares (`search_space.plan.output_shape`): ``(B, classes)``,
    ``(B, L, vocab)`` for a causal (LM) head, ``(B, classes, H, W)`` for a segmentation head,
    ``(B, C, sH, sW)`` for a super-resolution head."""
    model = build_model(spec)
    cost = spec_cost(spec)
    assert sum(p.numel() for p in model.parameters()) == cost.params
    out = model(example_input(spec, batch_size=2))
    assert tuple(out.shape) == output_shape(spec, 2), (tuple(out.shape), output_shape(spec, 2))
    assert torch.isfinite(out).all()
    out.sum().backward()
    counted = count_macs(model, example_input(spec, batch_size=1))
    assert math.isclose(counted, cost.macs, rel_tol=rel_tol), (counted, cost.macs)
