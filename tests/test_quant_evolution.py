"""Evol-Q's scale search (evaluators.quant_evolution): it only ever keeps better scales, it is
seeded, and its loss ranks matching outputs first."""

from __future__ import annotations

import torch

from evaluators.quant_evolution import (
    EvolQConfig,
    block_quantizers,
    evolve_scales,
    info_nce,
    quantize_ptq,
)
from search_space import build_model, load_space
from search_space.quant import Quant, with_policy

SPACE = "recipes/spaces/evolq_vit.yaml"


def _setup() -> tuple[torch.nn.Module, torch.nn.Module, object, torch.Tensor]:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = load_space(str(root / SPACE)).sample(0)
    spec = with_policy(spec, Quant(3, 4, "per_tensor"))  # coarse: PTQ clearly off the float
    model = build_model(spec, seed=0, quantize=False).eval()
    x = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return model, quantize_ptq(model, spec, [x[:16], x[16:]], "minmax"), spec, x


def test_info_nce_prefers_the_matching_rows() -> None:
    a = torch.randn(8, 10, generator=torch.Generator().manual_seed(1))
    shuffled = a[torch.randperm(8, generator=torch.Generator().manual_seed(2))]
    assert info_nce(a, a, 0.1) < info_nce(a, shuffled, 0.1)


def test_the_search_keeps_only_improvements_and_is_seeded() -> None:
    model, quantized, spec, x = _setup()
    groups = block_quantizers(quantized, spec)
    assert len(groups) >= 6 and all(q.frozen for _, qs in groups for q in qs)
    before = [q.lo.clone() for _, qs in groups for q in qs]
    config = EvolQConfig(passes=2, population=4, sigma=0.2, seed=3)
    result = evolve_scales(quantized, model, spec, x, config)
    assert result.tried == 2 * 4 * len(groups)
    assert result.final_loss <= result.baseline_loss
    assert all(b <= a for a, b in zip(result.history, result.history[1:], strict=False))
    after = [q.lo for _, qs in groups for q in qs]
    changed = any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert changed == (result.accepted > 0)
    if result.accepted:
        assert result.final_loss < result.baseline_loss
    _, again, _, _ = _setup()
    second = evolve_scales(again, model, spec, x, config)
    assert second.history == result.history
