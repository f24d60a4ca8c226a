"""The differentiable search loop: weights and architecture logits trained in alternation.

Who calls what, when: `search` (the Python API; ``mixnas supernet differentiable`` and the
recipes call it) builds the supernet, the architecture logits (`ArchParams`) and the expected
cost (`ExpectedCost`), then runs ``config.steps`` steps. Each step

1. trains the shared weights (AdamW, cosine schedule) on a batch of the weight part of the
   training split, through one subnet drawn from the current architecture distribution (the
   weights learn the paths the search is considering, as in GDAS);
2. from step ``arch_start * steps`` on, every ``arch_every`` steps, trains the logits (Adam) on a
   batch of the architecture part of the training split: a hard Gumbel-softmax draw picks the
   subnet, its paths' outputs are multiplied by straight-through weights (`paths`), and the loss
   is ``CE + weight * E[cost] / reference`` (or ``CE * (E[cost] / reference) ** weight``), where
   ``E[cost]`` is exact under the factorised distribution (`expected_cost`).

The result is the argmax of the logits decoded through the space; if it breaks the space's
constraints, the most probable feasible spec among draws from the final distribution. It is
scored with inherited weights on the validation split (never seen by either step) and, for a
latency metric, timed on this host.

Determinism and resume: every random choice of step ``t`` (the batches, the sampled subnet, the
Gumbel noise) derives from ``(seed, t)``, so the RNG state *is* the step; the checkpoint holds the
weights, the logits, both optimizers, the step and the history, written atomically every
``checkpoint_every`` steps. A resume with a config that changes the result is refused in one line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evaluators.data import Dataset, load_dataset
from evaluators.devices import DeviceError, resolve_device
from evaluators.supernet.batches import batch_of_step
from evaluators.supernet.differentiable.arch_params import ArchParams
from evaluators.supernet.differentiable.config import DifferentiableConfig, DifferentiableError
from evaluators.supernet.differentiable.expected_cost import (
    AnalyticCost,
    CostModel,
    ExpectedCost,
    TableLatency,
    uniform,
)
from evaluators.supernet.differentiable.paths import OUTPUT, path_weights, weighted_paths
from evaluators.supernet.network import Supernet
from evaluators.supernet.train import evaluate_subnet, load_checkpoint, save_checkpoint
from search_space.declare.space import SearchSpace
from search_space.errors import SpaceError
from search_space.spec import ArchSpec

log = logging.getLogger(__name__)

CHECKPOINT, ARCH = "differentiable.pt", "arch.json"
FORMAT = 1  # `evaluators.supernet.train.load_checkpoint` checks it
FEASIBLE_DRAWS = 2000
# progress hook: (steps done, total steps, that step's numbers)
Progress = Callable[[int, int, Mapping[str, float]], None]


@dataclass(frozen=True)
class DifferentiableResult:
    """What a search found (``arch.json`` holds the same, `to_dict`).

    Attributes:
        spec: the chosen spec (argmax of the logits, or the most probable feasible one).
        probabilities: per decision, the final probability of each choice.
        metric: the penalty's cost metric; expected_cost: its expectation under the final
            distribution; spec_cost: the cost model's value for ``spec``.
        measured: the chosen spec's host timing (milliseconds) for a latency metric.
        top1: validation accuracy (percent) of ``spec`` with inherited weights.
        violations: constraints the argmax broke (then ``spec`` is the feasible fallback).
        finished: False when the call stopped early (``stop_after``); nothing is scored then.
    """

    spec: ArchSpec
    probabilities: dict[str, dict[str, float]]
    metric: str
    expected_cost: float
    spec_cost: float
    reference: float
    steps: int
    seconds: float
    resumed: bool
    finished: bool
    history: list[dict[str, float]] = field(default_factory=list)
    measured: dict[str, float] | None = None
    top1: float | None = None
    violations: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec_id": self.spec.id,
            "spec": self.spec.to_dict(),
            "metric": self.metric,
            "expected_cost": self.expected_cost,
            "spec_cost": self.spec_cost,
            "reference": self.reference,
            "measured": self.measured,
            "top1": self.top1,
            "argmax_violations": self.violations,
            "probabilities": self.probabilities,
            "steps": self.steps,
            "seconds": self.seconds,
            "resumed": self.resumed,
            "final": self.history[-1] if self.history else None,
        }


def cost_model(config: DifferentiableConfig, cost_table: Any = None) -> CostModel:
    """The penalty's cost model: analytic params/MACs, or a host lookup table (``cost_table``,
    a `LookupTablePredictor` whose fitted correction is used, or the config's ``table``)."""
    penalty = config.penalty
    if penalty.metric in ("params", "macs"):
        return AnalyticCost(penalty.metric)
    if cost_table is not None:
        return TableLatency(cost_table)
    from predictors.lut import LookupTablePredictor

    directory = None if penalty.table == "host" else Path(penalty.table)
    if directory is not None and not directory.is_dir():
        raise DifferentiableError(
            "differentiable.penalty.table", "must be 'host' or an existing directory", penalty.table
        )
    return TableLatency(
        LookupTablePredictor(device="host", cache_dir=directory), penalty.correction
    )


def search(
    space: SearchSpace,
    data: Mapping[str, Any] | Dataset,
    config: DifferentiableConfig,
    out_dir: Path,
    *,
    cost_table: Any = None,
    device: str = "auto",
    supernet: Supernet | None = None,
    expected: ExpectedCost | None = None,
    extra: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    stop_after: int | None = None,
) -> DifferentiableResult:
    """Runs (or resumes) one differentiable search into ``out_dir``; see the module docstring.

    Args:
        space: a declared space.
        data: a loaded `Dataset`, or ``{name: ..., seed: 0, <load_dataset options>}``.
        config: the search (`DifferentiableConfig`; its ``supernet`` field trains the weights).
        out_dir: receives ``differentiable.pt`` (the checkpoint) and, when finished, ``arch.json``.
        cost_table: for a latency metric, a `predictors.lut.LookupTablePredictor` (its fitted
            correction is used); default: the table named by ``config.penalty.table``.
        device: ``auto | cpu | cuda | cuda:N``; ``auto`` defers to ``config.supernet.device``.
        supernet: starting weights (e.g. a supernet trained by ``mixnas supernet train``);
            default: a fresh `Supernet(space, seed=config.supernet.seed)`.
        expected: a prebuilt `ExpectedCost` for this space and cost model (building one enumerates
            the space's op positions: seconds; a benchmark of several weights builds it once).
        extra: stored in the checkpoint (the CLI stores the space declaration and data settings).
        progress: called after every step with (step, steps, numbers of that step).
        stop_after: end this call after that many steps (tests use it to simulate a kill).
    """
    recipe = config.supernet
    try:
        torch_device = torch.device(resolve_device(recipe.device if device == "auto" else device))
    except DeviceError as err:
        raise DifferentiableError("supernet.device", str(err)) from None
    dataset = _dataset(space, data)
    weight_data, arch_data = _split(dataset, config.arch_fraction, recipe.seed)
    if expected is None:
        expected = ExpectedCost(space, cost_model(config, cost_table), seed=recipe.seed)
    net = supernet if supernet is not None else Supernet(space, seed=recipe.seed)
    net.to(torch_device)
    arch = ArchParams(space).to(torch_device)
    expected = expected.to(torch_device)
    weight_opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    arch_opt = torch.optim.Adam(
        arch.parameters(),
        lr=config.arch_lr,
        betas=config.arch_betas,
        weight_decay=config.arch_weight_decay,
    )
    reference = config.penalty.reference or float(expected(uniform(space)))
    step, history, seconds, resumed = 0, [], 0.0, False
    checkpoint = Path(out_dir) / CHECKPOINT
    if checkpoint.exists():
        state = load_checkpoint(checkpoint)
        _check_resumable(checkpoint, state.get("differentiable"), config)
        net.load_state_dict(state["weights"])
        arch.load_state_dict(state["arch"])
        weight_opt.load_state_dict(state["optimizer"])
        arch_opt.load_state_dict(state["arch_optimizer"])
        step, history = int(state["step"]), list(state["history"])
        seconds, reference, resumed = float(state["seconds"]), float(state["reference"]), True

    def write() -> None:
        save_checkpoint(
            checkpoint,
            {
                "format": FORMAT,
                "step": step,
                "weights": net.state_dict(),
                "arch": arch.state_dict(),
                "optimizer": weight_opt.state_dict(),
                "arch_optimizer": arch_opt.state_dict(),
                "history": history,
                "seconds": seconds,
                "reference": reference,
                "differentiable": _normalised(config.outcome()),
                "supernet": {"seed": net.seed, "strict": net.strict},
                **dict(extra or {}),
            },
        )

    last = config.steps if stop_after is None else min(config.steps, step + stop_after)
    start = time.perf_counter()
    while step < last:
        numbers = _step(
            net,
            arch,
            expected,
            weight_opt,
            arch_opt,
            config,
            reference,
            step,
            weight_data,
            arch_data,
            torch_device,
        )
        step += 1
        history.append(numbers)
        seconds += time.perf_counter() - start
        if progress is not None:
            progress(step, config.steps, numbers)
        if step % recipe.checkpoint_every == 0 or step == config.steps:
            write()
        start = time.perf_counter()
    if step < last or (stop_after is None and step < config.steps):  # pragma: no cover
        raise RuntimeError("the search loop ended early")
    return _result(
        space,
        net,
        arch,
        expected,
        config,
        dataset,
        reference,
        cost_table,
        step,
        seconds,
        resumed,
        history,
        Path(out_dir),
    )


def _step(
    net: Supernet,
    arch: ArchParams,
    expected: ExpectedCost,
    weight_opt: torch.optim.Optimizer,
    arch_opt: torch.optim.Optimizer,
    config: DifferentiableConfig,
    reference: float,
    step: int,
    weight_data: Dataset,
    arch_data: Dataset,
    device: torch.device,
) -> dict[str, float]:
    """One weight step and, when due, one architecture step; returns the step's numbers."""
    recipe, space = config.supernet, net.space
    net.train()
    # 1. the shared weights, through a subnet drawn from the current distribution
    spec = space.decode(arch.sample(_generator(recipe.seed, step, 0)))
    x, y = batch_of_step(weight_data, recipe.batch_size, recipe.seed, step, recipe.augment)
    x, y = x.to(device), y.to(device)
    for group in weight_opt.param_groups:
        group["lr"] = _lr(recipe.lr, recipe.warmup_steps, config.steps, step)
    weight_opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(net.configure(spec)(x), y, label_smoothing=recipe.label_smoothing)
    if not math.isfinite(loss.item()):
        raise FloatingPointError(f"differentiable search: weight loss became {loss.item()}")
    loss.backward()
    if recipe.grad_clip:
        nn.utils.clip_grad_norm_(net.parameters(), recipe.grad_clip)
    weight_opt.step()
    weight_opt.zero_grad(set_to_none=True)
    numbers = {"step": float(step), "weight_loss": loss.item()}
    first = int(config.arch_start * config.steps)
    if step < first or (step - first) % config.arch_every:
        return numbers
    # 2. the logits, through a Gumbel-softmax draw, on the architecture batches
    tau = _tau(config, step, first)
    sample = arch.gumbel(tau, _generator(recipe.seed, step, 1), hard=config.hard)
    active = space.active_mask(sample.values)
    spec = space.decode(sample.values)
    xa, ya = batch_of_step(arch_data, recipe.batch_size, recipe.seed + 1, step)
    xa, ya = xa.to(device), ya.to(device)
    template = net.configure(spec).template()
    targets = path_weights(template, arch.names, sample.weights, active, arch.sizes)
    with weighted_paths(template, targets):
        logits = net(xa)
    if OUTPUT in targets:
        logits = logits * targets[OUTPUT]
    ce = F.cross_entropy(logits, ya)
    cost = expected(arch.probabilities())
    penalty = config.penalty
    if penalty.form == "multiplicative":
        arch_loss = ce * (cost / reference) ** penalty.weight
    else:
        arch_loss = ce + penalty.weight * cost / reference
    params = list(arch.parameters())
    grads = torch.autograd.grad(arch_loss, params, allow_unused=True)
    arch_opt.zero_grad(set_to_none=True)
    for p, g in zip(params, grads, strict=True):
        p.grad = torch.zeros_like(p) if g is None else g
    arch_opt.step()
    numbers.update(
        tau=tau, arch_ce=ce.item(), expected_cost=cost.item(), arch_loss=arch_loss.item()
    )
    return numbers


def _result(
    space: SearchSpace,
    net: Supernet,
    arch: ArchParams,
    expected: ExpectedCost,
    config: DifferentiableConfig,
    dataset: Dataset,
    reference: float,
    cost_table: Any,
    step: int,
    seconds: float,
    resumed: bool,
    history: list[dict[str, float]],
    out_dir: Path,
) -> DifferentiableResult:
    """The chosen spec and its numbers; scores, times and writes ``arch.json`` when finished."""
    spec, violations = choose(space, arch, expected, config.supernet.seed)
    finished = step >= config.steps
    with torch.no_grad():
        cost = float(expected(arch.probabilities()))
    result = DifferentiableResult(
        spec=spec,
        probabilities=arch.table(space),
        metric=expected.metric,
        expected_cost=cost,
        spec_cost=expected.of_spec(spec),
        reference=reference,
        steps=step,
        seconds=seconds,
        resumed=resumed,
        finished=finished,
        history=history,
        violations=violations,
    )
    if not finished:
        return result
    top1 = evaluate_subnet(net, spec, dataset, batch_size=config.supernet.batch_size)["top1"]
    measured = None
    if expected.metric.startswith("latency") and config.measure:
        measured = measure(spec, getattr(expected.model, "predictor", None))
    result = replace(result, top1=top1, measured=measured)
    write_json(out_dir / ARCH, result.to_dict())
    return result


def choose(
    space: SearchSpace, arch: ArchParams, expected: ExpectedCost, seed: int
) -> tuple[ArchSpec, list[str]]:
    """The argmax spec and [] if it meets the constraints; else the most probable feasible spec
    among `FEASIBLE_DRAWS` draws from the distribution, and the constraints the argmax broke."""
    values = arch.argmax()
    spec = space.decode(values)
    if not space.constraints:
        return spec, []
    metrics = {expected.metric: expected.of_spec}
    try:
        broken = space.violations(spec, metrics)
    except SpaceError as err:  # a constraint on a metric the search cannot price
        log.warning("differentiable search: constraints not checked (%s)", err)
        return spec, []
    if not broken:
        return spec, []
    gen = _generator(seed, -1, 2)
    best: tuple[float, ArchSpec] | None = None
    for _ in range(FEASIBLE_DRAWS):
        draw = arch.sample(gen)
        candidate = space.decode(draw)
        if not space.violations(candidate, metrics):
            score = arch.log_prob(draw, space.active_mask(draw))
            if best is None or score > best[0]:
                best = (score, candidate)
    if best is None:
        log.warning("differentiable search: no feasible draw; keeping the argmax (%s)", broken)
        return spec, broken
    return best[1], broken


def measure(spec: ArchSpec, predictor: Any = None, options: Any = None) -> dict[str, float]:
    """Times ``spec``'s model on this host the way the ``latency`` evaluator does (one thread,
    warm-up, median of repeats), with the table's batch size, dtype and statistic; ``options``
    (`predictors.timing.TimingOptions`) replaces those settings."""
    from predictors.timing import TimingOptions, measure_spec

    table = getattr(predictor, "options", None)
    if options is None:
        options = TimingOptions(
            threads=1,
            batch_size=table.batch_size if table else 1,
            dtype=table.dtype if table else "auto",
            statistic=table.statistic if table else "median",
        )
    timing = measure_spec(spec, options)
    return {
        "latency_ms": timing.value(options.statistic),
        "median_ms": timing.median_ms,
        "iqr_ms": timing.iqr_ms,
        "min_ms": timing.min_ms,
        "rel_iqr": timing.rel_iqr,
    }


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Atomic JSON write (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _dataset(space: SearchSpace, data: Mapping[str, Any] | Dataset) -> Dataset:
    if isinstance(data, Dataset):
        return data
    options = dict(data)
    seed = options.pop("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DifferentiableError("data.seed", "must be an integer", seed)
    return load_dataset(options, space.decl.input, seed=seed)


def _split(data: Dataset, arch_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """The training split cut in two, seeded: rows for the weights, rows for the logits."""
    n = len(data.y_train)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = min(n - 1, max(1, round(n * arch_fraction)))
    arch_rows, weight_rows = order[:cut], order[cut:]

    def part(rows: torch.Tensor) -> Dataset:
        return replace(data, x_train=data.x_train[rows], y_train=data.y_train[rows])

    return part(weight_rows), part(arch_rows)


def _generator(seed: int, step: int, kind: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, step + 1, kind]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def _tau(config: DifferentiableConfig, step: int, first: int) -> float:
    """Exponential decay from tau_max (first architecture step) to tau_min (last step)."""
    span = max(1, config.steps - 1 - first)
    frac = min(1.0, max(0.0, (step - first) / span))
    return float(config.tau_max * (config.tau_min / config.tau_max) ** frac)


def _lr(lr: float, warmup: int, steps: int, step: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))


def _normalised(data: Any) -> Any:
    return json.loads(json.dumps(data))


def _check_resumable(path: Path, stored: Any, config: DifferentiableConfig) -> None:
    old, new = stored or {}, _normalised(config.outcome())
    if old != new:
        flat_old, flat_new = _flatten(old), _flatten(new)
        changed = sorted(
            k for k in flat_new.keys() | flat_old.keys() if flat_old.get(k) != flat_new.get(k)
        )
        shown = ", ".join(f"{k}: {flat_old.get(k)!r} -> {flat_new.get(k)!r}" for k in changed[:3])
        raise DifferentiableError(
            str(path),
            f"was written with a different differentiable config ({shown}); "
            "use a new run folder or the same config",
        )


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
