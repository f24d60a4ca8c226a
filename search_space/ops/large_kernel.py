"""Structural re-parameterisation of large depthwise kernels (catalog family M16).

"Scaling Up Your Kernels to 31x31: Revisiting Large Kernel Design in CNNs" (RepLKNet) trains a
large depthwise conv beside a small one; "UniRepLKNet: A Universal Perception Large-Kernel ConvNet
for Audio, Video, Point Cloud, Time-Series and Image Recognition" trains it beside dilated small
ones. Every branch is conv (no bias) + batch norm and the branches are summed; after training
they merge into one large conv with bias. The ``dwconv`` option ``reparam`` builds the training
form; `search_space.nn.large_kernel` merges it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_space.ops.base import Cost, OpContext, conv_cost, norm_cost

REPARAM_CHOICES = ("none", "small", "dilated")

# UniRepLKNet's DilatedReparamBlock: (kernel, dilation) of the branches beside each large kernel
DILATED_BRANCHES: dict[int, tuple[tuple[int, int], ...]] = {
    5: ((3, 1), (3, 2)),
    7: ((5, 1), (3, 2), (3, 3)),
    9: ((5, 1), (5, 2), (3, 3), (3, 4)),
    11: ((5, 1), (5, 2), (3, 3), (3, 4), (3, 5)),
    13: ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5)),
    15: ((5, 1), (7, 2), (3, 3), (3, 5), (3, 7)),
    17: ((5, 1), (9, 2), (3, 4), (3, 5), (3, 7)),
}


def reparam_branches(params: Mapping[str, Any]) -> tuple[tuple[int, int], ...]:
    """(kernel, dilation) of the branches beside the large kernel."""
    if params["reparam"] == "small":
        return ((params["small_kernel"], 1),)
    if params["reparam"] == "dilated":
        return DILATED_BRANCHES[params["kernel"]]
    return ()


def reparam_rule(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    mode, kernel = params["reparam"], params["kernel"]
    if mode == "none":
        return None
    if params["bias"]:
        return f"reparam={mode!r} branches end in batch norms; set bias=false"
    if mode == "small" and not (params["small_kernel"] % 2 and params["small_kernel"] < kernel):
        return f"small_kernel={params['small_kernel']} must be odd and below kernel={kernel}"
    if mode == "dilated" and kernel not in DILATED_BRANCHES:
        return f"reparam='dilated' needs kernel in {sorted(DILATED_BRANCHES)}, not {kernel}"
    return None


def reparam_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    """The training form: large depthwise conv + BN, and each branch's depthwise conv + BN."""
    d, grid = ctx.dim, ctx.grid
    cost = Cost()
    for k, _ in ((params["kernel"], 1), *reparam_branches(params)):
        cost += conv_cost(grid, d, d, k, groups=d, bias=False) + norm_cost(
            "batchnorm", ctx.n * d, d
        )
    return cost
