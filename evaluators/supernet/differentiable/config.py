"""The ``differentiable:`` config block: how the architecture distribution trains and what it pays.

Checked at the boundary (CLI, public API): a bad field raises `DifferentiableError`, whose one
line names the field path, the value and what is allowed. The weight-training options (learning
rate, batch size, weight decay, label smoothing, gradient clipping, seed, device) are those of the
supernet's `RecipeConfig` (the ``supernet:`` block of the same file); ``differentiable.steps``
replaces ``supernet.steps``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from evaluators.supernet.train import RecipeConfig, SupernetError

METRICS = ("latency_ms@host", "params", "macs")
FORMS = ("additive", "multiplicative")
# fields that change how fast or where a run goes, not what it computes (a resume may change them)
NEUTRAL = ("checkpoint_every", "device", "loader_workers", "measure")


class DifferentiableError(SupernetError):
    """A differentiable-search option is invalid; ``field``, ``message`` and ``value`` make the
    one line (the CLI prefixes the file)."""

    def __init__(self, field: str, message: str, value: Any = ...) -> None:
        self.field, self.message, self.value = field, message, value
        shown = "" if value is ... else f" (got {value!r})"
        super().__init__(f"{field}: {message}{shown}")


@dataclass(frozen=True)
class PenaltyConfig:
    """The cost term of the architecture loss.

    Attributes:
        metric: ``latency_ms@host`` (a host lookup table), ``params`` or ``macs`` (analytic).
        weight: lambda; 0 searches for accuracy alone.
        table: for latency: ``host`` (the host table in the default cache, missing ops profiled
            here) or a directory holding host tables (`predictors.lut.LookupTablePredictor`'s
            ``cache_dir``).
        correction: the table's ``latency = a * sum + b * ops + c`` coefficients (all >= 0);
            default the plain sum ``[1, 0, 0]``. Linear, so its expectation stays exact.
        reference: the cost that normalises the penalty; ``auto`` (0) is the expected cost under
            the initial (uniform) distribution, so ``weight`` is unit-free.
        form: ``additive`` (``CE + weight * E[cost] / reference``) or ``multiplicative``
            (ProxylessNAS/FBNet: ``CE * (E[cost] / reference) ** weight``).
    """

    metric: str = "latency_ms@host"
    weight: float = 0.0
    table: str = "host"
    correction: tuple[float, float, float] = (1.0, 0.0, 0.0)
    reference: float = 0.0
    form: str = "additive"

    @staticmethod
    def from_dict(data: Any, where: str = "differentiable.penalty") -> PenaltyConfig:
        if not isinstance(data, Mapping):
            raise DifferentiableError(where, "must be a mapping", data)
        _unknown(data, PenaltyConfig, where)
        out: dict[str, Any] = {}
        for key, value in data.items():
            path = f"{where}.{key}"
            if key == "metric":
                _choice(value, METRICS, path)
            elif key == "form":
                _choice(value, FORMS, path)
            elif key == "table":
                if not isinstance(value, str) or not value:
                    raise DifferentiableError(path, "must be 'host' or a directory", value)
            elif key == "correction":
                if (
                    not isinstance(value, list | tuple)
                    or len(value) != 3
                    or not all(_number(v) and v >= 0 for v in value)
                ):
                    raise DifferentiableError(path, "must be three numbers >= 0 [a, b, c]", value)
                value = tuple(float(v) for v in value)
            elif key == "reference":
                if value == "auto":
                    value = 0.0
                elif not _number(value) or value <= 0:
                    raise DifferentiableError(path, "must be 'auto' or a number > 0", value)
            elif not _number(value) or value < 0:  # weight
                raise DifferentiableError(path, "must be a number >= 0", value)
            out[key] = value
        return PenaltyConfig(**out)


@dataclass(frozen=True)
class DifferentiableConfig:
    """One differentiable search (see `evaluators.supernet.differentiable.search`).

    Attributes:
        steps: weight steps; an architecture step follows every ``arch_every``-th of them once
            ``arch_start`` of the steps are done (the weights warm up on uniformly sampled
            subnets first, as GDAS and ProxylessNAS do, so that early choices are not judged on
            untrained weights).
        arch_lr, arch_betas, arch_weight_decay: the architecture optimizer (Adam; DARTS's
            3e-4, (0.5, 0.999), 1e-3 are for 50-epoch runs, a short CPU run needs a larger lr).
        tau_max, tau_min: the Gumbel-softmax temperature falls exponentially from one to the other
            over the architecture steps (GDAS: 10 -> 0.1).
        hard: straight-through hard samples: the sampled path's output is multiplied by a weight
            that is 1 in value and carries the Gumbel-softmax gradient (GDAS). False scales it
            by its soft weight instead (value below 1; still one path per step).
        arch_fraction: the share of the training split that architecture steps read (the rest
            trains the weights; the validation split stays unseen for the final score).
        penalty: the cost term (`PenaltyConfig`).
        measure: time the chosen spec on this host when the metric is latency.
        supernet: the weight-training options (the ``supernet:`` block).
    """

    steps: int = 300
    arch_lr: float = 0.01
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 0.0
    arch_every: int = 1
    arch_start: float = 0.25
    tau_max: float = 5.0
    tau_min: float = 0.2
    hard: bool = True
    arch_fraction: float = 0.5
    penalty: PenaltyConfig = field(default_factory=PenaltyConfig)
    measure: bool = True
    supernet: RecipeConfig = field(default_factory=RecipeConfig)

    @staticmethod
    def from_dict(
        data: Any,
        where: str = "differentiable",
        *,
        supernet: Mapping[str, Any] | RecipeConfig | None = None,
    ) -> DifferentiableConfig:
        """Checks types and ranges; ``supernet`` is the ``supernet:`` block (or a config)."""
        if not isinstance(data, Mapping):
            raise DifferentiableError(where, "must be a mapping", data)
        _unknown(data, DifferentiableConfig, where, skip=("supernet",))
        out: dict[str, Any] = {}
        for key, value in data.items():
            path = f"{where}.{key}"
            if key == "penalty":
                value = PenaltyConfig.from_dict(value, path)
            elif key in ("hard", "measure"):
                if not isinstance(value, bool):
                    raise DifferentiableError(path, "must be true or false", value)
            elif key in ("steps", "arch_every"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise DifferentiableError(path, "must be an integer >= 1", value)
            elif key == "arch_betas":
                if (
                    not isinstance(value, list | tuple)
                    or len(value) != 2
                    or not all(_number(v) and 0 <= v < 1 for v in value)
                ):
                    raise DifferentiableError(path, "must be two numbers in [0, 1)", value)
                value = (float(value[0]), float(value[1]))
            elif key in ("arch_start",):
                if not _number(value) or not 0 <= value < 1:
                    raise DifferentiableError(path, "must be a fraction in [0, 1)", value)
            elif key == "arch_fraction":
                if not _number(value) or not 0 < value < 1:
                    raise DifferentiableError(path, "must be a fraction in (0, 1)", value)
            elif key in ("arch_lr", "tau_max", "tau_min"):
                if not _number(value) or value <= 0:
                    raise DifferentiableError(path, "must be a number > 0", value)
            elif not _number(value) or value < 0:  # arch_weight_decay
                raise DifferentiableError(path, "must be a number >= 0", value)
            out[key] = value
        cfg = DifferentiableConfig(**out)
        if cfg.tau_min > cfg.tau_max:
            raise DifferentiableError(
                f"{where}.tau_min", f"must be <= tau_max ({cfg.tau_max})", cfg.tau_min
            )
        if isinstance(supernet, RecipeConfig):
            recipe = supernet
        else:
            recipe = RecipeConfig.from_dict(supernet or {})  # its errors name supernet.<field>
        return DifferentiableConfig(**{**_shallow(cfg), "supernet": recipe})

    def outcome(self) -> dict[str, Any]:
        """The fields that decide the result (a resume must keep them)."""
        data = asdict(self)
        recipe = {k: v for k, v in data.pop("supernet").items() if k not in NEUTRAL}
        return {
            **{k: v for k, v in data.items() if k not in NEUTRAL},
            "supernet": recipe,
        }


def _shallow(cfg: DifferentiableConfig) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in fields(cfg)}


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _choice(value: Any, allowed: tuple[str, ...], path: str) -> None:
    if value not in allowed:
        raise DifferentiableError(path, f"must be one of {list(allowed)}", value)


def _unknown(data: Mapping[str, Any], cls: type, where: str, skip: tuple[str, ...] = ()) -> None:
    known = [f.name for f in fields(cls) if f.name not in skip]
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise DifferentiableError(
            f"{where}.{unknown[0]}", f"unknown field; allowed: {', '.join(known)}"
        )
