"""The weight-sharing supernet: extracted subnets equal the active supernet, shapes equal the
builder's, slicing keeps packed axes and kernel centres, and unsupported ops are refused."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

from evaluators.supernet import Supernet
from evaluators.supernet.rules import Slot, take
from search_space import SearchSpace, build_model, example_input
from search_space.errors import SpaceError
from search_space.nn.builder import MixNet, count_params
from search_space.ops import TOKEN_MIXERS
from tests.supernet_helpers import temporarily_registered

# several mixer types per stage, elastic depth, width, kernel, head size, MLP ratio, norms
TINY_HYBRID: dict[str, Any] = {
    "name": "tiny_hybrid",
    "input": {"kind": "image", "channels": 1, "resolution": 16, "num_classes": 10},
    "stem": {"name": "patch_embed", "patch_size": 2, "norm": "layernorm"},
    "token_mixers": {
        "attention": {"head_dim": [8, 16]},
        "dwconv": {"kernel": [3, 5]},
        "pooling": {},
        "identity": {},
        "sepconv": {"kernel": 3},
        "window_attention": {"window": 4, "head_dim": 8, "shift": [False, True]},
        "token_mlp": {"ratio": 0.5},
        "global_filter": {},
        "selective_ssm": {"state": 4, "expand": 1},
    },
    "channel_mixers": {"mlp": {"ratio": [1.0, 2.0]}, "glu": {"ratio": 2.0}},
    "norms": ["layernorm", "batchnorm"],
    "layer_scale": [None, 1.0e-5],
    "stages": [
        {
            "depth": [1, 2],
            "width": [16, 32],
            "token_mixers": ["dwconv", "pooling", "sepconv", "window_attention", "identity"],
            "patterns": ["uniform", "free"],
        },
        {
            "depth": [1, 2],
            "width": [32, 48],
            "downsample": [
                {"name": "conv", "kernel": 2, "norm": "layernorm", "norm_position": "pre"},
                "patch_merging",
            ],
            "token_mixers": ["attention", "dwconv", "token_mlp", "global_filter", "selective_ssm"],
            "patterns": ["uniform", "free"],
        },
    ],
    "head": {"name": "classifier", "pool": "gap", "norm": "layernorm"},
}


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.from_dict(TINY_HYBRID)


@pytest.fixture(scope="module")
def supernet(space: SearchSpace) -> Supernet:
    return Supernet(space, seed=0)


def test_extract_matches_the_supernet_for_100_specs(space: SearchSpace, supernet: Supernet) -> None:
    rng = np.random.default_rng(1)
    for _ in range(100):
        spec = space.sample(rng)
        supernet.configure(spec).eval()
        x = example_input(spec, batch_size=3)
        with torch.no_grad():
            expected = supernet(x)
            model = supernet.extract(spec).eval()
            got = model(x)
        assert type(model) is MixNet and model.spec_id == spec.id
        assert count_params(model) == count_params(build_model(spec))
        assert torch.allclose(got, expected, atol=1e-5, rtol=0), spec.id


# a class token added mid-network (CaiT/VOLO style), read by class attention and the head
CLASS_TOKENS: dict[str, Any] = {
    "name": "class_tokens",
    "input": {"kind": "image", "channels": 1, "resolution": 16, "num_classes": 10},
    "stem": {"name": "patch_embed", "patch_size": 2, "norm": "layernorm"},
    "token_mixers": {
        "attention": {"head_dim": [8, 16]},
        "class_attention": {"head_dim": [8, 16]},
        "dwconv": {"kernel": [3, 5]},
        "pooling": {},
    },
    "channel_mixers": {"mlp": {"ratio": [1.0, 2.0]}},
    "stages": [
        {"depth": [1, 2], "width": [16, 32], "token_mixers": ["dwconv", "pooling"]},
        {
            "depth": [1, 2],
            "width": [32, 48],
            "downsample": [
                {"name": "embed", "class_token": "learned", "pos_embed": "learned"},
                {"name": "embed", "class_token": "learned"},
            ],
            "token_mixers": ["attention", "class_attention"],
            "patterns": ["uniform", "free"],
        },
    ],
    "head": {"name": "classifier", "pool": "cls", "norm": "layernorm"},
}


def test_class_attention_and_mid_network_class_tokens_share_weights_too() -> None:
    space = SearchSpace.from_dict(CLASS_TOKENS)
    supernet = Supernet(space, seed=0).eval()
    rng = np.random.default_rng(3)
    mixers = set()
    for _ in range(20):
        spec = space.sample(rng)
        mixers |= {b.token_mixer.name for b in spec.blocks}
        x = example_input(spec, batch_size=2)
        with torch.no_grad():
            expected = supernet.configure(spec)(x)
            model = supernet.extract(spec).eval()
            assert count_params(model) == count_params(build_model(spec))
            assert torch.allclose(model(x), expected, atol=1e-5, rtol=0), spec.id
    assert "class_attention" in mixers


def test_train_mode_matches_too(space: SearchSpace, supernet: Supernet) -> None:
    # batch norm uses batch statistics in train mode: the same in both models
    rng = np.random.default_rng(2)
    for _ in range(5):
        spec = space.sample(rng)
        supernet.configure(spec).train()
        x = example_input(spec, batch_size=4)
        with torch.no_grad():
            assert torch.allclose(supernet.extract(spec).train()(x), supernet(x), atol=1e-5)
    supernet.eval()


def test_subnets_share_weights_and_gradients_reach_them(
    space: SearchSpace, supernet: Supernet
) -> None:
    small, large = supernet.smallest(), supernet.largest()
    assert sum(small.depths) < sum(large.depths) and small.widths < large.widths
    shared = {id(p) for p in supernet.parameters()}
    supernet.zero_grad()
    supernet.configure(small).train()
    supernet(example_input(small, batch_size=2)).sum().backward()
    touched = [n for n, p in supernet.weights.items() if p.grad is not None]
    assert touched and len(touched) < len(supernet.weights)
    assert len(shared) == len(list(supernet.parameters()))
    # the smallest subnet's stem is a prefix of the largest's: both read the same tensor
    name = next(n for n in supernet.subnet_parameters(small) if n.startswith("stem."))
    before = supernet.subnet_parameters(large)[name].detach().clone()
    with torch.no_grad():
        supernet.subnet_parameters(small)[name].add_(1.0)
    after = supernet.subnet_parameters(large)[name]
    width = supernet.subnet_parameters(small)[name].shape[0]
    assert torch.allclose(after[:width] - before[:width], torch.ones_like(before[:width]))
    assert torch.equal(after[width:], before[width:])
    supernet.zero_grad()


def test_packed_axes_keep_each_piece_and_kernels_keep_their_centre() -> None:
    qkv = torch.arange(12.0).reshape(12, 1)  # q = 0..3, k = 4..7, v = 8..11
    cut = take(qkv, (6, 1), Slot("k", (0, 3), conv=False))
    assert cut.flatten().tolist() == [0, 1, 4, 5, 8, 9]
    kernel = torch.arange(25.0).reshape(1, 1, 5, 5)
    centre = take(kernel, (1, 1, 3, 3), Slot("k", None, conv=True))
    assert centre.flatten().tolist() == [6, 7, 8, 11, 12, 13, 16, 17, 18]
    plain = take(torch.arange(6.0).reshape(2, 3), (1, 2), Slot("k", None, conv=False))
    assert plain.tolist() == [[0.0, 1.0]]


def test_recalibration_sets_batch_norm_statistics(space: SearchSpace, supernet: Supernet) -> None:
    rng = np.random.default_rng(3)
    spec = next(s for s in (space.sample(rng) for _ in range(200)) if "batchnorm" in s.to_json())
    supernet.configure(spec)
    batches = [example_input(spec, batch_size=8, seed=k) * 3 + 1 for k in range(3)]
    assert supernet.recalibrate(batches) > 0
    supernet.eval()
    model = supernet.extract(spec).eval()
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    assert bn.num_batches_tracked.item() == 3
    x = example_input(spec, batch_size=2)
    with torch.no_grad():
        assert torch.allclose(model(x), supernet(x), atol=1e-5)


def test_an_op_without_a_sharing_rule_is_refused_by_name(space: SearchSpace) -> None:
    # every built-in op declares a rule; a plug-in op without one (here a copy of gated_cnn)
    unshared = dataclasses.replace(TOKEN_MIXERS.get("gated_cnn"), name="gated_plain", sharing=None)
    data = {**TINY_HYBRID, "token_mixers": {**TINY_HYBRID["token_mixers"], "gated_plain": {}}}
    stages = [dict(s) for s in TINY_HYBRID["stages"]]
    stages[1]["token_mixers"] = [*stages[1]["token_mixers"], "gated_plain"]
    data["stages"] = stages
    with temporarily_registered(unshared):
        odd = SearchSpace.from_dict(data)
        with pytest.raises(SpaceError, match=r"'gated_plain' declares no weight-sharing rule"):
            Supernet(odd)
        lenient = Supernet(odd, strict=False)  # one weight set per shape: still exact
        rng = np.random.default_rng(4)
        specs = (odd.sample(rng) for _ in range(500))
        spec = next(s for s in specs if "gated_plain" in s.mixer_names())
        lenient.configure(spec).eval()
        x = example_input(spec)
        with torch.no_grad():
            assert torch.allclose(lenient.extract(spec).eval()(x), lenient(x), atol=1e-5)


def test_a_spec_outside_the_supernet_is_refused(supernet: Supernet, space: SearchSpace) -> None:
    spec = space.sample(0)
    wider = spec.replace(stages=(dataclasses.replace(spec.stages[0], width=64), *spec.stages[1:]))
    with pytest.raises(SpaceError, match="does not hold"):
        supernet.configure(wider)


def test_seeded_construction_is_deterministic(space: SearchSpace) -> None:
    first, again = Supernet(space, seed=0), Supernet(space, seed=0)
    other = Supernet(space, seed=1)
    names = list(first.weights)
    assert names == list(again.weights)
    assert all(torch.equal(first.weights[n], again.weights[n]) for n in names)
    assert not all(torch.equal(first.weights[n], other.weights[n]) for n in names)


def test_bit_widths_share_weights_and_extract_still_matches() -> None:
    data = {
        **TINY_HYBRID,
        "quantization": {"scope": "per_stage", "weight_bits": [4, 8, 32], "act_bits": [8, 32]},
    }
    quantized = SearchSpace.from_dict(data)
    supernet = Supernet(quantized, seed=0)
    assert len(supernet.weights) == len(Supernet(SearchSpace.from_dict(TINY_HYBRID)).weights)
    rng = np.random.default_rng(6)
    for _ in range(10):
        spec = quantized.sample(rng)
        supernet.configure(spec).eval()
        x = example_input(spec)
        with torch.no_grad():
            assert torch.allclose(supernet.extract(spec).eval()(x), supernet(x), atol=1e-5)
