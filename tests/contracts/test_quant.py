"""Contract every registered token mixer and channel mixer passes under fake quantization
(`mixnas.testing.quant`).

For each op (default parameters and its examples) on a 2-D grid and, where the op supports it, a
1-D sequence: with weights and activations fake-quantized at 4, 6 and 8 bits, the module keeps the
token shape and runs forward and backward without NaN or inf; every Linear/Conv layer carries
quantizers, attention mixers that declare ``QUANT_SCORES`` carry a score quantizer, and 8 bits
stay closer to the float output than 4 bits.
"""

from __future__ import annotations

import pytest

from mixnas.testing.quant import check_quantized_mixer, quant_cases
from search_space.ops import OpContext, OpDef


@pytest.mark.parametrize(("op", "example", "ctx"), quant_cases())
def test_mixer_runs_under_fake_quantization(op: OpDef, example: dict, ctx: OpContext) -> None:
    check_quantized_mixer(op, example, ctx)
