"""8-bit policies in the latency lookup table: their ops are separate entries, timed in int8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from predictors.lut import _unit, decompose, fill_table
from predictors.quantize import quantize_inplace, wants_int8
from predictors.table import LatencyTable, host_settings
from predictors.timing import TimingOptions
from search_space import load_space
from search_space.plan import plan
from search_space.quant import with_policy
from search_space.spec import Quant


def _spec_with_linears():  # type: ignore[no-untyped-def]
    space = load_space("hybrid_cpu")
    rng = np.random.default_rng(0)
    for _ in range(200):
        spec = space.sample(rng)
        if any(b.channel_mixer.name == "mlp" for st in spec.stages for b in st.blocks):
            return spec
    raise AssertionError("no spec with an MLP channel mixer in 200 draws")


def test_eight_bit_ops_are_their_own_entries_timed_with_int8_kernels(tmp_path: Path) -> None:
    base = _spec_with_linears()
    int8 = with_policy(base, Quant(8, 8))
    fp32 = with_policy(base, Quant(32, 32))
    options = TimingOptions(threads=1, warmup=1, repeats=3, min_sample_ms=0.1, dtype="auto")
    table = LatencyTable.open(tmp_path, "host", host_settings(options))
    fill_table(table, [int8, fp32], options)
    int8_sigs, fp32_sigs = set(decompose(int8)), set(decompose(fp32))
    assert int8_sigs - fp32_sigs, "8-bit blocks have signatures of their own"
    assert all(sig in table for sig in int8_sigs | fp32_sigs)

    # the module the table times for an 8-bit MLP is torch's dynamic int8 Linear
    item = next(i for i in plan(int8) if i.role.startswith("channel_mixer") and i.op.name == "mlp")
    assert wants_int8(item.quant, "auto")
    module, _ = _unit(item, int8, 1)
    quantize_inplace(module.eval())
    kinds = {type(m).__module__ for m in module.modules() if "Linear" in type(m).__name__}
    assert any("quantized" in k for k in kinds), kinds
    assert not any(type(m) is torch.nn.Linear for m in module.modules())
