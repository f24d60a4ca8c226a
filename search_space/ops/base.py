"""Torch-free definitions of operations: parameters, structural rules and analytic costs.

Every registered operation (token mixer, channel mixer, stem, downsampler, head, norm) has an
`OpDef`: the parameters it takes (with defaults and allowed values), the structural rules a spec
must satisfy ("head_dim divides the width"), its tensor layout, complexity class, an analytic cost
formula, how its weights are shared in a supernet (`search_space.ops.sharing.Sharing`) and how
its `torch.nn.Module` is built (`OpDef.build`: a lazy reference to the class, called by the
convention of the op's kind or the op's own ``call``). The definition is what lets a spec be
validated and costed in microseconds without importing torch; the module is imported only when a
model is built.

Cost conventions follow fvcore, the counter timm's published GMACs come from: one MAC per
multiply-accumulate of linear/conv/matmul/einsum/attention, norms at fvcore's per-element rates
(layer/group norm 5 with affine, 4 without; batch norm at inference 2 with affine), adaptive
average pooling 1 per input element; plain pooling, elementwise ops (activations, softmax, adds),
shifts and pads are free, as fvcore counts them. Costs are per sample.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from search_space.errors import SpaceError
from search_space.ops.sharing import SharingRule

# Layouts a module can ask for. The tensor between blocks is ``(B, P + N, C)``: P prefix (class)
# tokens followed by the N grid tokens in row-major order. The block converts to the layout the
# mixer declares and back.
LAYOUT_TOKENS = "tokens"  # (B, P + N, C): prefix tokens included
LAYOUT_SEQUENCE = "sequence"  # (B, N, C): grid tokens only, prefix passed through unchanged
LAYOUT_GRID = "grid"  # (B, C, *grid) channels-first, prefix passed through unchanged
LAYOUT_GRID_LAST = "grid_last"  # (B, *grid, C) channels-last, prefix passed through unchanged
LAYOUTS = (LAYOUT_TOKENS, LAYOUT_SEQUENCE, LAYOUT_GRID, LAYOUT_GRID_LAST)


@dataclass(frozen=True)
class Cost:
    """Analytic cost of one op for one sample.

    Attributes:
        params: learnable parameters.
        macs: multiply-accumulates (fvcore conventions, see module docstring).
        activations: elements of the tensors the op writes (output and saved intermediates), the
            basis of the activation-memory estimate.
        dynamic_macs: the part of ``macs`` that multiplies two activations (attention scores and
            weighted sums, scans, deformable sampling) rather than a weight and an activation;
            bit-operations count these at activation x activation bits.
        fft_macs: the part of ``macs`` spent in FFTs (`fft_macs`), which fvcore, thop and
            ptflops do not count; `search_space.costs.macs_as_counted` leaves it out for them.
    """

    params: int = 0
    macs: int = 0
    activations: int = 0
    dynamic_macs: int = 0
    fft_macs: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            params=self.params + other.params,
            macs=self.macs + other.macs,
            activations=self.activations + other.activations,
            dynamic_macs=self.dynamic_macs + other.dynamic_macs,
            fft_macs=self.fft_macs + other.fft_macs,
        )

    def scaled(self, times: int) -> Cost:
        """The cost of applying the op ``times`` times with the same weights."""
        return Cost(
            params=self.params,
            macs=self.macs * times,
            activations=self.activations * times,
            dynamic_macs=self.dynamic_macs * times,
            fft_macs=self.fft_macs * times,
        )


@dataclass(frozen=True)
class OpContext:
    """Where an op sits: the tensors it sees and produces.

    Attributes:
        dim: channels of the op's input (the stage width for mixers; input channels for stems).
        grid: spatial extent of the input grid, (H, W) for images or (L,) for sequences.
        prefix: number of prefix (class) tokens carried beside the grid.
        out_dim: channels of the output (equals ``dim`` for mixers).
        num_classes: classifier outputs (heads only).
        sources: ``(channels, grid)`` of what a head that reads more than the last stage sees
            (`OpDef.sources`): the input first, then the stem's output, then every stage's;
            empty for every other op.
    """

    dim: int
    grid: tuple[int, ...]
    prefix: int = 0
    out_dim: int = 0
    num_classes: int = 0
    sources: tuple[tuple[int, tuple[int, ...]], ...] = ()

    @property
    def n(self) -> int:
        """Grid tokens."""
        return math.prod(self.grid)

    @property
    def tokens(self) -> int:
        """All tokens, prefix included."""
        return self.n + self.prefix


MAX_PARAM = 1 << 24  # the largest magnitude of a numeric op parameter (spec.MAX_INT)


@dataclass(frozen=True)
class ParamDef:
    """One keyword parameter of an op.

    Attributes:
        name: keyword name, as written in specs and space files.
        kind: python type of the value (int, float, bool, str, or list for int lists).
        default: value used when a space does not mention the parameter.
        choices: the only allowed values, if the parameter is an enumeration.
        minimum: lower bound for numbers (and for every element of a list).
        doc: one line for `mixnas space describe`.
        implicit: left out of the completed parameters while it has its default (`OpDef.complete`),
            so that a parameter added to an existing op (``causal``) leaves the specs, ids and
            latency signatures written before it unchanged; the module's keyword has the same
            default.
    """

    name: str
    kind: type
    default: Any
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    doc: str = ""
    implicit: bool = False

    def check(self, value: Any) -> str | None:
        """Returns why ``value`` is not allowed, or None."""
        if self.kind is list:
            if not isinstance(value, list | tuple) or not value:
                return "must be a non-empty list of integers"
            items = list(value)
        else:
            items = [value]
        expected = int if self.kind is list else self.kind
        for item in items:
            ok = isinstance(item, expected) and not (
                expected is not bool and isinstance(item, bool)
            )
            if expected is float and isinstance(item, int) and not isinstance(item, bool):
                ok = True
            if not ok:
                return f"must be of type {expected.__name__}"
            # a kernel, stride or ratio of 10^30 can only be a mistake (an int of 10^400 has no
            # float: its magnitude is compared as an int)
            if expected in (int, float) and (
                abs(item) > MAX_PARAM or (isinstance(item, float) and not math.isfinite(item))
            ):
                return f"must be a finite number of magnitude at most {MAX_PARAM:,}"
            if self.minimum is not None and item < self.minimum:
                return f"must be >= {self.minimum}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {list(self.choices)}"
        return None


Rule = Callable[[OpContext, Mapping[str, Any]], str | None]
CostFn = Callable[[OpContext, Mapping[str, Any]], Cost]
GridFn = Callable[[OpContext, Mapping[str, Any]], tuple[int, ...]]
PrefixFn = Callable[[OpContext, Mapping[str, Any]], int]
# how a module is called: (ctx, params) -> positional and keyword arguments of its constructor
CallFn = Callable[[OpContext, Mapping[str, Any]], tuple[tuple[Any, ...], dict[str, Any]]]
# where the module class is: "package.module:ClassName", or a function returning the class
ModuleRef = str | Callable[[], type]


def mixer_call(ctx: OpContext, params: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Token and channel mixers, norms, structural ops: ``(dim, *, grid, **params)``."""
    return (ctx.dim,), {"grid": ctx.grid, **params}


def stem_call(ctx: OpContext, params: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Stems: ``(in_channels, out_dim, *, grid, **params)``."""
    return (ctx.dim, ctx.out_dim), {"grid": ctx.grid, **params}


def downsample_call(
    ctx: OpContext, params: Mapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Downsamplers: ``(dim, out_dim, *, grid, prefix, **params)``."""
    return (ctx.dim, ctx.out_dim), {"grid": ctx.grid, "prefix": ctx.prefix, **params}


def head_call(ctx: OpContext, params: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Heads: ``(dim, num_classes, *, prefix, **params)``."""
    return (ctx.dim, ctx.num_classes), {"prefix": ctx.prefix, **params}


# the constructor convention of each kind; an op of another kind is called as a mixer
KIND_CALLS: dict[str, CallFn] = {
    "stem": stem_call,
    "downsample": downsample_call,
    "head": head_call,
}


def _same_grid(ctx: OpContext, params: Mapping[str, Any]) -> tuple[int, ...]:
    return ctx.grid


def _same_prefix(ctx: OpContext, params: Mapping[str, Any]) -> int:
    return ctx.prefix


@dataclass(frozen=True)
class Causal:
    """How an op can be causal: its output at sequence position t depends on positions <= t only.

    A causal head (`OpDef.needs_causal`, the LM head) accepts only ops that are causal with the
    parameters a spec gives them (`search_space.ops.causal`).

    Attributes:
        when: the parameter values that make the op causal, as (name, value) pairs
            (``(("causal", True),)``, ``(("bidirectional", False),)``); empty when it is causal
            with any parameters (a per-token op).
        how: one line for the docs: what the causal form computes.
    """

    when: tuple[tuple[str, Any], ...] = ()
    how: str = ""

    def holds(self, params: Mapping[str, Any], defaults: Mapping[str, Any]) -> bool:
        """Whether the op with (completed) ``params`` is causal; a parameter left out (an
        implicit one at its default) has its default value."""
        return all(params.get(k, defaults.get(k)) == v for k, v in self.when)


# the causality of an op that mixes nothing across positions (per-token ops)
PER_TOKEN = Causal(how="per token: mixes nothing across positions")


# what a head produces (`OpDef.output`)
HEAD_OUTPUTS = ("class", "token", "mask", "image")


@dataclass(frozen=True)
class OpDef:
    """The definition of one registered operation.

    Attributes:
        name: registry name used in specs.
        kind: which registry it belongs to (``token_mixer``, ``channel_mixer``, ...).
        params: the keyword parameters the module takes, besides its context.
        module: the implementing `torch.nn.Module` class, as ``"package.module:ClassName"``
            or a function of no arguments that returns it; resolved only when a model is built.
        cost: analytic cost formula (fvcore conventions).
        layout: the tensor layout the module consumes and produces (see LAYOUTS).
        complexity: complexity class in N tokens and d channels, for docs and reports.
        family: mixer family id of the seed catalog (M01..M23), when there is one.
        rules: structural rules; each returns a message when the spec breaks it.
        out_grid: the grid after the op (stems and downsamplers change it).
        out_prefix: the prefix (class) tokens after the op (a downsampler may add some; stems
            declare theirs through ``cls_token``).
        spatial_dims: grid ranks the op supports (1 = sequences, 2 = images).
        doc: one-line description.
        examples: parameter sets (besides the defaults) the contract suite exercises.
        sharing: how the op's weights are shared in a weight-sharing supernet
            (`search_space.ops.sharing.Sharing`: which parameters are elastic, which get a
            weight set per value). Every registered op must declare one; the contract suite
            fails for an op without it, and a strict supernet refuses it.
        call: how the module's constructor is called, ``(ctx, params) -> (args, kwargs)``;
            None (the default) is the convention of the op's kind (`KIND_CALLS`, else
            `mixer_call`).
        causal: how the op can be causal (`Causal`), or None when it cannot: an op that
            declares nothing is refused before a causal head.
        needs_causal: a head that reads position t as a prediction of token t + 1 (the LM
            head): every op before it must be causal (`search_space.ops.causal`).
        output: what a head produces (heads only; see `HEAD_OUTPUTS`): ``class`` logits
            ``(B, classes)``, next-``token`` logits ``(B, L, vocab)``, per-pixel ``mask``
            logits ``(B, classes, H, W)`` at the input's resolution, or an ``image``
            ``(B, C, sH, sW)`` (super-resolution); the training tasks check it.
        sources: a head that also reads the input and the stem's and every stage's outputs
            (skip fusion, a global residual): its context carries their shapes
            (`OpContext.sources`) and its module is called as ``head(x, sources)``.
    """

    name: str
    kind: str
    params: tuple[ParamDef, ...]
    module: ModuleRef
    cost: CostFn
    layout: str = LAYOUT_TOKENS
    complexity: str = ""
    family: str = ""
    rules: tuple[Rule, ...] = ()
    out_grid: GridFn = _same_grid
    out_prefix: PrefixFn = _same_prefix
    spatial_dims: tuple[int, ...] = (1, 2)
    doc: str = ""
    examples: tuple[dict[str, Any], ...] = ()
    sharing: SharingRule | None = None
    call: CallFn | None = None
    causal: Causal | None = None
    needs_causal: bool = False
    output: str = "class"
    sources: bool = False
    _param_index: dict[str, ParamDef] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"{self.name}: unknown layout {self.layout!r}")
        if self.output not in HEAD_OUTPUTS:
            raise ValueError(
                f"{self.name}: unknown output {self.output!r}; allowed: {', '.join(HEAD_OUTPUTS)}"
            )
        if isinstance(self.module, str):
            path, _, cls = self.module.partition(":")
            if not path or not cls:
                raise ValueError(
                    f"{self.name}: module {self.module!r} must be 'package.module:ClassName'"
                )
        elif not callable(self.module):
            raise ValueError(
                f"{self.name}: module must be 'package.module:ClassName' or a function returning "
                "the class"
            )
        self._param_index.update({p.name: p for p in self.params})

    def is_causal(self, params: Mapping[str, Any]) -> bool:
        """Whether the op with ``params`` is causal (see `Causal`)."""
        return self.causal is not None and self.causal.holds(params, self.defaults())

    def param(self, name: str) -> ParamDef | None:
        return self._param_index.get(name)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def complete(self, params: Mapping[str, Any], path: str) -> dict[str, Any]:
        """Checks ``params`` and fills in defaults; raises `SpaceError` naming ``path``."""
        for key in params:
            if key not in self._param_index:
                allowed = ", ".join(p.name for p in self.params) or "none"
                raise SpaceError(
                    f"{path}.{key}",
                    f"unknown parameter of {self.kind} {self.name!r}; allowed: {allowed}",
                )
        full = self.defaults()
        full.update(params)
        for p in self.params:
            problem = p.check(full[p.name])
            if problem:
                raise SpaceError(f"{path}.{p.name}", problem, value=full[p.name])
        for p in self.params:
            if p.implicit and full[p.name] == p.default:
                del full[p.name]
        return full

    def check_rules(self, ctx: OpContext, params: Mapping[str, Any], path: str) -> None:
        if len(ctx.grid) not in self.spatial_dims:
            raise SpaceError(
                path,
                f"{self.kind} {self.name!r} supports grids of rank "
                f"{list(self.spatial_dims)}, not {len(ctx.grid)}",
            )
        for rule in self.rules:
            problem = rule(ctx, params)
            if problem:
                raise SpaceError(path, f"{self.kind} {self.name!r}: {problem}")

    def module_class(self) -> type:
        """Imports and returns the implementing module class (imports torch)."""
        if callable(self.module):
            return self.module()
        mod_name, _, cls_name = self.module.partition(":")
        cls = getattr(importlib.import_module(mod_name), cls_name)
        if not isinstance(cls, type):
            raise TypeError(f"{self.kind} {self.name!r}: {self.module} is not a class")
        return cls

    def signature(self, ctx: OpContext, params: Mapping[str, Any], role: str = "") -> str:
        """A stable key for what the op computes at ``ctx``: role (its kind by default), name,
        parameters and shapes; two ops with the same signature (and bits, which
        `search_space.plan.PlannedOp.signature` appends) cost the same on a device, so latency
        lookup tables and caches key on it."""
        values = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
        grid = "x".join(map(str, ctx.grid))
        # a head that reads earlier outputs costs what their shapes say
        sources = "".join(f",s{c}g{'x'.join(map(str, g))}" for c, g in ctx.sources)
        return (
            f"{role or self.kind}:{self.name}[{values}]"
            f"@d{ctx.dim}->{ctx.out_dim or ctx.dim},g{grid},p{ctx.prefix}{sources}"
        )

    def arguments(
        self, ctx: OpContext, params: Mapping[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The positional and keyword arguments the module is constructed with at ``ctx``."""
        call = self.call or KIND_CALLS.get(self.kind, mixer_call)
        return call(ctx, params)

    def build(self, ctx: OpContext, params: Mapping[str, Any]) -> Any:
        """The op's module at ``ctx`` with the complete ``params`` (imports torch).

        This is the one way from a definition to a module: the builder, the contract suites,
        the latency tables and the supernet all call it.
        """
        args, kwargs = self.arguments(ctx, params)
        return self.module_class()(*args, **kwargs)


# -- reusable rules --------------------------------------------------------------------------------


def divides(param: str, what: str = "width") -> Rule:
    """Rule: ``params[param]`` divides the op's input channels (e.g. head_dim divides width)."""

    def rule(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
        value = params[param]
        if value and ctx.dim % value:
            return f"{param}={value} does not divide the {what} {ctx.dim}"
        return None

    return rule


def divides_dim(ctx: OpContext, value: int, name: str) -> str | None:
    return f"{name}={value} does not divide the width {ctx.dim}" if ctx.dim % value else None


# -- cost building blocks (fvcore conventions) ---------------------------------------------------


def linear_cost(tokens: int, d_in: int, d_out: int, bias: bool = True) -> Cost:
    """A linear layer applied to ``tokens`` vectors."""
    return Cost(
        params=d_in * d_out + (d_out if bias else 0),
        macs=tokens * d_in * d_out,
        activations=tokens * d_out,
    )


def conv_cost(
    out_grid: Sequence[int],
    c_in: int,
    c_out: int,
    kernel: int | Sequence[int],
    groups: int = 1,
    bias: bool = True,
) -> Cost:
    """A convolution producing ``out_grid``; ``kernel`` is an int (square) or per-axis sizes."""
    ks = [kernel] * len(out_grid) if isinstance(kernel, int) else list(kernel)
    k = math.prod(ks)
    n_out = math.prod(out_grid)
    weights = c_out * (c_in // groups) * k
    return Cost(
        params=weights + (c_out if bias else 0), macs=n_out * weights, activations=n_out * c_out
    )


def norm_cost(kind: str, elements: int, channels: int, affine: bool = True) -> Cost:
    """A norm over ``elements`` values with ``channels`` affine channels (fvcore's rates)."""
    if kind in ("none", "identity"):
        return Cost()
    if kind == "batchnorm":
        return Cost(
            params=2 * channels if affine else 0,
            macs=elements * (2 if affine else 1),
            activations=elements,
        )
    rate = 5 if affine else 4
    if kind == "rmsnorm":
        # fvcore has no handle for rms_norm; mixnas counts it like a layer norm without the mean.
        rate = 4 if affine else 3
        return Cost(params=channels if affine else 0, macs=elements * rate, activations=elements)
    return Cost(params=2 * channels if affine else 0, macs=elements * rate, activations=elements)


def conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def fft_macs(points: int, transforms: int = 1, *, real: bool = True) -> int:
    """MACs of ``transforms`` FFTs over ``points`` points each (mixnas convention).

    A complex radix-2 FFT does (n/2) log2(n) butterflies of one complex multiply (4 real MACs):
    2 n log2 n MACs. A real-input forward or real-output inverse transform costs half. fvcore and
    thop count nothing for FFTs; mixnas's counter applies this same formula to the traced op.
    """
    if points <= 1:
        return 0
    per = points * math.log2(points) * (1 if real else 2)
    return round(per * transforms)
