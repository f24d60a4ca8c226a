"""From a checked config to the objects a run needs: the space, the strategy, the evaluators.

Everything that can be wrong with a config is found here, before any trial runs: an unknown
strategy, evaluator or option, an option or budget entry outside what the evaluator declares
(``option_types``, ``budget_types``), a dataset that is not here (``data: /no/such/dir``, a name
such as ``cifar10`` that nothing provides offline) or whose options its source refuses, an
objective or constraint no evaluator reports, a screening metric that no earlier evaluator
produces. Each raises `ConfigError` (one line; the CLI exits 2).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixnas.config import ConfigError, SearchConfig
from mixnas.pipeline import create_evaluators, produced_metrics, with_cost
from search_space import paths
from search_space.declare.schema import Constraint
from search_space.errors import MixnasError, RegistryError, SpaceError
from search_space.option_types import Opt, OptionError, check_options


@dataclass
class Job:
    """A config made concrete (see the module docstring)."""

    config: SearchConfig
    space: Any  # search_space.SearchSpace
    declaration: Mapping[str, Any]
    metrics: tuple[str, ...]  # every metric the evaluators report
    initial: tuple[Any, ...] = ()  # ArchSpecs proposed before the strategy's own
    cheap: bool = False  # every evaluator is cheap (`evaluators.Evaluator.cheap`)

    @property
    def space_hash(self) -> str:
        text = json.dumps(self.declaration, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def objectives(self) -> list[Any]:
        from strategies import Objective

        return [Objective(o.metric, o.direction) for o in self.config.objectives]

    def constraints(self) -> list[Constraint]:
        return [
            Constraint(metric, bound.get("min"), bound.get("max"))
            for metric, bound in self.config.constraints.items()
        ]

    def strategy(self) -> Any:
        import strategies

        return strategies.create(
            self.config.strategy,
            self.space,
            self.objectives(),
            seed=self.config.seed,
            constraints=self.constraints(),
            initial=self.initial,
            **dict(self.config.strategy_options),
        )


def prepare(config: SearchConfig) -> Job:
    """Checks the config against the registries and builds the space (see module docstring)."""
    source = config.source
    declaration = _declaration(config.space, source)
    space = _with_predictors(_space(declaration, source), source)
    metrics, cheap = _check_evaluators(config, _heads(space))
    for i, o in enumerate(config.objectives):
        _known_metric(o.metric, metrics, f"objectives[{i}].metric", source)
    for metric in config.constraints:
        _known_metric(metric, metrics, f"constraints.{metric}", source)
    _check_devices(config)
    _check_workers(config)
    _check_data(config, getattr(getattr(space, "decl", None), "input", None))
    job = Job(config, space, declaration, metrics, _initial(config, space), cheap)
    _check_strategy(job)
    return job


def _declaration(space: Any, source: str | None) -> dict[str, Any]:
    """The space declaration as plain data: a built-in or file's content, with overrides."""
    from search_space.declare.loader import read_declaration
    from search_space.spaces import builtin_path

    def read(ref: str) -> dict[str, Any]:
        path = Path(ref)
        if not paths.exists(path) and builtin_path(ref) is not None:
            path = builtin_path(ref)  # type: ignore[assignment]
        if not paths.exists(path):
            raise ConfigError(
                "space", "is neither a built-in space nor a file", source=source, value=ref
            )
        data = read_declaration(path)
        if not isinstance(data, dict):
            raise ConfigError("space", "the space file must hold a mapping", source=str(path))
        return data

    if isinstance(space, str):
        return read(space)
    if "from" in space:
        base = read(space["from"])
        overrides = {k: v for k, v in space.items() if k != "from"}
        return {**base, **overrides}
    return dict(space)


def _space(declaration: Mapping[str, Any], source: str | None) -> Any:
    from search_space.declare.loader import space_from_declaration

    try:
        return space_from_declaration(dict(declaration), f"{source or '<config>'} (space)")
    except SpaceError:
        raise
    except MixnasError as err:
        raise ConfigError("space", str(err), source=source) from None


def _with_predictors(space: Any, source: str | None) -> Any:
    """The space itself, or, when it declares bounds it cannot check alone (``latency_ms@host
    <= 20``), the space with latency predictors that enforce them in every draw."""
    if all(c.analytic for c in space.constraints):
        return space
    from predictors.resolve import LatencyResolver

    try:
        return LatencyResolver().constrain(space)
    except SpaceError as err:
        raise ConfigError("space.constraints", str(err), source=source) from None


def _heads(space: Any) -> tuple[str, ...]:
    """The head ops a space's specs can end in (a declared space's; the classifier else)."""
    decl = getattr(space, "decl", None)
    if decl is None:
        return ("classifier",)
    return tuple(dict.fromkeys(head.name for head in decl.heads))


def _check_evaluators(
    config: SearchConfig, heads: tuple[str, ...] = ()
) -> tuple[tuple[str, ...], bool]:
    """The metrics the evaluators report, and whether they are all cheap; each evaluator checks
    the space's ``heads`` (a training task against the heads' output) before the first trial."""
    import evaluators

    known = evaluators.names()
    configs = with_cost(config.evaluators)
    for i, cfg in enumerate(config.evaluators):
        if ":" in cfg.name:
            _check_reference(cfg.name, f"evaluators[{i}].name", config.source)
        elif cfg.name not in known:
            raise ConfigError(
                f"evaluators[{i}].name",
                f"unknown evaluator; known: {', '.join(known)}, or package.module:Class",
                source=config.source,
                value=cfg.name,
            )
    offset = len(configs) - len(config.evaluators)  # 'cost' added in front
    for i, cfg in enumerate(config.evaluators):
        _check_evaluator_options(cfg, f"evaluators[{i}]", config.source)
    instances = []
    for index, cfg in enumerate(configs):
        try:
            instances.extend(create_evaluators([cfg]))
        except (TypeError, ValueError, RegistryError, MixnasError) as err:
            raise ConfigError(
                f"evaluators[{index - offset}]",
                f"{cfg.name} cannot be built: {err}",
                source=config.source,
            ) from None
    produced: list[str] = []
    for index, (cfg, evaluator) in enumerate(zip(configs, instances, strict=True)):
        if cfg.promote is not None and cfg.promote.metric not in produced:
            raise ConfigError(
                f"evaluators[{index - offset}].promote.metric",
                "must be reported by an earlier evaluator; earlier ones report: "
                + ", ".join(produced),
                source=config.source,
                value=cfg.promote.metric,
            )
        produced.extend(produced_metrics(evaluator))
        check = getattr(evaluator, "check_heads", None)  # plug-ins may predate the hook
        try:
            if callable(check):
                check(heads)
        except (ValueError, MixnasError) as err:
            raise ConfigError(
                f"evaluators[{index - offset}]", str(err), source=config.source
            ) from None
    cheap = all(bool(getattr(e, "cheap", False)) for e in instances)
    return tuple(dict.fromkeys(produced)), cheap


def _check_workers(config: SearchConfig) -> None:
    """``backend.workers`` against the machine: a local worker is a process on this machine,
    so more than 4 per core can only be a mistake; Ray workers are spread over
    a cluster and bounded by `mixnas.config.MAX_WORKERS` alone (as is the CLI's --workers)."""
    import os

    from mixnas.config import MAX_WORKERS

    workers = config.backend.workers
    cores = os.cpu_count() or 1
    limit = MAX_WORKERS if config.backend.name == "ray" else min(MAX_WORKERS, 4 * cores)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= limit:
        where = "" if config.backend.name == "ray" else f" (4 per core: this machine has {cores})"
        raise ConfigError(
            "backend.workers",
            f"must be an integer in [0, {limit}]{where}",
            source=config.source,
            value=workers,
        )


def _check_evaluator_options(cfg: Any, field: str, source: str | None) -> None:
    """An evaluator's options against the types and ranges its class declares, if it does."""
    import evaluators
    from mixnas.pipeline import evaluator_class

    cls = evaluator_class(cfg.name) if ":" in cfg.name else evaluators.EVALUATORS.get(cfg.name)
    declared = getattr(cls, "option_types", None)
    if declared is not None:
        try:
            check_options(cfg.options, declared, cfg.name)
        except OptionError as err:
            raise ConfigError(
                f"{field}.options.{err.key}", err.message, source=source, value=err.value
            ) from None
    # the budget entries it reads (``steps``, ``seconds``...); {} declares that it reads none
    budget = getattr(cls, "budget_types", None)
    if budget is not None:
        if cfg.budget and not budget:
            raise ConfigError(
                f"{field}.budget",
                f"{cfg.name} has no budget (it runs to completion); remove this field",
                source=source,
                value=dict(cfg.budget),
            )
        try:
            check_options(cfg.budget, budget, f"{cfg.name}'s budget")
        except OptionError as err:
            raise ConfigError(
                f"{field}.budget.{err.key}",
                err.message.replace("unknown option of", "unknown entry of"),
                source=source,
                value=err.value,
            ) from None


# options of the built-in data sources (`evaluators.data.load_dataset`), checked without loading
_SYNTHETIC_OPTIONS = {
    "size": Opt("int", min=2, max=10_000_000),
    "difficulty": Opt("float", min=1e-9, max=1e9),
    "val_fraction": Opt("float", min=1e-9, max=1 - 1e-9),
}
_FILE_OPTIONS = {
    "val_fraction": Opt("float", min=1e-9, max=1 - 1e-9),
    "normalize": Opt("bool"),
}


def _check_data(config: SearchConfig, input_spec: Any) -> None:
    """Each evaluator's ``data`` (with a training evaluator's ``data_options``) against the
    sources this machine has: a built-in or generated dataset's name and options, or an
    ``.npz`` file or image folder that exists. Nothing is downloaded at run time, so a name no
    source knows (``cifar10``) can only fail every trial; it fails here, in one line."""
    for i, cfg in enumerate(config.evaluators):
        options = cfg.options.get("data_options") if "data_options" in cfg.options else None
        if cfg.data is None and not options:
            continue  # the evaluator's default source (synthetic, a supernet's stored data)
        field = f"evaluators[{i}].data"
        try:
            if cfg.options.get("task") == "causal_lm":  # token sequences, next-token targets
                from evaluators.tasks.language import check_lm_source

                check_lm_source(cfg.data, dict(options or {}), input_spec)
                continue
            _check_source(cfg.data, dict(options or {}), input_spec, field, config.source)
        except ConfigError:
            raise
        except MixnasError as err:  # a source's own check (`evaluators.data.DatasetError`)
            raise ConfigError(field, str(err), source=config.source) from None


def _check_source(
    data: Any, options: dict[str, Any], input_spec: Any, field: str, source: str | None
) -> None:
    from evaluators import data as datasets

    if isinstance(data, Mapping):
        data, given = datasets.dataset_source(data)
        options = {**given, **options}
    if data is None:
        data = "synthetic"
    if isinstance(data, Path):  # the Python API may pass a path
        data = str(data)
    if not isinstance(data, str) or not data:
        raise ConfigError(
            field,
            "must be a dataset name, a path, or {name: NAME, <option>: ...}",
            source=source,
            value=data,
        )
    generated = tuple(getattr(datasets, "GENERATED", ()))
    builtin = tuple(getattr(datasets, "BUILTIN", ("digits", "synthetic")))
    if data in generated:
        if input_spec is not None:
            from evaluators.tasks import resolve

            resolve(data, input_spec, options)  # names, knobs and sizes, nothing generated
        return
    path = Path(data)
    if data not in builtin and not paths.exists(path):
        raise ConfigError(
            field,
            "no such dataset or file (nothing is downloaded: data must be here); allowed: "
            f"{', '.join((*builtin, *generated))}, a path to an .npz file (arrays x, y) or to "
            "a folder of images per class (root/<class>/<image>)",
            source=source,
            value=data,
        )
    declared = _SYNTHETIC_OPTIONS if data == "synthetic" else _FILE_OPTIONS
    try:
        check_options(options, declared, f"dataset {data}")
    except OptionError as err:
        raise ConfigError(
            f"{field}.{err.key}", err.message, source=source, value=err.value
        ) from None
    kind = getattr(input_spec, "kind", None)
    if data in builtin:
        if data == "digits" and kind not in (None, "image"):
            raise ConfigError(
                field,
                f"digits holds images but the space's input is {kind}; use synthetic or an "
                ".npz file of sequences",
                source=source,
                value=data,
            )
        return
    if paths.is_dir(path):
        if kind not in (None, "image"):
            raise ConfigError(
                field,
                f"a folder of images, but the space's input is {kind}",
                source=source,
                value=data,
            )
        try:
            has_class = any(p.is_dir() for p in path.iterdir())
        except OSError as err:
            raise ConfigError(
                field, f"cannot be read: {err.strerror or err}", source=source, value=data
            ) from None
        if not has_class:
            raise ConfigError(
                field,
                "has no class sub-folders (expected root/<class>/<image>)",
                source=source,
                value=data,
            )
        return
    if path.suffix != ".npz":
        raise ConfigError(
            field,
            "must be an .npz file (arrays x, y) or a folder of images per class",
            source=source,
            value=data,
        )
    _check_npz(path, field, source)


def _check_npz(path: Path, field: str, source: str | None) -> None:
    """The archive opens and holds arrays ``x`` and ``y`` (its index only; nothing loaded)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
    except Exception as err:  # a zip error of a damaged or foreign file: one line
        raise ConfigError(
            field,
            f"not a readable .npz file ({type(err).__name__})",
            source=source,
            value=str(path),
        ) from None
    missing = [key for key in ("x", "y") if key not in names]
    if missing:
        raise ConfigError(
            field,
            f"the .npz file has no array {missing[0]!r}; it needs arrays x and y (found: "
            f"{', '.join(names) or 'none'})",
            source=source,
            value=str(path),
        )


def _check_devices(config: SearchConfig) -> None:
    """Each evaluator's ``device`` and ``backend.gpus_per_trial`` against the GPUs the processes
    that evaluate will see (see `evaluators.devices`): asking for a GPU that is not there is a
    one-line error here rather than a failure in every trial.

    What a trial sees: a local worker is pinned to one GPU (``cuda:0`` to it); the driver itself
    (``workers: 0``) sees all of them; a Ray trial sees only the GPUs it reserves
    (``gpus_per_trial``; Ray hides every GPU from a trial that reserves none).
    """
    from evaluators.devices import DeviceError, check_device, device_index, gpu_count

    backend, source = config.backend, config.source
    wanted = backend.gpus_per_trial
    if wanted > 0:
        if backend.name != "ray":
            raise ConfigError(
                "backend.gpus_per_trial",
                "only the ray backend reserves GPUs per trial; the local backend pins one GPU "
                "to each worker by itself (remove this field)",
                source=source,
                value=wanted,
            )
        if wanted > 1 and not float(wanted).is_integer():
            raise ConfigError(
                "backend.gpus_per_trial",
                "must be a fraction up to 1 (trials share a GPU) or a whole number of GPUs",
                source=source,
                value=wanted,
            )
        # with an address the trials run on the cluster's nodes, whose GPUs this machine cannot
        # see: Ray schedules each trial on a node that has the share it reserves
        if backend.address is None and gpu_count() < math.ceil(wanted):
            have = gpu_count()
            found = f"this machine has {have} CUDA device(s)" if have else "no CUDA device here"
            raise ConfigError(
                "backend.gpus_per_trial",
                f"{found}; use 0 (the default) or a cluster address with GPUs",
                source=source,
                value=wanted,
            )
    for i, cfg in enumerate(config.evaluators):
        field = f"evaluators[{i}].device"
        index = device_index(cfg.device)
        if index is None:
            continue  # cpu, or auto (the CPU where the trial sees no GPU)
        if backend.name == "ray":
            seen = math.ceil(wanted)
            if seen == 0:
                raise ConfigError(
                    field,
                    "Ray shows a trial only the GPUs it reserves: set backend.gpus_per_trial",
                    source=source,
                    value=cfg.device,
                )
        else:
            try:
                check_device(cfg.device)
            except DeviceError as err:
                raise ConfigError(field, str(err), source=source) from None
            seen = gpu_count() if backend.workers == 0 else 1
        if index >= seen:
            why = "backend.gpus_per_trial" if backend.name == "ray" else "one pinned to each worker"
            raise ConfigError(
                field,
                f"a trial sees {seen} GPU(s) ({why}), numbered from cuda:0: use device: cuda",
                source=source,
                value=cfg.device,
            )


def _initial(config: SearchConfig, space: Any) -> tuple[Any, ...]:
    """The seed specs: zoo models (given the space's input) or spec files, each of which must
    be a point of the space."""
    out = []
    for i, ref in enumerate(config.initial):
        field = f"initial[{i}]"
        if paths.is_file(ref):
            from search_space.declare.loader import load_spec

            try:
                spec = load_spec(ref)
            except SpaceError as err:
                raise ConfigError(field, str(err), source=config.source) from None
        else:
            from search_space import zoo

            if ref not in zoo.names():
                raise ConfigError(
                    field, "is neither a spec file nor a zoo model", source=config.source, value=ref
                )
            found = zoo.seeds(space, [ref], adapt_input=True)
            if not found:
                raise ConfigError(
                    field,
                    "this zoo model (at the space's input) is not a point of the space; declare "
                    "the space around it (around: {zoo: NAME}) or widen the space",
                    source=config.source,
                    value=ref,
                )
            spec = found[0]
        if not space.contains(spec, check_constraints=False):
            raise ConfigError(
                field, "this spec is not a point of the space", source=config.source, value=ref
            )
        out.append(spec)
    return tuple(out)


def _check_reference(reference: str, field: str, source: str | None) -> None:
    from mixnas.pipeline import evaluator_class

    try:
        evaluator_class(reference)
    except (ImportError, ValueError) as err:
        raise ConfigError(
            field, f"cannot import the evaluator class: {err}", source=source, value=reference
        ) from None


def _known_metric(metric: str, metrics: tuple[str, ...], field: str, source: str | None) -> None:
    if metric not in metrics:
        raise ConfigError(
            field,
            f"no configured evaluator reports this metric; reported: {', '.join(metrics)}",
            source=source,
            value=metric,
        )


def _check_strategy(job: Job) -> None:
    import strategies

    config = job.config
    known = strategies.names()
    if config.strategy not in known:
        raise ConfigError(
            "strategy.name",
            f"unknown strategy; known: {', '.join(known)}",
            source=config.source,
            value=config.strategy,
        )
    cls = strategies.STRATEGIES.get(config.strategy)
    if cls.option_types is not None:  # declared types and ranges (`search_space.option_types`)
        try:
            check_options(config.strategy_options, cls.option_types, config.strategy)
        except OptionError as err:
            raise ConfigError(
                f"strategy.options.{err.key}", err.message, source=config.source, value=err.value
            ) from None
    accepted = _keyword_names(cls)
    for key in config.strategy_options:
        if accepted is not None and key not in accepted:
            raise ConfigError(
                f"strategy.options.{key}",
                f"unknown option of {config.strategy}; allowed: {', '.join(sorted(accepted))}",
                source=config.source,
            )
    try:
        job.strategy()
    except (TypeError, ValueError, MixnasError) as err:
        raise ConfigError(
            "strategy.options", f"{config.strategy}: {err}", source=config.source
        ) from None


def _keyword_names(cls: type) -> set[str] | None:
    """The keyword options a strategy's constructor accepts (None when it takes **kwargs)."""
    params = inspect.signature(cls).parameters.values()  # the constructor's, less self
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    fixed = {"self", "space", "objectives", "seed", "constraints", "initial"}
    return {p.name for p in params if p.name not in fixed}
