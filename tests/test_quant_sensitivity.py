"""The quantization sensitivity proxy and per-block sensitivities."""

from __future__ import annotations

import torch

from evaluators.proxies import compute
from evaluators.proxies.quantization import FLOOR, block_sensitivity
from search_space import build_model, example_input
from search_space.quant import float_policy, with_policy
from search_space.spec import Quant
from tests.test_quant import tiny_spec


def test_proxy_orders_policies_by_precision() -> None:
    base = tiny_spec()
    scores = {
        bits: compute(
            with_policy(base, Quant(bits, bits), Quant(bits, bits)), ["quant_sensitivity"]
        )
        for bits in (4, 8)
    }
    assert scores[8]["quant_sensitivity"] > scores[4]["quant_sensitivity"]
    float_score = compute(float_policy(base), ["quant_sensitivity"])["quant_sensitivity"]
    assert float_score == -torch.log10(torch.tensor(FLOOR, dtype=torch.float64)).item()


def test_block_sensitivity_per_group_and_model_untouched() -> None:
    spec = with_policy(tiny_spec(), [Quant(8, 8), Quant(32, 32)], Quant(8, 8))
    model = build_model(spec).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = example_input(spec, 4)
    own = block_sensitivity(model, spec, x)
    assert list(own) == [
        "stages[0].blocks[0]",
        "stages[1].blocks[0]",
        "stages[1].blocks[1]",
        "boundary",
    ]
    assert own["stages[0].blocks[0]"] > 0 and own["boundary"] > 0
    assert own["stages[1].blocks[0]"] == own["stages[1].blocks[1]"] == 0.0  # float stage
    coarse = block_sensitivity(model, spec, x, probe=Quant(2, 8))
    fine = block_sensitivity(model, spec, x, probe=Quant(8, 8))
    assert all(coarse[k] > fine[k] > 0 for k in coarse)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert any(type(m).__name__ == "QLinear" for m in model.modules())  # still quantized
