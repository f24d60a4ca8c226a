"""A strict supernet holds every built-in space, spaces around zoo models of every family, and
structured stages; an op without a sharing rule is named by the contract check and refused by a
strict supernet; packed, grouped and centred axes are cut piece by piece."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from evaluators.supernet import Supernet
from evaluators.supernet.rules import Slot, take
from search_space import SearchSpace, load_space, zoo
from search_space.errors import SpaceError
from search_space.ops import REGISTRIES, TOKEN_MIXERS
from search_space.ops.sharing import Sharing, missing_sharing
from search_space.scaling import Dims, apply_dims, round_width, width_quantum
from search_space.spaces import names as builtin_spaces
from search_space.spec import ArchSpec
from tests.supernet_helpers import assert_extract_matches, temporarily_registered

ROOT = Path(__file__).resolve().parents[1]
SPECS = 8


def _sampled(space: SearchSpace, seed: int = 0) -> list[ArchSpec]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(SPECS)]


@pytest.mark.parametrize("name", builtin_spaces())
def test_every_builtin_space_is_a_strict_supernet(name: str) -> None:
    space = load_space(name)
    supernet = Supernet(space, seed=0)
    assert_extract_matches(supernet, _sampled(space))


# -- spaces around zoo models -------------------------------------------------------------------

# one or more per family, together every op the built-in spaces lack and every structure
ZOO = {
    "maxvit_t": {},  # MBConv, grid and window attention, MBConv downsampling
    "levit_128": {},  # conv stack, LeViT attention, attention subsampling
    "nextvit_s": {"factor": 2, "depth": 1},  # MHCA, HiLo, grow, channel slices, no residual
    "casvit_m": {},  # additive attention, local integration
    "internimage_t": {},  # deformable convolution
    "hornet_t": {},  # g^n conv
    "mambaout_t": {},  # gated CNN
    "dinat_t": {},  # neighbourhood attention
    "biformer_s": {},  # routing attention
    "volo_d1": {},  # outlook attention, class attention on prefix tokens, embed
    "cvt_13": {},  # convolutional attention
    "t2t_vit_14": {},  # soft split tokenizer
    "kat_s": {},  # KAN channel mixer
    "davit_t": {},  # channel attention
    "flatten_swin_t": {},  # focused linear attention, patch merging
    "sret_s": {},  # shared blocks
    "matvit_b16": {},  # nested MLPs
    "fit_template": {},  # latent tokens, latent-scope blocks
    "unet_template": {},  # skips, upsampling
}


def _small(name: str, factor: int = 8, depth: int = 2) -> ArchSpec:
    """The zoo model at 1/``factor`` of its widths, at most ``depth`` blocks per stage and the
    smallest input resolution its stages accept."""
    spec = zoo.get(name)
    widths = tuple(round_width(st.width / factor, width_quantum(st)) for st in spec.stages)
    depths = tuple(min(d, depth) for d in spec.depths)
    error: SpaceError | None = None
    for resolution in (32, 64, 96, 128):
        try:
            return apply_dims(spec, Dims(depths, widths, resolution))
        except SpaceError as err:
            error = err
    assert error is not None
    raise error


@pytest.mark.parametrize("name", list(ZOO))
def test_spaces_around_zoo_models_are_strict_supernets(name: str) -> None:
    space = zoo.space_around(_small(name, **ZOO[name]), depth=1, width=(0.75, 1.0))
    supernet = Supernet(space, seed=0)
    assert_extract_matches(supernet, _sampled(space))


def test_structured_ranged_stages_share_weights() -> None:
    # every block repeated 1-2 times (SReT) and MatFormer MLPs nested in one parent of ratio 4
    data: dict[str, Any] = {
        "name": "structured",
        "input": {"kind": "image", "channels": 3, "resolution": 16, "num_classes": 4},
        "stem": {"name": "patch_embed", "patch_size": 2},
        "token_mixers": {"dwconv": {"kernel": [3, 5]}, "attention": {"head_dim": 16}},
        "channel_mixers": {"mlp": {"ratio": [2.0, 4.0]}},
        "stages": [
            {"depth": [1, 2], "width": [16, 32], "repeat": [1, 2], "nested_ratio": 4.0},
            {"depth": [1, 2], "width": [32, 48], "downsample": "patch_merging", "repeat": [1, 2]},
        ],
        "head": {"name": "classifier"},
    }
    space = SearchSpace.from_dict(data)
    supernet = Supernet(space, seed=0)
    specs = _sampled(space)
    assert {b.repeat for s in specs for b in s.blocks} == {1, 2}
    assert_extract_matches(supernet, specs)
    # a repeated block reads the weights of the block it repeats: no weights per repeat count
    once = [{k: v for k, v in st.items() if k != "repeat"} for st in data["stages"]]
    assert len(supernet.weights) == len(
        Supernet(SearchSpace.from_dict({**data, "stages": once})).weights
    )


def test_every_norm_at_every_block_position_is_held() -> None:
    # one mixer, three norms: the covering specs differ only in where each norm sits
    data: dict[str, Any] = {
        "name": "norms",
        "input": {"kind": "image", "channels": 1, "resolution": 8, "num_classes": 3},
        "stem": {"name": "patch_embed", "patch_size": 2},
        "token_mixers": {"dwconv": {"kernel": 3}},
        "channel_mixers": {"mlp": {"ratio": 2.0}},
        "norms": ["layernorm", "batchnorm", "rmsnorm"],
        "stages": [{"depth": [1, 2, 3], "width": [8, 16], "patterns": ["free"]}],
        "head": {"name": "classifier"},
    }
    space = SearchSpace.from_dict(data)
    supernet = Supernet(space, seed=0)
    keys = {name.replace("~", ".").split("/")[0] for name in supernet.weights}
    for j in range(3):
        for branch in ("token", "channel"):
            assert {f"s0.b{j}.{branch}.norm.{norm}" for norm in data["norms"]} <= keys
    assert_extract_matches(supernet, _sampled(space, seed=2))


# -- an op without a sharing rule ---------------------------------------------------------------


def _unshared(name: str = "dwconv_unshared") -> Any:
    return dataclasses.replace(TOKEN_MIXERS.get("dwconv"), name=name, sharing=None)


def test_the_contract_check_names_an_op_without_a_rule() -> None:
    assert missing_sharing(REGISTRIES) == []
    with temporarily_registered(_unshared()):
        problems = missing_sharing(REGISTRIES)
    assert len(problems) == 1 and "token_mixer 'dwconv_unshared'" in problems[0]
    assert "dwconv_unshared" not in TOKEN_MIXERS


def test_the_contract_suite_fails_for_an_op_without_a_rule(tmp_path: Path) -> None:
    # a plug-in registers an op without a rule before the contract suite runs
    (tmp_path / "unshared_plugin.py").write_text(
        "import dataclasses\n"
        "from search_space.ops import TOKEN_MIXERS, register\n"
        "register(dataclasses.replace(TOKEN_MIXERS.get('dwconv'), name='my_mixer', "
        "sharing=None))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    test = "tests/contracts/test_sharing.py::test_every_registered_op_declares_a_sharing_rule"
    plugin = ["-p", "no:cacheprovider", "-p", "unshared_plugin"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *plugin, test],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "token_mixer 'my_mixer' declares no weight-sharing rule" in run.stdout


def test_a_strict_supernet_refuses_an_op_without_a_rule_and_a_lenient_one_holds_it() -> None:
    data = {
        "name": "unshared",
        "input": {"kind": "image", "channels": 1, "resolution": 8, "num_classes": 3},
        "stem": {"name": "patch_embed", "patch_size": 2},
        "token_mixers": {"dwconv_unshared": {"kernel": [3, 5]}, "pooling": {}},
        "channel_mixers": {"mlp": {"ratio": 2.0}},
        "stages": [{"depth": [1, 2], "width": [8, 16], "patterns": ["uniform", "free"]}],
        "head": {"name": "classifier"},
    }
    with temporarily_registered(_unshared()):
        space = SearchSpace.from_dict(data)
        with pytest.raises(SpaceError, match="'dwconv_unshared' declares no weight-sharing rule"):
            Supernet(space)
        lenient = Supernet(space, strict=False)  # one weight set per exact shape
        specs = [s for s in _sampled(space, seed=1) if "dwconv_unshared" in s.mixer_names()]
        assert specs
        assert_extract_matches(lenient, specs)
        keys = [k for k in lenient.weights if "dwconv_unshared" in k]
        assert keys and all("kernel=" in k and "@g" in k and "@d" in k for k in keys)


def test_a_sharing_rule_names_only_the_ops_parameters() -> None:
    odd = dataclasses.replace(
        TOKEN_MIXERS.get("dwconv"), name="dwconv_odd", sharing=Sharing(elastic=("kernal",))
    )
    with temporarily_registered(odd):
        problems = missing_sharing(REGISTRIES)
    assert problems == ["token_mixer 'dwconv_odd': elastic parameter 'kernal' is not a parameter"]
    with pytest.raises(ValueError, match="keyed_by"):
        Sharing(keyed_by=("height",))


# -- cutting packed, grouped and centred axes ---------------------------------------------------


def test_pieces_of_relative_sizes_keep_their_prefixes() -> None:
    # g^n conv, order 3: proj_in packs [p0 | g0 g1 g2] in widths 1 : 1 : 2 : 4 of the width
    full = torch.arange(16.0).reshape(16, 1)  # width 8: p0 0-1, g0 2-3, g1 4-7, g2 8-15
    cut = take(full, (8, 1), Slot("k", (0, (1, 1, 2, 4)), conv=False))
    assert cut.flatten().tolist() == [0, 2, 4, 5, 8, 9, 10, 11]
    # channels in 4 groups (deformable conv, KAN): each group keeps its first channels
    grouped = take(torch.arange(8.0), (4,), Slot("k", (0, 4), conv=False))
    assert grouped.tolist() == [0, 2, 4, 6]
    with pytest.raises(ValueError, match="pieces"):
        take(torch.arange(8.0), (3,), Slot("k", (0, 4), conv=False))


def test_relative_offset_tables_keep_their_centre() -> None:
    # a neighbourhood's relative-position bias (heads, 2k-1, 2k-1): kernel 5 -> 3
    table = torch.arange(2 * 9 * 9.0).reshape(2, 9, 9)
    cut = take(table, (1, 5, 5), Slot("k", None, conv=False, centred=1))
    assert torch.equal(cut, table[:1, 2:7, 2:7])


def test_elastic_parameters_share_one_tensor_and_keyed_ones_do_not() -> None:
    space = load_space("hybrid_cpu")
    supernet = Supernet(space, seed=0)
    keys = [name.replace("~", ".") for name in supernet.weights]  # ParameterDict names
    # window attention: head size and shift are elastic; the grid keys its relative positions
    window = [k for k in keys if k.startswith("s0.b0.token.window_attention(")]
    assert window and not any("shift=" in k or "head_dim=" in k for k in window)
    assert all("@g" in k for k in window)
    # the selective SSM's packed x_proj has a width-dependent rank: one set per width
    ssm = {k.split("@d")[1].split("/")[0] for k in keys if ".selective_ssm(" in k}
    assert len(ssm) == len(space.decl.stages[2].widths)
