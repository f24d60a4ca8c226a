"""The search job's configuration: what a ``mixnas search CONFIG.yaml`` file may say, and its
checks.

A config is checked completely before any work starts: every field is read here, and a wrong one
raises `ConfigError` with the file, the field path, the value and what is allowed. Checks that need
the registries (strategy, evaluator and metric names, option names) are done by `mixnas.job`, which
constructs the real objects from the config; this module checks shapes, types and ranges.

Example (every top-level field; all but ``objectives`` have defaults)::

    name: my-run                 # run folder: <runs_dir>/<name>
    seed: 0
    space: hybrid                # built-in name, a file, an inline declaration, or
                                 # {from: NAME_OR_FILE, constraints: {...}, input: {...}}
    objectives:
      - {metric: top1, direction: maximize}
      - {metric: latency_ms@host, direction: minimize}
    constraints: {params: {max: 2.0e6}}
    evaluators:                  # run in order for every trial; 'cost' always runs first
      - {name: proxy, options: {names: [nwot, synflow]}}
      - {name: train, budget: {steps: 60}, data: digits,
         promote: {metric: "proxy:nwot", top: 0.5, warmup: 4}}
    strategy: {name: nsga2, options: {population: 12}}
    budget: {trials: 40, seconds: 1800}
    backend: {name: local, workers: 1}
    trial_timeout: 300           # seconds per trial; a trial past it fails, the run goes on
    runs_dir: runs
    export: {pick: front, dir: export}   # written inside the run folder at the end
    initial: [convnext_t, my_spec.json]  # zoo models or spec files that seed the population
    ship:                        # after the search: train and ship the best front members
      top: 2                     # how many (``mixnas search --then-train N`` overrides it)
      by: top1                   # ranked by this metric (METRIC, METRIC:max or METRIC:min)
      constraint: {latency_ms@host: {max: 1.0}}  # bounds a shipped member must meet
      recipe: {epochs: 60}       # recipe fields over the block's defaults, or a recipe file
      data: digits               # default: the data of the search's training evaluator
      onnx: true
      torchscript: true
      int8: auto                 # auto | on | off
      device: auto               # where the members train
      tolerance: 0.25            # allowed gap of a measured search latency (mixnas ship)

The ``ship`` block is documented in docs/shipping.md; `mixnas.shipping.pipeline` runs it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from search_space import paths
from search_space.errors import MixnasError, shorten
from strategies.base import Direction

DIRECTIONS = Direction.values()
BACKENDS = ("local", "ray")
PICKS = ("front", "best")
_TOP_PICK = re.compile(r"top[1-9][0-9]{0,5}")  # the best K by the first objective
MAX_BATCH = 4096  # candidates per in-driver batch: beyond this a batch only delays the front
# bounds where a larger value can only be a mistake (100x the largest run benchmarked, a year,
# far more worker processes than a cluster node has cores); see docs/runs.md
MAX_TRIALS = 10_000_000
MAX_SECONDS = 366 * 24 * 3600.0
MAX_WORKERS = 1024
MAX_SEED = 2**63 - 1
TOP_LEVEL_FIELDS = (
    "name", "seed", "space", "objectives", "constraints", "evaluators", "strategy", "budget",
    "backend", "trial_timeout", "runs_dir", "export", "description", "initial", "ship",
)  # fmt: skip
SHIP_FIELDS = (
    "top", "by", "constraint", "recipe", "data", "onnx", "torchscript", "int8", "device",
    "tolerance",
)  # fmt: skip
INT8_CHOICES = ("auto", "on", "off")
MAX_SHIP_TOP = 1000  # each shipped member is a full training: more is a typo
# The ship block's recipe defaults, under every field the block (or its recipe file) gives;
# `evaluators.fulltrain.TrainRecipe` supplies the rest. mixnas train's defaults (100 epochs of
# batch 128 at lr 1e-3, 5 warm-up epochs) are for ImageNet-scale data; a search config's data is
# held in memory (digits, a generated task, a folder of thousands of images), where the search's
# own ``train`` evaluator's batch and lr (64, 2e-3) converge a small model in a few tens of
# epochs. The measurements behind these values are in docs/shipping.md.
SHIP_RECIPE_DEFAULTS: dict[str, Any] = {
    "epochs": 30,
    "warmup_epochs": 1.0,
    "batch_size": 64,
    "lr": 2e-3,
}
_BY = re.compile(r"(?P<metric>.+?)(?::(?P<direction>max|min))?")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
DEFAULT_CONFIG = Path(__file__).with_name("default_search.yaml")


class ConfigError(MixnasError, ValueError):
    """A run configuration is invalid; the message is one line naming source, field and value."""

    def __init__(self, field: str, message: str, *, source: str | None = None, value: Any = ...):
        self.field, self.message, self.source, self.value = field, message, source, value
        where = f"{source}: " if source else ""
        shown = "" if value is ... else f" (got {shorten(value)})"
        super().__init__(f"{where}{field}: {message}{shown}")


@dataclass(frozen=True)
class PromoteRule:
    """Multi-fidelity screening: an evaluator with a rule runs only for candidates whose
    ``metric`` (from an earlier evaluator) is within the best ``top`` fraction of the trials
    finished before the candidate was asked; the first ``warmup`` trials always run it. A
    candidate not promoted is recorded with status ``pruned`` and its cheap metrics."""

    metric: str
    top: float = 0.5
    direction: Direction = Direction.MAXIMIZE
    warmup: int = 4


@dataclass(frozen=True)
class EvaluatorConfig:
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    budget: Mapping[str, float] = field(default_factory=dict)
    data: Any = None
    promote: PromoteRule | None = None
    device: str = "auto"  # torch device for evaluators that run models: auto|cpu|cuda|cuda:N


@dataclass(frozen=True)
class ObjectiveConfig:
    metric: str
    direction: Direction = Direction.MAXIMIZE


@dataclass(frozen=True)
class BackendConfig:
    name: str = "local"
    workers: int = 1
    address: str | None = None  # Ray: an existing cluster's address; None starts a local one
    cpus_per_trial: float = 1.0
    threads_per_worker: int = 0  # torch threads in each worker; 0: cores / workers
    gpus_per_trial: float = 0.0  # Ray: GPUs each trial reserves (fractional shares a GPU)
    # candidates asked, evaluated and committed together when trials run in the driver
    # (workers: 0); None: chosen from the evaluators (large when all are cheap, else 1)
    batch: int | None = None


@dataclass(frozen=True)
class ShipConfig:
    """The ``ship:`` block: after the search, the best ``top`` front members that meet
    ``constraint`` (ranked by ``by``, default the first objective) are trained and shipped.

    ``recipe`` holds the recipe fields the block gave (inline, or read from the file it named),
    checked here; `SHIP_RECIPE_DEFAULTS` and then `TrainRecipe`'s defaults fill the rest.
    ``data`` is a training data block (``name`` or ``{name, options, data_seed,
    test_fraction}``), None for the search's own training data. ``int8``, ``tolerance``,
    ``onnx`` and ``torchscript`` are `mixnas.shipping.ship`'s options; ``device`` is where the
    members train (``auto | cpu | cuda | cuda:N``).
    """

    top: int = 1
    by: str | None = None
    constraint: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    recipe: Mapping[str, Any] = field(default_factory=dict)
    data: Any = None
    onnx: bool = True
    torchscript: bool = True
    int8: str = "auto"
    device: str = "auto"
    tolerance: float = 0.25

    def to_dict(self) -> dict[str, Any]:
        return {
            "top": self.top,
            "by": self.by,
            "constraint": {k: dict(v) for k, v in self.constraint.items()},
            "recipe": dict(self.recipe),
            "data": self.data,
            "onnx": self.onnx,
            "torchscript": self.torchscript,
            "int8": self.int8,
            "device": self.device,
            "tolerance": self.tolerance,
        }


@dataclass(frozen=True)
class SearchConfig:
    name: str
    objectives: tuple[ObjectiveConfig, ...]
    space: Any = "hybrid"
    seed: int = 0
    constraints: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    evaluators: tuple[EvaluatorConfig, ...] = ()
    strategy: str = "nsga2"
    strategy_options: Mapping[str, Any] = field(default_factory=dict)
    trials: int | None = 20
    seconds: float | None = None
    backend: BackendConfig = field(default_factory=BackendConfig)
    trial_timeout: float | None = 600.0
    runs_dir: str = "runs"
    export_pick: str | None = "front"
    export_dir: str = "export"
    initial: tuple[str, ...] = ()  # zoo names or spec files proposed first
    ship: ShipConfig | None = None  # train and ship front members after the search
    source: str | None = None  # the file the config came from

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def with_overrides(self, **changes: Any) -> SearchConfig:
        """A copy with fields replaced (CLI flags), checked like the file was."""
        out = replace(self, **{k: v for k, v in changes.items() if v is not None})
        _check_budget(out.trials, out.seconds, out.source)
        _check_name(out.name, out.source)
        _Reader(out.source).integer(out.seed, "seed", minimum=0, maximum=MAX_SEED)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (round-trips through `parse_config`)."""
        return {
            "name": self.name,
            "seed": self.seed,
            "space": self.space,
            "objectives": [{"metric": o.metric, "direction": o.direction} for o in self.objectives],
            "constraints": {k: dict(v) for k, v in self.constraints.items()},
            "evaluators": [evaluator_to_dict(e) for e in self.evaluators],
            "strategy": {"name": self.strategy, "options": dict(self.strategy_options)},
            "budget": {"trials": self.trials, "seconds": self.seconds},
            "backend": {
                "name": self.backend.name,
                "workers": self.backend.workers,
                "address": self.backend.address,
                "cpus_per_trial": self.backend.cpus_per_trial,
                "threads_per_worker": self.backend.threads_per_worker,
                "gpus_per_trial": self.backend.gpus_per_trial,
                "batch": self.backend.batch,
            },
            "trial_timeout": self.trial_timeout,
            "runs_dir": self.runs_dir,
            "export": {"pick": self.export_pick, "dir": self.export_dir},
            "initial": list(self.initial),
            **({"ship": self.ship.to_dict()} if self.ship is not None else {}),
        }


def evaluator_to_dict(e: EvaluatorConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"name": e.name, "options": dict(e.options), "budget": dict(e.budget)}
    if e.data is not None:
        out["data"] = e.data
    if e.device != "auto":
        out["device"] = e.device
    if e.promote is not None:
        p = e.promote
        out["promote"] = {
            "metric": p.metric,
            "top": p.top,
            "direction": p.direction,
            "warmup": p.warmup,
        }
    return out


# -- reading ---------------------------------------------------------------------------------------
def load_config(path: str | Path | None) -> SearchConfig:
    """Reads and checks a config file; None reads the embedded default job."""
    from search_space.declare.loader import read_declaration
    from search_space.errors import SpaceError

    source = str(path) if path is not None else "<default config>"
    file = Path(path) if path is not None else DEFAULT_CONFIG
    if not paths.is_file(file):
        raise ConfigError("<file>", "no such config file", source=source)
    try:
        data = read_declaration(file)
    except SpaceError as err:  # a syntax error: same one line, as a config error
        raise ConfigError(err.field, err.message, source=source) from None
    return parse_config(data, source=source, base_dir=file.parent)


def parse_config(
    data: Any, *, source: str | None = None, base_dir: Path | None = None
) -> SearchConfig:
    """Checks plain data (a parsed YAML/JSON mapping) and returns the config it describes."""
    r = _Reader(source)
    top = r.mapping(data, "<root>")
    r.known(top, list(TOP_LEVEL_FIELDS), "<root>")
    if "objectives" not in top:
        raise ConfigError("objectives", "is required: a list of {metric, direction}", source=source)
    name = top.get("name", "search")
    _check_name(name, source)
    space = _space(top.get("space", "hybrid"), r, base_dir)
    listed = r.sequence(top["objectives"], "objectives", min_len=1)
    objectives = tuple(_objective(o, f"objectives[{i}]", r) for i, o in enumerate(listed))
    metrics = [o.metric for o in objectives]
    if len(set(metrics)) != len(metrics):
        raise ConfigError("objectives", "names a metric twice", source=source, value=metrics)
    constraints = _constraints(top.get("constraints", {}), r, "constraints")
    evaluators = tuple(
        _evaluator(e, f"evaluators[{i}]", r)
        for i, e in enumerate(r.sequence(top.get("evaluators", []), "evaluators"))
    )
    strategy, strategy_options = _strategy(top.get("strategy", "nsga2"), r)
    trials, seconds = _budget(top.get("budget", {"trials": 20}), r)
    backend = _backend(top.get("backend", "local"), r)
    timeout = top.get("trial_timeout", 600.0)
    if timeout is not None:
        timeout = r.number(timeout, "trial_timeout", minimum=0.001, maximum=MAX_SECONDS)
    runs_dir = top.get("runs_dir", "runs")
    if not isinstance(runs_dir, str) or not runs_dir:
        raise ConfigError("runs_dir", "must be a folder path", source=source, value=runs_dir)
    export_pick, export_dir = _export(top.get("export", {}), r)
    initial = []
    for i, item in enumerate(r.sequence(top.get("initial", []), "initial")):
        if not isinstance(item, str):
            raise r.fail(f"initial[{i}]", "must be a zoo model name or a spec file", item)
        initial.append(_relative_file(item, base_dir))
    ship = _ship(top.get("ship"), r, objectives, base_dir)
    return SearchConfig(
        name=name,
        objectives=objectives,
        space=space,
        seed=int(r.integer(top.get("seed", 0), "seed", minimum=0, maximum=MAX_SEED)),
        constraints=constraints,
        evaluators=evaluators,
        strategy=strategy,
        strategy_options=strategy_options,
        trials=trials,
        seconds=seconds,
        backend=backend,
        trial_timeout=timeout,
        runs_dir=runs_dir,
        export_pick=export_pick,
        export_dir=export_dir,
        initial=tuple(initial),
        ship=ship,
        source=source,
    )


class _Reader:
    """Type checks that raise `ConfigError` with the config's source."""

    def __init__(self, source: str | None) -> None:
        self.source = source

    def fail(self, field: str, message: str, value: Any = ...) -> ConfigError:
        return ConfigError(field, message, source=self.source, value=value)

    def mapping(self, value: Any, field: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(field, "must be a mapping", type(value).__name__)
        return value

    def sequence(self, value: Any, field: str, *, min_len: int = 0) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(field, "must be a list", type(value).__name__)
        if len(value) < min_len:
            raise self.fail(field, f"needs at least {min_len} item(s)")
        return value

    def known(self, value: Mapping[str, Any], allowed: list[str], field: str) -> None:
        for key in value:
            if key not in allowed:
                raise self.fail(
                    f"{field}.{key}" if field != "<root>" else str(key),
                    f"unknown field; allowed: {', '.join(allowed)}",
                )

    def integer(
        self, value: Any, field: str, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, "must be an integer", value)
        if minimum is not None and value < minimum:
            raise self.fail(field, f"must be >= {minimum}", value)
        if maximum is not None and value > maximum:
            raise self.fail(field, f"must be at most {maximum:,}", value)
        return value

    def number(
        self,
        value: Any,
        field: str,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self.fail(field, "must be a finite number", value)
        if minimum is not None and value < minimum:
            raise self.fail(field, f"must be >= {minimum}", value)
        if maximum is not None and value > maximum:
            raise self.fail(field, f"must be at most {maximum:g}", value)
        return float(value)

    def choice(self, value: Any, field: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise self.fail(field, f"must be one of {', '.join(allowed)}", value)
        return str(value)


def _check_name(name: Any, source: str | None) -> None:
    # the run folder is <runs_dir>/<name>: a name with a separator or '..' would write elsewhere
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ConfigError(
            "name",
            "must be 1-100 letters, digits, '.', '_' or '-' (it names the run folder, which "
            "must stay inside runs_dir)",
            source=source,
            value=name,
        )


def _space(value: Any, r: _Reader, base_dir: Path | None) -> Any:
    if isinstance(value, str):
        return _relative_file(value, base_dir)
    space = r.mapping(value, "space")
    if "from" in space:
        base = space["from"]
        if not isinstance(base, str):
            raise r.fail("space.from", "must be a built-in space name or a file", base)
        r.known(space, ["from", "constraints", "input", "name"], "space")
        return {**space, "from": _relative_file(base, base_dir)}
    return dict(space)  # an inline declaration, checked by the space language


def _relative_file(value: str, base_dir: Path | None) -> str:
    # a relative space file in a config is relative to the config file, like an include
    if base_dir is not None and not Path(value).is_absolute() and paths.exists(base_dir / value):
        return str(base_dir / value)
    return value


def _objective(value: Any, field: str, r: _Reader) -> ObjectiveConfig:
    if isinstance(value, str):
        return ObjectiveConfig(value)
    o = r.mapping(value, field)
    r.known(o, ["metric", "direction"], field)
    metric = o.get("metric")
    if not isinstance(metric, str) or not metric:
        raise r.fail(f"{field}.metric", "must name a metric, e.g. top1, params, macs", metric)
    return ObjectiveConfig(
        metric,
        Direction(r.choice(o.get("direction", "maximize"), f"{field}.direction", DIRECTIONS)),
    )


def _constraints(value: Any, r: _Reader, where: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for metric, bound in r.mapping(value, where).items():
        field = f"{where}.{metric}"
        b = r.mapping(bound, field)
        r.known(b, ["min", "max"], field)
        if not b:
            raise r.fail(field, "needs min and/or max")
        out[str(metric)] = {k: r.number(v, f"{field}.{k}") for k, v in b.items()}
    return out


def _evaluator(value: Any, field: str, r: _Reader) -> EvaluatorConfig:
    if isinstance(value, str):
        return EvaluatorConfig(value)
    e = r.mapping(value, field)
    r.known(e, ["name", "options", "budget", "data", "promote", "device"], field)
    name = e.get("name")
    if not isinstance(name, str):
        raise r.fail(f"{field}.name", "must name an evaluator", name)
    budget = {
        k: r.number(v, f"{field}.budget.{k}", minimum=0)
        for k, v in r.mapping(e.get("budget", {}), f"{field}.budget").items()
    }
    promote = None
    if e.get("promote") is not None:
        p = r.mapping(e["promote"], f"{field}.promote")
        r.known(p, ["metric", "top", "direction", "warmup"], f"{field}.promote")
        if not isinstance(p.get("metric"), str):
            raise r.fail(f"{field}.promote.metric", "must name a metric", p.get("metric"))
        top = r.number(p.get("top", 0.5), f"{field}.promote.top", minimum=0.0)
        if not 0 < top <= 1:
            raise r.fail(f"{field}.promote.top", "must be in (0, 1]", top)
        promote = PromoteRule(
            metric=p["metric"],
            top=top,
            direction=Direction(
                r.choice(p.get("direction", "maximize"), f"{field}.promote.direction", DIRECTIONS)
            ),
            warmup=r.integer(p.get("warmup", 4), f"{field}.promote.warmup", minimum=0),
        )
    return EvaluatorConfig(
        name=name,
        options=dict(r.mapping(e.get("options", {}), f"{field}.options")),
        budget=budget,
        data=e.get("data"),
        promote=promote,
        device=_device(e.get("device", "auto"), f"{field}.device", r),
    )


def _device(value: Any, field: str, r: _Reader) -> str:
    """A torch device name as the design guide spells it (availability is checked by
    `mixnas.job`, which knows whether this machine has a GPU)."""
    if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise r.fail(field, "must be auto, cpu, cuda or cuda:N", value)
    return value


def _strategy(value: Any, r: _Reader) -> tuple[str, dict[str, Any]]:
    if isinstance(value, str):
        return value, {}
    s = r.mapping(value, "strategy")
    r.known(s, ["name", "options"], "strategy")
    if not isinstance(s.get("name"), str):
        raise r.fail("strategy.name", "must name a strategy", s.get("name"))
    return s["name"], dict(r.mapping(s.get("options", {}), "strategy.options"))


def _budget(value: Any, r: _Reader) -> tuple[int | None, float | None]:
    b = r.mapping(value, "budget")
    r.known(b, ["trials", "seconds"], "budget")
    trials = b.get("trials")
    seconds = b.get("seconds")
    if trials is not None:
        trials = r.integer(trials, "budget.trials", minimum=1, maximum=MAX_TRIALS)
    if seconds is not None:
        seconds = r.number(seconds, "budget.seconds", minimum=0.001, maximum=MAX_SECONDS)
    _check_budget(trials, seconds, r.source)
    return trials, seconds


def _check_budget(trials: Any, seconds: Any, source: str | None) -> None:
    if trials is None and seconds is None:
        raise ConfigError("budget", "needs trials and/or seconds", source=source)
    r = _Reader(source)
    if trials is not None:
        r.integer(trials, "budget.trials", minimum=1, maximum=MAX_TRIALS)
    if seconds is not None:
        r.number(seconds, "budget.seconds", minimum=0.001, maximum=MAX_SECONDS)


def _backend(value: Any, r: _Reader) -> BackendConfig:
    if isinstance(value, str):
        value = {"name": value}
    b = r.mapping(value, "backend")
    r.known(
        b,
        ["name", "workers", "address", "cpus_per_trial", "threads_per_worker", "gpus_per_trial",
         "batch"],
        "backend",
    )  # fmt: skip
    address = b.get("address")
    batch = b.get("batch")
    if batch is not None and batch != "auto":
        batch = r.integer(batch, "backend.batch", minimum=1)
        if batch > MAX_BATCH:
            raise r.fail("backend.batch", f"must be at most {MAX_BATCH}", batch)
    if address is not None and not isinstance(address, str):
        raise r.fail("backend.address", "must be a Ray address like 'auto' or 'host:6379'", address)
    return BackendConfig(
        name=r.choice(b.get("name", "local"), "backend.name", BACKENDS),
        workers=r.integer(b.get("workers", 1), "backend.workers", minimum=0, maximum=MAX_WORKERS),
        address=address,
        cpus_per_trial=r.number(b.get("cpus_per_trial", 1.0), "backend.cpus_per_trial", minimum=0),
        threads_per_worker=r.integer(
            b.get("threads_per_worker", 0),
            "backend.threads_per_worker",
            minimum=0,
            maximum=MAX_WORKERS,
        ),
        gpus_per_trial=r.number(b.get("gpus_per_trial", 0.0), "backend.gpus_per_trial", minimum=0),
        batch=None if batch in (None, "auto") else batch,
    )


def _export(value: Any, r: _Reader) -> tuple[str | None, str]:
    if value is None:
        return None, "export"
    e = r.mapping(value, "export")
    r.known(e, ["pick", "dir"], "export")
    pick = e.get("pick", "front")
    top = isinstance(pick, str) and _TOP_PICK.fullmatch(pick)
    if pick is not None and not top and pick not in PICKS:
        raise r.fail("export.pick", f"must be one of {', '.join(PICKS)} or topK (e.g. top5)", pick)
    folder = e.get("dir", "export")
    if not isinstance(folder, str) or Path(folder).is_absolute() or ".." in Path(folder).parts:
        raise r.fail(
            "export.dir", "must be a relative folder inside the run folder (no '..')", folder
        )
    return pick, folder


def _ship(
    value: Any, r: _Reader, objectives: tuple[ObjectiveConfig, ...], base_dir: Path | None
) -> ShipConfig | None:
    """The ``ship:`` block's shapes, ranges and recipe; metric names, the data source and the
    device are checked against the job (`mixnas.shipping.pipeline.check_ship`)."""
    if value is None:
        return None
    s = r.mapping(value, "ship")
    r.known(s, list(SHIP_FIELDS), "ship")
    top = r.integer(s.get("top", 1), "ship.top", minimum=1, maximum=MAX_SHIP_TOP)
    by = s.get("by")
    if by is not None:
        match = _BY.fullmatch(by) if isinstance(by, str) else None
        if match is None:
            raise r.fail("ship.by", "must be METRIC, METRIC:max or METRIC:min", by)
        directions = [o.metric for o in objectives]
        if match["direction"] is None and match["metric"] not in directions:
            raise r.fail(
                "ship.by",
                f"is not an objective, so its direction is unknown: say {by}:max or {by}:min "
                f"(objectives: {', '.join(directions)})",
                by,
            )
    constraint = _constraints(s.get("constraint", {}), r, "ship.constraint")
    onnx, torchscript = (
        _flag(s.get(key, True), f"ship.{key}", r) for key in ("onnx", "torchscript")
    )
    if not (onnx or torchscript):
        raise r.fail("ship", "onnx and torchscript are both false: nothing would be shipped")
    int8 = s.get("int8", "auto")
    int8 = {True: "on", False: "off"}.get(int8, int8) if isinstance(int8, bool) else int8
    tolerance = r.number(s.get("tolerance", 0.25), "ship.tolerance", minimum=0)
    if not tolerance > 0:
        raise r.fail("ship.tolerance", "must be a fraction > 0, e.g. 0.25", tolerance)
    return ShipConfig(
        top=top,
        by=by,
        constraint=constraint,
        recipe=_ship_recipe(s.get("recipe", {}), r, base_dir),
        data=_ship_data(s.get("data"), r),
        onnx=onnx,
        torchscript=torchscript,
        int8=r.choice(int8, "ship.int8", INT8_CHOICES),
        device=_device(s.get("device", "auto"), "ship.device", r),
        tolerance=tolerance,
    )


def _flag(value: Any, field: str, r: _Reader) -> bool:
    if not isinstance(value, bool):
        raise r.fail(field, "must be true or false", value)
    return value


def _ship_recipe(value: Any, r: _Reader, base_dir: Path | None) -> dict[str, Any]:
    """The recipe fields the block gives: a mapping, or a recipe file (relative to the config
    file) read here, so that the run folder's config.json holds the recipe itself. Checked
    together with the block's defaults as `mixnas train` checks a recipe file."""
    from evaluators.fulltrain.recipe import TrainError, recipe_from_dict

    source = "ship.recipe"
    if isinstance(value, str):
        file = Path(_relative_file(value, base_dir))
        if not paths.is_file(file):
            raise r.fail("ship.recipe", "no such recipe file", value)
        from search_space.declare.loader import read_declaration
        from search_space.errors import SpaceError

        try:
            value = read_declaration(file)
        except SpaceError as err:
            raise r.fail("ship.recipe", f"{file}: {err.field}: {err.message}") from None
        value = {} if value is None else value
        source = str(file)
    given = dict(r.mapping(value, "ship.recipe"))
    try:
        recipe_from_dict({**SHIP_RECIPE_DEFAULTS, **given}, source)
    except TrainError as err:
        text = str(err).removeprefix(f"{source}: ")
        if source != "ship.recipe":  # a file: its name and its field in the message
            raise r.fail("ship.recipe", f"{source}: {text}") from None
        key, _, message = text.partition(": ")
        raise r.fail(f"ship.recipe.{key}", message) from None
    return given


def _ship_data(value: Any, r: _Reader) -> Any:
    """A training data block (`evaluators.fulltrain.DataRecipe`'s fields, or a name alone);
    whether the source exists is checked against the space's input by the job."""
    if value is None:
        return None
    from evaluators.fulltrain.recipe import TrainError, data_from_dict

    try:
        data_from_dict(value, "ship")
    except TrainError as err:
        key, _, message = str(err).removeprefix("ship: ").partition(": ")
        raise r.fail(f"ship.{key}", message) from None
    return dict(value) if isinstance(value, Mapping) else value
