"""The plug-in's token mixer, torch-free: parameters, rules, layout, cost, sharing rule, and where
its module is (imported only when a model is built)."""

from __future__ import annotations

from search_space.ops import OpDef, ParamDef, Sharing, register
from search_space.ops.base import LAYOUT_GRID, Cost, conv_cost


def gate_cost(ctx, params):
    # a depthwise k x k convolution with bias; the sigmoid and the product are elementwise
    # (free in fvcore's conventions); the module writes the conv output and the gated output
    conv = conv_cost(ctx.grid, ctx.dim, ctx.dim, params["kernel"], groups=ctx.dim)
    return conv + Cost(activations=ctx.n * ctx.dim)


def odd_kernel(ctx, params):
    return None if params["kernel"] % 2 else f"kernel={params['kernel']} must be odd"


register(
    OpDef(
        name="example_gate",
        kind="token_mixer",
        module="mixnas_example.modules:DepthwiseGate",
        params=(ParamDef("kernel", int, 3, minimum=1, doc="depthwise kernel size (odd)"),),
        rules=(odd_kernel,),
        cost=gate_cost,
        layout=LAYOUT_GRID,
        complexity="O(N d k^2)",
        family="M15",
        doc="x * sigmoid(depthwise conv(x)) (example plug-in)",
        examples=({"kernel": 5},),
        sharing=Sharing(elastic=("kernel",)),  # every kernel size: the centre of the largest
    )
)
