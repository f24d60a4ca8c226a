"""The NAS-Bench-201 cell as a token mixer (a convolutional cell, catalog family M15).

A cell is a DAG of four nodes: node 0 is the input, node ``j`` sums one op applied to every earlier
node, and node 3 is the output. The six edges, in arch-string order
(``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``), are 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2; each carries one
of five ops. The parameter ``edges`` holds the index into `OPS` of each edge's op.

The cell carries its own skips, so its block is ``Block(cell, none, norm="none", residual=False)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_space.ops.base import (
    LAYOUT_GRID,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    conv_cost,
    norm_cost,
)
from search_space.ops.registries import register
from search_space.ops.sharing import Sharing

# NAS-Bench-201's op names in its canonical order (``SearchSpaceNames['nas-bench-201']``).
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (to node, from node) of each edge, in arch-string order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_NODES = 4
CONV_KERNELS = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
# The best CIFAR-10 cell of NAS-Bench-201 (index 13714, 94.37% test accuracy).
DEFAULT_EDGES = (3, 3, 3, 1, 2, 3)


def edge_ops(params: Mapping[str, Any]) -> list[str]:
    """The op name of each of the six edges."""
    return [OPS[i] for i in params["edges"]]


def _valid_edges(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    edges = params["edges"]
    if len(edges) != len(EDGES):
        return f"edges must list {len(EDGES)} op indices, got {len(edges)}"
    bad = [e for e in edges if not 0 <= e < len(OPS)]
    if bad:
        return f"edge op index {bad[0]} is not in 0..{len(OPS) - 1} ({', '.join(OPS)})"
    return None


def edge_cost(op: str, ctx: OpContext) -> Cost:
    """One edge at stride 1 and constant width: ReLU-conv-BN, pooling, identity or zero."""
    elements = ctx.n * ctx.dim
    if op in CONV_KERNELS:
        # ReLU (free, one output) -> conv without bias -> affine batch norm (2 MACs per element)
        conv = conv_cost(ctx.grid, ctx.dim, ctx.dim, CONV_KERNELS[op], bias=False)
        return Cost(activations=elements) + conv + norm_cost("batchnorm", elements, ctx.dim)
    if op in ("avg_pool_3x3", "none"):  # pooling and x * 0 are free; each writes one tensor
        return Cost(activations=elements)
    return Cost()  # skip_connect


def cell_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    cost = Cost()
    for op in edge_ops(params):
        cost += edge_cost(op, ctx)
    # the node sums are free additions; nodes 2 and 3 (two or more inputs) write a new tensor
    return cost + Cost(activations=2 * ctx.n * ctx.dim)


register(
    OpDef(
        name="nb201_cell",
        sharing=Sharing(),
        kind="token_mixer",
        module="search_space.nn.mixers.nb201:NB201Cell",
        family="M15",
        layout=LAYOUT_GRID,
        complexity="O(N d^2 + N d k^2)",
        params=(
            ParamDef(
                "edges",
                list,
                DEFAULT_EDGES,
                minimum=0,
                doc="op index per edge (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2) into " + ", ".join(OPS),
            ),
        ),
        rules=(_valid_edges,),
        spatial_dims=(2,),
        cost=cell_cost,
        examples=({"edges": [4, 2, 0, 1, 0, 4]}, {"edges": [0, 0, 0, 0, 0, 0]}),
        doc="NAS-Bench-201 cell: 4-node DAG, each edge none/skip/conv1x1/conv3x3/avgpool3x3",
    )
)
