"""NAS-Bench-201 in mixnas's spec language: arch strings, the space, and NB201's exact sizes.

The reference parameter counts are NASLib's (NAS-Bench-Suite-Zero's ``params`` field, in millions
with six decimals, i.e. exact to one parameter); the reference arch strings are NATS-Bench's 15625.
Both live in /work/shared/data; the checks that need them skip when it is absent.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluators.counting import count_macs
from search_space import ArchSpec, SpaceError, build_model, example_input, load_space, spec_cost
from search_space.ops.token_mixers.nb201 import EDGES
from search_space.spaces.nb201 import (
    DATASETS,
    OPS,
    NB201Space,
    format_arch_str,
    from_arch_str,
    from_ops,
    naslib_ops,
    to_arch_str,
)

DATA = Path(__file__).parents[2] / "shared" / "data"
NASLIB_ZC = DATA / "naslib_zc_proxies" / "zc_nasbench201_subset.json"
NASLIB_FULL = DATA / "naslib_zc_proxies" / "nb201_zen_valacc_full.csv"
NATS = DATA / "nb201_nats_test_acc" / "nats_bench.csv"


BEST_C10 = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
)
MIXED = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|skip_connect~1|nor_conv_3x3~2|"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"reference data not available: {path}")
    return path


@cache
def nats_strings() -> tuple[str, ...]:
    with _need(NATS).open(newline="") as f:
        return tuple(row["ArchitectureString"] for row in csv.DictReader(f))


@cache
def naslib_cells() -> tuple[tuple[str, tuple[str, ...], int], ...]:
    """(dataset, edge ops, exact reference params) of every cell of the NASLib subset."""
    data = json.loads(_need(NASLIB_ZC).read_text())
    cells = []
    for dataset, records in data.items():
        for key, record in records.items():
            millions = record["params"]["score"]
            exact = round(millions * 1e6)
            # six decimals in millions: the field is exact to one parameter
            assert math.isclose(exact / 1e6, millions, abs_tol=1e-9), (key, millions)
            cells.append((dataset, tuple(naslib_ops(key)), exact))
    return tuple(cells)


# -- arch strings ----------------------------------------------------------------------------------


def test_ops_are_nb201_canonical_order() -> None:
    assert OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert EDGES == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


def test_spec_shape() -> None:
    spec = from_arch_str(BEST_C10)
    assert spec.input.num_classes == 10 and spec.input.resolution == (32, 32)
    assert spec.widths == [16, 32, 64] and spec.depths == [5, 5, 5]
    assert [s.downsample.name for s in spec.stages] == ["none", "resnet_basic", "resnet_basic"]
    for block in spec.blocks:
        assert block.token_mixer.name == "nb201_cell"
        assert block.token_mixer["edges"] == (3, 3, 3, 1, 2, 3)
        assert block.channel_mixer.name == "none" and block.norm == "none"
        assert block.layer_scale is None and not block.residual
    assert spec.stem["bias"] is False and spec.stem["norm"] == "batchnorm"
    assert spec.head["norm_position"] == "pre_pool" and spec.head["act"] == "relu"
    again = ArchSpec.from_json(spec.to_json())
    assert again == spec and again.id == spec.id and to_arch_str(again) == BEST_C10
    for dataset, (classes, res) in DATASETS.items():
        other = from_arch_str(BEST_C10, dataset=dataset)
        assert other.input.num_classes == classes and other.input.resolution == (res, res)


def test_every_nats_string_round_trips() -> None:
    strings = nats_strings()
    assert len(strings) == 15625 == len(set(strings))
    space = NB201Space()
    for s in strings:
        spec = from_arch_str(s)
        assert to_arch_str(spec) == s
        assert space.decode(space.encode(spec)) == spec
    assert {space.arch_str(v) for v in np.ndindex(*(d.size for d in space.dims))} == set(strings)


def test_naslib_op_codes_map_to_the_nb201_strings() -> None:
    """Checks the NASLib key mapping the params test relies on, on all 15625 cells."""
    with _need(NASLIB_FULL).open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15625
    for row in rows:
        codes = tuple(int(c) for c in row["naslib_op_indices"].split("-"))
        assert format_arch_str(naslib_ops(codes)) == row["arch_str"]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "nonsense",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|",  # two nodes only
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|+|none~0|none~1|none~2|",  # node 2 lacks an input
        "|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # unknown op
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",  # wrong source node
        "|none~0|+|none~1|none~0|+|none~0|none~1|none~2|",  # sources out of order
        "|none|+|none~0|none~1|+|none~0|none~1|none~2|",  # no source
        "none~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # missing bar
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|",  # extra node
    ],
)
def test_malformed_strings_raise(bad: str) -> None:
    with pytest.raises(SpaceError, match="arch_str"):
        from_arch_str(bad)


def test_unknown_dataset_raises() -> None:
    with pytest.raises(SpaceError, match="dataset"):
        from_arch_str(BEST_C10, dataset="imagenet")
    with pytest.raises(SpaceError, match="dataset"):
        NB201Space("mnist")


def test_to_arch_str_rejects_other_specs() -> None:
    spec = from_arch_str(BEST_C10)
    other = from_arch_str(MIXED)
    mixed_cells = spec.replace(stages=(spec.stages[0], other.stages[1], spec.stages[2]))
    stages = list(spec.stages)
    stages[1] = dataclasses.replace(stages[1], width=48)
    wider = spec.replace(stages=tuple(stages))
    with pytest.raises(SpaceError):
        to_arch_str(mixed_cells)
    with pytest.raises(SpaceError):
        to_arch_str(wider)
    hybrid = load_space("hybrid").sample(0)
    with pytest.raises(SpaceError):
        to_arch_str(hybrid)


# -- sizes against NAS-Bench-201 -----------------------------------------------------------------


def test_hand_computed_sizes() -> None:
    """NASLib's all-zero and all-conv3x3 cells (values from the data README), no data needed."""
    skeleton = from_ops(["none"] * 6)
    assert spec_cost(skeleton).params == 73306  # stem 464, reductions 14464 + 57600, BN, fc 650
    assert spec_cost(from_ops(["none"] * 6, dataset="cifar100")).params == 79156
    assert spec_cost(from_ops(["nor_conv_3x3"] * 6)).params == 1531546
    # conv + linear MACs of the skeleton (7,783,040) plus its batch norms at 2 MACs per element
    bn_elements = 16 * 32 * 32 + 2 * (32 * 16 * 16) + 2 * (64 * 8 * 8) + 64 * 8 * 8
    assert spec_cost(skeleton).macs == 7783040 + 2 * bn_elements


def test_params_match_naslib_for_every_subset_cell() -> None:
    cells = naslib_cells()
    assert len(cells) == 2173 and {c[0] for c in cells} == set(DATASETS)
    wrong = [
        (dataset, format_arch_str(ops), spec_cost(from_ops(ops, dataset=dataset)).params, ref)
        for dataset, ops, ref in cells
        if spec_cost(from_ops(ops, dataset=dataset)).params != ref
    ]
    assert not wrong, wrong[:5]


def test_built_models_have_the_reference_params() -> None:
    cells = naslib_cells()
    picks = [cells[i] for i in np.random.default_rng(0).choice(len(cells), 20, replace=False)]
    for dataset, ops, ref in picks:
        model = build_model(from_ops(ops, dataset=dataset))
        assert sum(p.numel() for p in model.parameters()) == ref, (dataset, ops)


# -- the built network -----------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_forward_backward(dataset: str) -> None:
    spec = from_arch_str(MIXED, dataset=dataset)
    model = build_model(spec)
    x = example_input(spec, batch_size=4)
    assert x.shape[-1] == DATASETS[dataset][1]
    out = model(x)
    assert out.shape == (4, DATASETS[dataset][0]) and torch.isfinite(out).all()
    out.logsumexp(dim=1).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(
    "arch",
    [
        BEST_C10,
        MIXED,
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",
    ],
)
def test_counted_macs_match_analytic(arch: str) -> None:
    spec = from_arch_str(arch)
    model = build_model(spec)
    counted = count_macs(model, example_input(spec, batch_size=1))
    assert math.isclose(counted, spec_cost(spec).macs, rel_tol=0.02), (counted, spec_cost(spec))


def test_none_edges_give_zeros_of_the_right_shape() -> None:
    from search_space.nn.mixers.nb201 import NB201Cell

    cell = NB201Cell(8, grid=(6, 6), edges=(0, 0, 0, 0, 0, 0))
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    y = cell(x)
    assert y.shape == x.shape and not y.any()
    assert sum(p.numel() for p in cell.parameters()) == 0
    skip = NB201Cell(8, grid=(6, 6), edges=(1, 0, 0, 0, 0, 1))  # node 3 = node 2 = 0; 3 <- 2 skip
    assert not skip(x).any()
    chain = NB201Cell(8, grid=(6, 6), edges=(1, 0, 1, 0, 0, 1))  # 0 -> 1 -> 2 -> 3 by skips
    assert torch.equal(chain(x), x)


# -- the space -------------------------------------------------------------------------------------


def test_space_enumerates_every_cell_once() -> None:
    space = NB201Space()
    assert space.cardinality() == 15625 == len(OPS) ** 6
    assert [d.name for d in space.dims] == [f"edge[{k}]" for k in range(6)]
    assert all(d.choices == OPS for d in space.dims)
    specs = list(space.enumerate())
    assert len(specs) == 15625 == len({s.id for s in specs})
    assert len({s.blocks[0].token_mixer["edges"] for s in specs}) == 15625


def test_space_sampling_and_variation() -> None:
    space = NB201Space("cifar100")
    info = space.describe()
    assert info["cardinality"] == 15625 and info["num_dims"] == 6
    assert info["ops"] == list(OPS) and info["input"]["num_classes"] == 100
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(30):
        spec = space.sample(rng)
        assert space.contains(spec) and spec.input.num_classes == 100
        seen.add(to_arch_str(spec))
        child = space.mutate(spec, rng)
        assert space.contains(child) and child != spec
        a, b = space.encode(spec), space.encode(child)
        assert int((a != b).sum()) == 1
        mate = space.crossover(spec, space.sample(rng), rng)
        assert space.contains(mate)
    assert len(seen) > 20
    spec = from_arch_str(BEST_C10, dataset="cifar100")
    assert len(space.neighbours(spec)) == 6 * (len(OPS) - 1)
    assert space.encode(spec).tolist() == [OPS.index(op) for op in BEST_C10_OPS]
    assert not space.contains(from_arch_str(BEST_C10))  # cifar10 input
    assert not space.contains(load_space("hybrid").sample(0))


BEST_C10_OPS = ["nor_conv_3x3"] * 3 + ["skip_connect", "nor_conv_1x1", "nor_conv_3x3"]
