"""Scaling rules as data: turn one base `ArchSpec` into a family that meets a ladder of budgets.

Who calls what: `mixnas scale` (and `bench/scaling.py`) pick a rule, a cost function
``spec -> float`` (analytic MACs or params from `spec_cost`, or a latency predictor's quantile)
and a list of budgets, and call `scale_ladder` (compound, width and per-stage rules) or
`grow_ladder` (proxy-guided growth, with a score function ``spec -> float`` such as a
training-free proxy). Both return one member per budget; every member's cost is at most its
budget, and a larger budget never gets a cheaper member.

This module is torch-free: costs and scores come in as functions, so the same code scales against
analytic costs in microseconds or against a latency predictor.

Rules:

- `ScalingRule` is EfficientNet's compound scaling (Tan & Le, "EfficientNet: Rethinking Model
  Scaling for Convolutional Neural Networks", 2019): depth x alpha^phi, width x beta^phi, input
  resolution x gamma^phi, with phi searched per budget. Per-stage coefficients (a tuple instead
  of a number) give per-stage depth/width growth; ``alpha = gamma = 1`` is uniform width
  scaling. `search_coefficients` picks (alpha, beta, gamma) on a small grid under
  alpha * beta^2 * gamma^2 ~ 2, as EfficientNet does, with any score function.
- `grow_ladder` is As-ViT's proxy-guided growth (Chen et al., "Auto-scaling Vision Transformers
  without Training", ICLR 2022): from a seed, repeatedly take the one step (one more block in a
  stage, or the next valid width of a stage) whose score gain per unit of added log-cost is
  largest, recording the last state under each budget.

Widths stay valid: a stage's width is rounded to a multiple of its quantum (8 and every head size
its blocks use), and each candidate goes through `validate_spec`; invalid candidates are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from search_space.errors import InfeasibleError, SpaceError
from search_space.plan import validate_spec
from search_space.spec import ArchSpec, Block, Stage

CostFn = Callable[[ArchSpec], float]
ScoreFn = Callable[[ArchSpec], float]
Coef = float | tuple[float, ...]

CHANNEL_QUANTUM = 8  # widths stay multiples of 8 (vector units; head sizes are multiples too)
RESOLUTION_QUANTUM = 8
# EfficientNet-B0's grid-searched coefficients (alpha, beta, gamma)
EFFICIENTNET = (1.2, 1.1, 1.15)
PHI_RANGE = (-8.0, 16.0)


# -- applying dimensions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Dims:
    """The scalable dimensions of a spec: per-stage depths and widths, and the input resolution
    (the side of a square-ish image; 0 for sequence inputs, which keep their length)."""

    depths: tuple[int, ...]
    widths: tuple[int, ...]
    resolution: int = 0

    @staticmethod
    def of(spec: ArchSpec) -> Dims:
        res = spec.input.resolution[0] if spec.input.kind == "image" else 0
        return Dims(tuple(spec.depths), tuple(spec.widths), res)

    def to_dict(self) -> dict[str, object]:
        return {
            "depths": list(self.depths),
            "widths": list(self.widths),
            "resolution": self.resolution,
        }


def width_quantum(stage: Stage) -> int:
    """The step a stage's width may move by: the lcm of 8 and every head size its blocks name."""
    q = CHANNEL_QUANTUM
    for block in stage.blocks:
        for op in (block.token_mixer, block.channel_mixer):
            hd = op.kwargs.get("head_dim")
            if isinstance(hd, int) and hd > 0:
                q = math.lcm(q, hd)
    if stage.latents is not None:
        q = math.lcm(q, stage.latents.head_dim)
    return q


def round_width(width: float, quantum: int) -> int:
    """The nearest multiple of ``quantum`` to ``width``, at least one quantum."""
    return max(quantum, round(width / quantum) * quantum)


def _stretch(blocks: tuple[Block, ...], depth: int) -> tuple[Block, ...]:
    """``depth`` blocks that keep the order and proportions of ``blocks``: new block i copies old
    block floor(i * d / depth), so "last block is attention" stays last and a 1:1 mix stays 1:1.
    Weight sharing between blocks is indexed by position, so it is dropped when depth changes."""
    d = len(blocks)
    if depth == d:
        return blocks
    picked = [blocks[(i * d) // depth] for i in range(depth)]
    picked[-1] = blocks[-1]  # the tail block (often the one attention block) stays the tail
    return tuple(replace(b, share=None) if b.share is not None else b for b in picked)


def apply_dims(base: ArchSpec, dims: Dims) -> ArchSpec:
    """``base`` with the depths, widths and resolution of ``dims``, validated.

    Raises `SpaceError` when the result is not a valid spec (e.g. a grid a window does not tile).
    """
    if len(dims.depths) != len(base.stages) or len(dims.widths) != len(base.stages):
        raise SpaceError("dims", f"must name {len(base.stages)} stages", value=dims)
    stages = []
    for st, d, w in zip(base.stages, dims.depths, dims.widths, strict=True):
        if d < 1:
            raise SpaceError("dims.depths", "every depth must be >= 1", value=list(dims.depths))
        blocks = _stretch(st.blocks, d)
        if w != st.width:
            # partial-channel blocks name absolute channel slices: scale them with the width
            blocks = tuple(_rescale_channels(b, st.width, w) for b in blocks)
        stages.append(replace(st, width=w, blocks=blocks))
    inp = base.input
    if dims.resolution and inp.kind == "image" and dims.resolution != inp.resolution[0]:
        h, w = inp.resolution
        new_w = max(1, round(w * dims.resolution / h))
        inp = replace(inp, resolution=(dims.resolution, new_w))
    return validate_spec(base.replace(stages=tuple(stages), input=inp))


def _rescale_channels(block: Block, old: int, new: int) -> Block:
    if block.channels is None:
        return block
    start, end = block.channels
    return replace(block, channels=(start * new // old, end * new // old))


# -- compound and per-stage rules ----------------------------------------------------------------


def _per_stage(value: Coef, n: int, name: str) -> tuple[float, ...]:
    vals = (value,) * n if isinstance(value, int | float) else tuple(value)
    if len(vals) != n:
        raise SpaceError(f"rule.{name}", f"needs one coefficient per stage ({n})", value=value)
    for v in vals:
        if not isinstance(v, int | float) or not math.isfinite(v) or v < 1.0:
            raise SpaceError(f"rule.{name}", "coefficients must be numbers >= 1", value=value)
    return tuple(float(v) for v in vals)


@dataclass(frozen=True)
class ScalingRule:
    """Compound scaling: depth_i x alpha_i^phi, width_i x beta_i^phi, resolution x gamma^phi.

    ``alpha``/``beta`` are one number (compound, EfficientNet) or one per stage (per-stage
    growth). Rounded depths stay >= 1, widths are rounded to the stage's quantum, resolutions to
    multiples of 8. Sequence inputs ignore ``gamma``.
    """

    alpha: Coef = EFFICIENTNET[0]
    beta: Coef = EFFICIENTNET[1]
    gamma: float = EFFICIENTNET[2]
    name: str = "compound"

    def dims(self, base: ArchSpec, phi: float) -> Dims:
        n = len(base.stages)
        alphas = _per_stage(self.alpha, n, "alpha")
        betas = _per_stage(self.beta, n, "beta")
        gamma = _per_stage(self.gamma, 1, "gamma")[0]
        depths = tuple(
            max(1, round(s.depth * a**phi)) for s, a in zip(base.stages, alphas, strict=True)
        )
        widths = tuple(
            round_width(s.width * b**phi, width_quantum(s))
            for s, b in zip(base.stages, betas, strict=True)
        )
        res = Dims.of(base).resolution
        if res:
            res = max(RESOLUTION_QUANTUM, round(res * gamma**phi / RESOLUTION_QUANTUM) * 8)
        return Dims(depths, widths, res)

    def at(self, base: ArchSpec, phi: float) -> ArchSpec:
        """The member at scale ``phi`` (0 gives the base, up to rounding); may raise SpaceError."""
        return apply_dims(base, self.dims(base, phi))


def width_rule() -> ScalingRule:
    """Uniform width scaling: every stage's width x 2^phi, depth and resolution fixed."""
    return ScalingRule(alpha=1.0, beta=2.0, gamma=1.0, name="width")


def depth_rule() -> ScalingRule:
    """Uniform depth scaling: every stage's depth x 2^phi, width and resolution fixed."""
    return ScalingRule(alpha=2.0, beta=1.0, gamma=1.0, name="depth")


@dataclass(frozen=True)
class Member:
    """One member of a family: the budget it was made for, its spec, cost and how it was made."""

    budget: float
    spec: ArchSpec
    cost: float
    dims: Dims
    note: str = ""


def _candidates(
    rule: ScalingRule, base: ArchSpec, cost_fn: CostFn, budgets: Sequence[float], steps: int
) -> dict[str, tuple[ArchSpec, float]]:
    """Specs of the rule on a phi grid, refined by bisection around each budget."""
    pool: dict[str, tuple[ArchSpec, float]] = {}
    seen: dict[Dims, float] = {}

    def cost_at(phi: float) -> float:
        """Cost at phi, inf for invalid specs (treated as over budget when bisecting)."""
        dims = rule.dims(base, phi)
        if dims in seen:
            return seen[dims]
        try:
            spec = apply_dims(base, dims)
        except SpaceError:
            seen[dims] = math.inf
            return math.inf
        c = float(cost_fn(spec))
        seen[dims] = c
        pool[spec.id] = (spec, c)
        return c

    lo_phi, hi_phi = PHI_RANGE
    grid = [lo_phi + (hi_phi - lo_phi) * i / steps for i in range(steps + 1)]
    costs: list[float] = []
    for p in grid:
        # far past the largest budget nothing more is needed (and depth x 2^16 is slow to price)
        if costs and costs[-1] != math.inf and costs[-1] > 4 * max(budgets):
            break
        costs.append(cost_at(p))
    for budget in budgets:
        # bracket: the last finite grid point under budget and the next one above it
        under = [i for i, c in enumerate(costs) if c <= budget]
        if not under:
            continue
        i = under[-1]
        if i + 1 >= len(costs):
            continue
        lo, hi = grid[i], grid[i + 1]
        for _ in range(24):
            mid = (lo + hi) / 2
            if cost_at(mid) <= budget:
                lo = mid
            else:
                hi = mid
    return pool


def scale_ladder(
    rule: ScalingRule,
    base: ArchSpec,
    cost_fn: CostFn,
    budgets: Sequence[float],
    *,
    steps: int = 96,
) -> list[Member]:
    """One member per budget (in the order given): the costliest spec of ``rule`` within budget.

    The phi of each budget is found by bisection on ``cost_fn``; since rounding makes cost only
    roughly monotone in phi, every evaluated spec goes into one pool and each budget takes the
    costliest pooled spec that meets it, so members never exceed their budget and a larger budget
    never gets a cheaper member. Raises `InfeasibleError` when no spec of the rule meets a budget.
    """
    _check_budgets(budgets)
    pool = _candidates(rule, base, cost_fn, budgets, steps)
    ranked = sorted(pool.values(), key=lambda sc: sc[1])
    members = []
    for budget in budgets:
        fitting = [sc for sc in ranked if sc[1] <= budget]
        if not fitting:
            cheapest = ranked[0][1] if ranked else math.nan
            raise InfeasibleError(
                f"budget {budget:g}: the {rule.name} rule's smallest member costs {cheapest:g}; "
                "allowed: budgets at least that"
            )
        spec, cost = fitting[-1]
        members.append(Member(budget, spec, cost, Dims.of(spec), rule.name))
    return members


def search_coefficients(
    base: ArchSpec,
    score_fn: ScoreFn,
    *,
    grid: Sequence[float] = (1.0, 1.1, 1.2, 1.3, 1.4),
    target: float = 2.0,
    tolerance: float = 0.15,
) -> ScalingRule:
    """EfficientNet's coefficient search: among (alpha, beta, gamma) on ``grid`` with
    alpha * beta^2 * gamma^2 within ``tolerance`` of ``target`` (the cost doubles per unit phi),
    the one whose phi=1 member ``score_fn`` rates highest. Invalid members are skipped."""
    has_res = Dims.of(base).resolution > 0
    best: tuple[float, ScalingRule] | None = None
    for a in grid:
        for b in grid:
            for g in grid if has_res else (1.0,):
                if abs(a * b * b * g * g - target) > tolerance * target:
                    continue
                rule = ScalingRule(a, b, g, name="compound")
                try:
                    score = float(score_fn(rule.at(base, 1.0)))
                except SpaceError:
                    continue
                if math.isfinite(score) and (best is None or score > best[0]):
                    best = (score, rule)
    if best is None:
        raise InfeasibleError("no coefficient triple on the grid gives a valid, scored member")
    return best[1]


# -- proxy-guided growth (As-ViT) ---------------------------------------------------------------


def _moves(base: ArchSpec, dims: Dims, width_step: float) -> list[tuple[str, Dims]]:
    """One step up in each dimension: a block more in a stage, or a stage's next valid width."""
    out = []
    for i, st in enumerate(base.stages):
        depths = list(dims.depths)
        depths[i] += 1
        out.append((f"depth[{i}]+1", replace(dims, depths=tuple(depths))))
        q = width_quantum(st)
        widths = list(dims.widths)
        widths[i] = max(widths[i] + q, round_width(widths[i] * width_step, q))
        out.append((f"width[{i}]={widths[i]}", replace(dims, widths=tuple(widths))))
    return out


def grow_ladder(
    base: ArchSpec,
    cost_fn: CostFn,
    score_fn: ScoreFn,
    budgets: Sequence[float],
    *,
    width_step: float = 1.25,
    max_steps: int = 200,
    seed_rule: ScalingRule | None = None,
) -> list[Member]:
    """As-ViT growth: one trajectory from a seed, recording the last state under each budget.

    Seed: the base when it fits the smallest budget, else the base shrunk by ``seed_rule``
    (compound by default) to half the smallest budget, so that growth has room to choose. At each
    step every move (`_moves`) that keeps the cost within the current budget is scored, and the
    one with the largest ``(score gain) / log(cost ratio)`` is taken (the gain may be negative:
    the family must still grow). When no move fits, the current state is that budget's member
    and growth continues towards the next budget. Budgets are handled in increasing order;
    members are returned in the order given. Each member's note lists the steps taken.
    """
    _check_budgets(budgets)
    order = sorted(range(len(budgets)), key=lambda i: budgets[i])
    smallest = budgets[order[0]]
    seed = base
    if cost_fn(base) > smallest:
        seed = scale_ladder(seed_rule or ScalingRule(), base, cost_fn, [smallest / 2])[0].spec
    dims, spec = Dims.of(seed), seed
    cost, score = float(cost_fn(spec)), float(score_fn(spec))
    history: list[str] = []
    members: dict[int, Member] = {}
    scored: dict[Dims, tuple[ArchSpec, float, float] | None] = {}
    for idx in order:
        budget = budgets[idx]
        if cost > budget:  # cannot happen for the smallest; later budgets are larger
            raise InfeasibleError(f"budget {budget:g}: seed costs {cost:g}")
        for _ in range(max_steps):
            best: tuple[float, str, Dims, ArchSpec, float, float] | None = None
            for label, cand in _moves(seed, dims, width_step):
                if cand not in scored:
                    scored[cand] = _evaluate(seed, cand, cost_fn, score_fn)
                got = scored[cand]
                if got is None or got[1] > budget or got[1] <= cost:
                    continue
                c_spec, c_cost, c_score = got
                gain = (c_score - score) / math.log(c_cost / cost)
                if best is None or gain > best[0]:
                    best = (gain, label, cand, c_spec, c_cost, c_score)
            if best is None:
                break
            _, label, dims, spec, cost, score = best
            history.append(label)
        members[idx] = Member(budget, spec, cost, dims, "grow: " + ", ".join(history))
    return [members[i] for i in range(len(budgets))]


def _evaluate(
    seed: ArchSpec, dims: Dims, cost_fn: CostFn, score_fn: ScoreFn
) -> tuple[ArchSpec, float, float] | None:
    try:
        spec = apply_dims(seed, dims)
    except SpaceError:
        return None
    cost = float(cost_fn(spec))
    score = float(score_fn(spec))
    if not math.isfinite(score):
        return None  # a proxy that cannot score a model says nothing about growing it
    return spec, cost, score


def _check_budgets(budgets: Sequence[float]) -> None:
    if not budgets:
        raise SpaceError("budget", "needs at least one value")
    for b in budgets:
        if isinstance(b, bool) or not isinstance(b, int | float) or not b > 0 or math.isinf(b):
            raise SpaceError("budget", "values must be finite numbers > 0", value=b)
