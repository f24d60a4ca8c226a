"""The NAS-Bench-201 cell (``InferCell`` of the official code) as a grid token mixer."""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.nb201 import ReLUConvBN
from search_space.ops.token_mixers.nb201 import CONV_KERNELS, EDGES, NUM_NODES, OPS


class Zero(nn.Module):
    """NAS-Bench-201's ``none``: ``x * 0``, zeros of the input's shape (kept in the graph)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _edge(op: str, dim: int, rank: int) -> nn.Module:
    if op in CONV_KERNELS:
        return ReLUConvBN(rank, dim, dim, CONV_KERNELS[op])
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    if op == "skip_connect":
        return nn.Identity()
    assert op == "none", op
    return Zero()


class NB201Cell(nn.Module):
    """A NAS-Bench-201 cell: node ``j`` = sum of ``edge(i -> j)(node i)`` over ``i < j``.

    Edge ops: ``none`` (x * 0), ``skip_connect`` (identity), ``nor_conv_kxk`` (ReLU, k x k conv
    without bias, affine BN), ``avg_pool_3x3`` (stride 1, padded cells not counted). Every edge is
    computed, also where its output is multiplied away, as in NAS-Bench-201.
    Layout: grid ``(B, C, H, W)``. Complexity O(N d^2 k^2) per conv edge. Cost: per conv edge
    ``d^2 k^2 + 2 d`` params and ``N (d^2 k^2 + 2 d)`` MACs (BN at 2 per element); pooling, zero,
    identity and node sums are free.
    """

    def __init__(self, dim: int, *, grid: tuple[int, ...], edges: tuple[int, ...]) -> None:
        super().__init__()
        self.edges = tuple(int(e) for e in edges)
        self.layers = nn.ModuleList(_edge(OPS[e], dim, len(grid)) for e in self.edges)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, NUM_NODES):
            terms = [
                layer(nodes[i])
                for layer, (to, i) in zip(self.layers, EDGES, strict=True)
                if to == j
            ]
            total = terms[0]
            for term in terms[1:]:
                total = total + term
            nodes.append(total)
        return nodes[-1]

    def extra_repr(self) -> str:
        return "edges=" + ",".join(OPS[e] for e in self.edges)
