"""LeViT's shrink-attention downsampler (``attention_subsample``)."""

from __future__ import annotations

import torch

from search_space.nn.attention_downsample import AttentionSubsample, strided_bias_index
from search_space.ops import DOWNSAMPLERS, OpContext


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_bias_index_is_the_absolute_offset_from_strided_queries() -> None:
    index = strided_bias_index((5, 6))
    assert index.shape == (3 * 3, 30)
    assert torch.equal(index[0], torch.arange(30))  # query (0, 0): offset = key position
    query = 1 * 3 + 1  # second strided row and column: cell (2, 2)
    assert index[query, 2 * 6 + 2] == 0 and index[query, 0] == 2 * 6 + 2
    assert index[query, 4 * 6 + 5] == 2 * 6 + 3  # key (4, 5): |dy| = 2, |dx| = 3


def test_output_is_attention_of_strided_queries_over_all_keys() -> None:
    module = AttentionSubsample(
        8, 12, grid=(4, 5), prefix=0, key_dim=4, heads=2, attn_ratio=2.0, act="hardswish"
    ).eval()
    with torch.no_grad():
        module.attention_biases.copy_(_randn(2, 20, seed=1))
    x = _randn(2, 20, 8)
    grid = x.transpose(1, 2).reshape(2, 8, 4, 5)
    queries = grid[:, :, ::2, ::2].flatten(2).transpose(1, 2)  # (2, 6, 8)
    kv = module.kv(x).reshape(2, 20, 2, 12).transpose(1, 2)
    k, v = kv[..., :4], kv[..., 4:]
    q = module.q(queries).reshape(2, 6, 2, 4).transpose(1, 2)
    bias = module.attention_biases[:, strided_bias_index((4, 5))]
    attn = (q @ k.transpose(-1, -2) / 2.0 + bias).softmax(-1)
    y = (attn @ v).transpose(1, 2).reshape(2, 6, 16)
    expected = module.proj(torch.nn.functional.hardswish(y))
    torch.testing.assert_close(module(x), expected, rtol=1e-5, atol=1e-5)


def test_levit_128_stage_two_entry_parameters() -> None:
    # timm levit_128: 128 -> 256 at 14x14, key_dim 16, heads 128 // 16 = 8, attn_ratio 4
    op = DOWNSAMPLERS.get("attention_subsample")
    ctx = OpContext(dim=128, grid=(14, 14), out_dim=256)
    params = op.complete({}, "d")
    assert op.out_grid(ctx, params) == (7, 7)
    kv, q, proj = 8 * (16 + 64), 8 * 16, 256
    expected = 128 * kv + 2 * kv + 128 * q + 2 * q + 8 * 64 * proj + 2 * proj + 8 * 196
    assert op.cost(ctx, params).params == expected
    module = AttentionSubsample(128, 256, grid=(14, 14), prefix=0, **params)
    assert sum(p.numel() for p in module.parameters()) == expected
