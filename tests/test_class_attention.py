"""Class attention (CaiT): the ``class_attention`` mixer, blocks with ``tokens: prefix``, the
``embed`` downsampler that adds a class token or positions mid-network, and the classifier's
token-labelling head (VOLO, SpectFormer-H)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from search_space import build_model, spec_cost, validate_spec
from search_space.errors import SpaceError
from search_space.nn.block import PrefixOnly
from search_space.nn.mixers.class_attention import ClassAttention
from search_space.plan import plan
from search_space.spec import ArchSpec, Block, InputSpec, Op, Stage
from tests.analytic_check import built_matches_analytic

IMAGE = InputSpec("image", 10, resolution=(8, 8))
CA = Op.of("class_attention", {"head_dim": 4})
MLP = Op.of("mlp", {"ratio": 2.0})


def _spec(
    post: Block,
    *,
    embed: Op | None = None,
    stem_cls: bool = False,
    head: Op | None = None,
    width: int = 8,
) -> ArchSpec:
    """A 2x2-grid network: one attention block, then ``post`` behind an ``embed`` downsampler."""
    stem = Op.of("patch_embed", {"patch_size": 4, "cls_token": stem_cls})
    first = Block(Op.of("attention", {"head_dim": 4}), MLP)
    stages = (
        Stage(8, Op.of("none"), (first,)),
        Stage(width, embed or Op.of("embed"), (post,)),
    )
    return ArchSpec(IMAGE, stem, stages, head or Op.of("classifier", {"pool": "cls"}))


# -- the mixer -------------------------------------------------------------------------------


def _reference_class_attention(mixer: ClassAttention, x: torch.Tensor, p: int) -> torch.Tensor:
    """Class attention with plain ops, head by head: the class rows of the output."""
    d, hd = x.shape[-1], mixer.head_dim
    q = F.linear(x[:, :p], mixer.q.weight, mixer.q.bias)
    kv = F.linear(x, mixer.kv.weight, mixer.kv.bias)
    k, v = kv[..., :d], kv[..., d:]
    heads = []
    for h in range(d // hd):
        cols = slice(h * hd, (h + 1) * hd)
        scores = q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(hd)
        heads.append(torch.softmax(scores, dim=-1) @ v[..., cols])
    return F.linear(torch.cat(heads, dim=-1), mixer.proj.weight, mixer.proj.bias)


@pytest.mark.parametrize("prefix", [1, 2])
def test_class_attention_updates_class_tokens_only_and_matches_a_reference(prefix: int) -> None:
    torch.manual_seed(0)
    mixer = ClassAttention(8, grid=(2, 3), head_dim=4, qkv_bias=True)
    x = torch.randn(2, prefix + 6, 8)
    y = mixer(x)
    assert y.shape == x.shape
    assert torch.equal(y[:, prefix:], torch.zeros_like(y[:, prefix:]))
    expected = _reference_class_attention(mixer, x, prefix)
    torch.testing.assert_close(y[:, :prefix], expected, rtol=1e-5, atol=1e-6)
    # the class rows depend on the grid tokens (keys and values), not only on themselves
    moved = x.clone()
    moved[:, prefix:] += 1.0
    assert not torch.allclose(mixer(moved)[:, :prefix], y[:, :prefix])


def test_class_attention_needs_a_class_token() -> None:
    spec = _spec(Block(CA, MLP), embed=Op.of("embed", {"class_token": "none"}))
    with pytest.raises(SpaceError, match=r"class_attention.*prefix"):
        validate_spec(spec)


# -- blocks with tokens: prefix ---------------------------------------------------------------


def test_prefix_block_leaves_grid_tokens_and_matches_a_reference() -> None:
    spec = _spec(Block(CA, MLP, layer_scale=0.5, tokens="prefix"))
    model = build_model(spec).eval()
    block = model.stages[1][1]
    assert isinstance(block.token, PrefixOnly) and isinstance(block.channel, PrefixOnly)
    torch.manual_seed(1)
    block.double()  # float64: the reference sums in another order
    for p in block.parameters():  # non-trivial norms and layer scales
        p.data.normal_()
    x = torch.randn(3, 1 + 4, 8, dtype=torch.float64)
    with torch.no_grad():
        y = block(x)
    assert torch.equal(y[:, 1:], x[:, 1:])
    assert not torch.allclose(y[:, :1], x[:, :1])

    token, channel = block.token.branch, block.channel.branch
    n1 = F.layer_norm(x, (8,), token.norm.weight, token.norm.bias, eps=1e-6)
    cls = x[:, :1] + token.scale.gamma * _reference_class_attention(token.mixer, n1, 1)
    # the channel branch sees the class token alone: its norm's statistics are the token's own
    n2 = F.layer_norm(cls, (8,), channel.norm.weight, channel.norm.bias, eps=1e-6)
    mlp = channel.mixer
    hidden = F.gelu(F.linear(n2, mlp.fc1.weight, mlp.fc1.bias))
    cls = cls + channel.scale.gamma * F.linear(hidden, mlp.fc2.weight, mlp.fc2.bias)
    torch.testing.assert_close(y[:, :1], cls)


def test_prefix_block_costs_the_channel_mixer_on_the_class_tokens_only() -> None:
    spec = _spec(Block(CA, MLP, tokens="prefix"))
    items = {i.role: i for i in plan(spec) if i.stage == 1 and i.block == 0}
    assert items["token_mixer"].ctx.tokens == 5  # reads every token
    assert items["channel_mixer"].ctx.tokens == 1 and items["norm2"].ctx.tokens == 1
    everywhere = spec_cost(_spec(Block(CA, MLP)))
    assert everywhere.macs - spec_cost(spec).macs == 4 * (2 * 8 * 16) + 4 * 5 * 8
    built_matches_analytic(spec)


def test_prefix_block_round_trips_and_the_default_keeps_old_json() -> None:
    spec = _spec(Block(CA, MLP, tokens="prefix"))
    assert ArchSpec.from_json(spec.to_json()) == spec
    assert spec.stages[1].blocks[0].to_dict()["tokens"] == "prefix"
    assert "tokens" not in Block(CA, MLP).to_dict()
    bad = spec.to_dict()
    bad["stages"][1]["blocks"][0]["tokens"] = "class"
    with pytest.raises(SpaceError, match=r"blocks\[0\]\.tokens"):
        ArchSpec.from_dict(bad)


def test_prefix_block_is_refused_without_prefix_or_with_a_grid_mixer() -> None:
    none = Op.of("embed", {"class_token": "none"})
    with pytest.raises(SpaceError, match=r"stages\[1\]\.blocks\[0\]\.tokens"):
        validate_spec(_spec(Block(Op.of("none"), MLP, tokens="prefix"), embed=none))
    with pytest.raises(SpaceError, match="layout 'tokens'"):
        validate_spec(_spec(Block(Op.of("dwconv", {"kernel": 3}), MLP, tokens="prefix")))
    # any channel mixer may run on the class tokens: a token-layout attention mixer too
    built_matches_analytic(_spec(Block(Op.of("attention", {"head_dim": 4}), MLP, tokens="prefix")))


# -- the embed downsampler --------------------------------------------------------------------


def test_embed_prepends_a_learned_class_token_and_keeps_the_grid() -> None:
    spec = _spec(Block(CA, MLP, tokens="prefix"), stem_cls=True)
    ds = next(i for i in plan(spec) if i.role == "downsample" and i.stage == 1)
    assert ds.ctx.prefix == 1 and ds.op.out_prefix(ds.ctx, ds.params) == 2
    embed = build_model(spec).stages[1][0]
    x = torch.randn(2, 1 + 4, 8)
    y = embed(x)
    assert y.shape == (2, 2 + 4, 8)
    torch.testing.assert_close(y[:, 0], embed.embed.cls_token[0, 0].expand(2, -1))
    assert torch.equal(y[:, 1:], x)


def test_embed_mean_token_and_positions() -> None:
    pos = Op.of("embed", {"class_token": "mean", "pos_embed": "learned"})
    spec = _spec(Block(CA, MLP, tokens="prefix"), embed=pos)
    embed = build_model(spec).stages[1][0]
    x = torch.randn(2, 4, 8)
    y = embed(x)
    table = embed.embed.pos_embed
    assert table.shape == (1, 5, 8)
    torch.testing.assert_close(y[:, 0], x.mean(dim=1) + table[:, 0])
    torch.testing.assert_close(y[:, 1:], x + table[:, 1:])


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"class_token": "mean"},
        {"class_token": "none", "pos_embed": "learned"},
        {"class_token": "learned", "pos_embed": "sinusoidal"},
    ],
)
@pytest.mark.parametrize("stem_cls", [False, True])
@pytest.mark.parametrize("width", [8, 12])
def test_embed_matches_its_analytic_costs(params: dict, stem_cls: bool, width: int) -> None:
    post = Block(Op.of("attention", {"head_dim": 4}), MLP)
    embed, head = Op.of("embed", params), Op.of("classifier")  # gap: there may be no class token
    built_matches_analytic(_spec(post, embed=embed, stem_cls=stem_cls, width=width, head=head))


# -- the token-labelling head -----------------------------------------------------------------


def test_token_label_head_adds_half_the_max_over_grid_tokens() -> None:
    head = Op.of("classifier", {"pool": "cls", "norm_position": "pre_pool", "token_label": True})
    spec = _spec(Block(CA, MLP, tokens="prefix"), head=head)
    classifier = build_model(spec).head.eval()
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        y = classifier(x)
    normed = F.layer_norm(x, (8,), classifier.norm[0].weight, classifier.norm[0].bias, eps=1e-6)
    aux = F.linear(normed[:, 1:], classifier.aux.weight, classifier.aux.bias)
    expected = classifier.fc(normed[:, 0]) + 0.5 * aux.max(dim=1).values
    torch.testing.assert_close(y, expected)
    built_matches_analytic(spec)
