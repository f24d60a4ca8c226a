"""``mixnas supernet train CONFIG``: train a weight-sharing supernet into a run folder;
``mixnas supernet differentiable CONFIG``: differentiable latency-aware search over its space.

The config (YAML or JSON; every field but ``space`` has a default)::

    name: sn-digits          # run folder: <runs_dir>/<name> (default: the config file's stem)
    space: my_space.yaml     # built-in name, file, inline declaration, or {from: ..., ...}
    data: digits             # digits, synthetic, a generated task, an .npz file or an image
                             # folder; default: digits for a classifier space, else the task's
                             # own (dyck for causal_lm, seg_shapes, sr_images)
    data_options: {}         # options of evaluators.data.load_dataset
    data_seed: 0             # seeds the split
    strict: true             # refuse ops without a weight-sharing rule
    runs_dir: runs
    supernet: {recipe: spos, steps: 300, batch_size: 64, lr: 0.002, checkpoint_every: 50,
               seed: 0, device: auto, amp: off}

The run folder gets ``supernet.pt`` (the checkpoint: weights, optimizer, step, the space
declaration and the data settings, which the ``supernet`` evaluator reads) and ``supernet.json``
(config and summary). Running the same command again resumes from the checkpoint; a finished run
is left as it is. Search over it with ``evaluators: [{name: supernet, options: {checkpoint:
RUN/supernet.pt}}]`` in a search config.

Many processes (`evaluators.supernet.distributed`): ``--nproc N`` starts N ranks on this machine
with torchrun (`torch.distributed.run`; running this command under ``torchrun`` yourself does the
same), ``--ray-address ADDR --nproc N`` runs them as Ray Train workers on a Ray cluster. Every
rank trains on its rows of the global ``batch_size``; rank 0 writes the run folder, and a run
resumes on any number of ranks. The config is checked here before any process starts.

``supernet differentiable`` reads the same config plus a ``differentiable:`` block
(`evaluators.supernet.differentiable.DifferentiableConfig`; docs/supernet.md, "Differentiable
search")::

    differentiable: {steps: 300, arch_lr: 0.01, arch_every: 1, arch_start: 0.25,
                     tau_max: 5.0, tau_min: 0.2, hard: true,
                     penalty: {metric: latency_ms@host, weight: 1.0, table: host}}

and writes ``differentiable.pt`` (the checkpoint; the same command resumes) and ``arch.json``
(the chosen spec, the probabilities per decision, the expected cost and, for latency, the chosen
spec's measured latency) into the run folder.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mixnas.config import ConfigError

FIELDS = ("name", "space", "data", "data_options", "data_seed", "strict", "runs_dir", "supernet")
DIFFERENTIABLE_FIELDS = (*FIELDS, "differentiable")
CHECKPOINT, SUMMARY = "supernet.pt", "supernet.json"


def read_config(path: Path, allowed: tuple[str, ...] = FIELDS) -> dict[str, Any]:
    """The config as a checked mapping (see the module docstring); ``allowed`` are its fields."""
    from search_space.declare.loader import read_declaration

    data = read_declaration(path)
    source = str(path)
    if not isinstance(data, Mapping):
        raise ConfigError("<root>", "must be a mapping", source=source)
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(
            unknown[0], f"unknown field; allowed: {', '.join(allowed)}", source=source
        )
    if "space" not in data:
        raise ConfigError("space", "is required", source=source)
    config = {
        "name": str(data.get("name", path.stem)),
        "space": data["space"],
        "data": data.get("data"),  # None: the task's default (`_prepared`)
        "data_options": data.get("data_options") or {},
        "data_seed": data.get("data_seed", 0),
        "strict": data.get("strict", True),
        "runs_dir": str(data.get("runs_dir", "runs")),
        "supernet": data.get("supernet") or {},
    }
    if "differentiable" in allowed:
        config["differentiable"] = data.get("differentiable") or {}
    for key, kind in (("data_options", Mapping), ("supernet", Mapping), ("strict", bool)):
        if not isinstance(config[key], kind):
            raise ConfigError(key, f"must be a {kind.__name__}", source=source, value=config[key])
    if isinstance(config["data_seed"], bool) or not isinstance(config["data_seed"], int):
        raise ConfigError(
            "data_seed", "must be an integer", source=source, value=config["data_seed"]
        )
    if config["data"] is not None and not isinstance(config["data"], str):
        raise ConfigError(
            "data", "must be a dataset name or path", source=source, value=config["data"]
        )
    return config


def _prepared(path: Path) -> tuple[dict[str, Any], Any, Any, Any]:
    """The checked config, its recipe, space declaration and space (bad input: `ConfigError`)."""
    from evaluators.supernet.train import RecipeConfig
    from mixnas.job import _declaration, _space

    config = read_config(path)
    source = str(path)
    try:
        recipe = RecipeConfig.from_dict(config["supernet"])
    except ValueError as err:
        raise ConfigError("supernet", str(err), source=source) from None
    declaration = _declaration(config["space"], source)
    space = _space(declaration, source)
    if config["data"] is None:  # digits for a classifier space, else the task's own default
        config["data"] = "digits" if _task_name(space, source) == "classification" else None
    if config["data"] is not None:  # a task's default data is generated and always there
        _check_data(config, space, source)
    return config, recipe, declaration, space


def _task_name(space: Any, source: str) -> str:
    from evaluators.supernet.train import SupernetError, supernet_task

    try:
        return supernet_task(space).name
    except SupernetError as err:
        raise ConfigError("space", str(err), source=source) from None


def _check_data(config: dict[str, Any], space: Any, source: str) -> None:
    """The dataset is on this machine and takes the given options (`mixnas.job`'s check of a
    search config's data): one line naming ``data`` before anything is loaded or written."""
    from mixnas.job import _check_source
    from search_space.errors import MixnasError

    try:
        _check_source(
            config["data"], dict(config["data_options"]), space.decl.input, "data", source
        )
    except ConfigError:
        raise
    except MixnasError as err:
        raise ConfigError("data", str(err), source=source) from None


def _check_device(recipe: Any, nproc: int, ray: bool, source: str) -> bool:
    """A GPU that is not there is a one-line error naming ``supernet.device`` before any work;
    returns whether Ray workers must reserve a GPU each."""
    from evaluators.devices import DeviceError, device_index
    from evaluators.supernet.distributed import Ranks, rank_device

    field = "supernet.device"
    if ray:  # the cluster's GPUs are not this machine's: Ray places a worker on a GPU it reserves
        if device_index(recipe.device) is not None and ":" in recipe.device:
            raise ConfigError(
                field,
                "on Ray every worker sees its own GPU as cuda: use device: cuda",
                source=source,
                value=recipe.device,
            )
        return recipe.device == "cuda"
    try:
        rank_device(recipe.device, Ranks(world=nproc, local_world=nproc))
    except DeviceError as err:
        raise ConfigError(field, str(err), source=source) from None
    return False


def cmd_supernet_train(args: argparse.Namespace) -> int:
    from evaluators.supernet import distributed

    path = Path(args.config)
    source = str(path)
    config, recipe, declaration, space = _prepared(path)
    if args.nproc < 1:
        raise ConfigError("--nproc", "must be an integer >= 1", value=args.nproc)
    ray = args.ray_address is not None
    use_gpu = _check_device(recipe, args.nproc, ray, source)
    runs_dir = Path(args.runs_dir or config["runs_dir"])
    if ray:
        if not distributed.ray_train_available():
            raise ConfigError(
                "--ray-address",
                "Ray Train is not installed here (pip install 'ray[train]'); use --nproc N "
                "for torchrun on this machine",
            )
        run_dir = (runs_dir / config["name"]).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        payload = {"path": str(path.resolve()), "runs_dir": str(runs_dir.resolve())}
        try:
            distributed.run_on_ray(
                args.ray_address, args.nproc, use_gpu, _ray_worker, payload, str(run_dir / "ray")
            )
        except Exception as err:  # Ray wraps a worker's failure; show its last line
            last = (str(err).strip().splitlines() or [type(err).__name__])[-1]
            print(f"mixnas: error: supernet training on Ray failed: {last}", file=sys.stderr)
            return 1
        print(f"supernet checkpoint: {run_dir / CHECKPOINT} ({args.nproc} Ray workers)")
        return 0
    if args.nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        argv = ["-v"] if getattr(args, "verbose", False) else []
        argv += ["supernet", "train", str(path)]
        argv += ["--runs-dir", args.runs_dir] if args.runs_dir else []
        argv += ["--quiet"] if args.quiet else []
        status = distributed.run_torchrun(args.nproc, argv)
        if status != 0:
            print(
                f"mixnas: error: supernet training on {args.nproc} processes failed "
                f"(torchrun exit status {status}; the ranks' messages are above)",
                file=sys.stderr,
            )
        return status
    distributed.init_from_env(recipe.device)  # a rank started by torchrun joins its group
    try:
        summary = train_config(config, recipe, declaration, space, runs_dir, quiet=args.quiet)
    finally:
        distributed.close()
    if summary is not None:
        run_dir = runs_dir / config["name"]
        ranks = f", {summary['ranks']} ranks" if summary["ranks"] > 1 else ""
        print(f"supernet checkpoint: {run_dir / CHECKPOINT} ({summary['steps']} steps{ranks})")
    return 0


def _ray_worker(payload: dict[str, Any]) -> None:
    """One Ray Train worker: Ray has joined it to the process group; it trains as a rank."""
    config, recipe, declaration, space = _prepared(Path(payload["path"]))
    train_config(config, recipe, declaration, space, Path(payload["runs_dir"]), quiet=True)


def train_config(
    config: dict[str, Any],
    recipe: Any,
    declaration: Any,
    space: Any,
    runs_dir: Path,
    *,
    quiet: bool,
) -> dict[str, Any] | None:
    """Trains (or resumes) the config's supernet into ``runs_dir/<name>`` as this process's rank;
    rank 0 writes the summary and returns the training summary, other ranks return None."""
    from evaluators.supernet import Supernet, distributed
    from evaluators.supernet.train import supernet_task, train_supernet
    from mixnas.manifest import versions, write_json_atomic
    from mixnas.progress import Ticker

    rank = distributed.current().rank
    # a bar on a terminal, a line every 30 s in a log (`mixnas.progress.Ticker`); rank 0 only
    bar = Ticker(recipe.steps, f"supernet {config['name']}", "step", quiet=quiet or rank != 0)
    bar.note(f"supernet {config['name']}: loading {config['data']} and building the supernet")
    task = supernet_task(space)
    data_settings = {
        "name": config["data"],
        "options": dict(config["data_options"]),
        "seed": config["data_seed"],
        "task": task.name,  # the supernet evaluator reports this task's metrics
    }
    data = task.dataset(
        config["data"],
        space.decl.input,
        seed=config["data_seed"],
        # what the heads decide (a super-resolution scale); one head's, as all serve one task
        options=task.data_options(space.sample(0), config["data_options"]),
    )
    run_dir = runs_dir / config["name"]
    run_dir.mkdir(parents=True, exist_ok=True)
    supernet = Supernet(space, seed=recipe.seed, strict=config["strict"])

    def progress(step: int, total: int, loss: float) -> None:
        bar.set(step, loss=f"{loss:.3f}")

    try:
        summary = train_supernet(
            supernet,
            data,
            recipe,
            checkpoint=run_dir / CHECKPOINT,
            extra={"space": declaration, "data": data_settings},
            progress=progress,
        )
    finally:
        bar.close()
    if rank != 0:
        return None
    write_json_atomic(
        run_dir / SUMMARY,
        {
            "config": {**config, "supernet": vars(recipe)},
            "space_declaration": declaration,
            "weights": sum(p.numel() for p in supernet.parameters()),
            "steps": summary["steps"],
            "train_seconds": summary["seconds"],
            "final_loss": summary["history"][-1] if summary["history"] else None,
            "device": summary["device"],
            "ranks": summary["ranks"],
            "versions": versions(),
        },
    )
    return summary


def cmd_supernet_differentiable(args: argparse.Namespace) -> int:
    """Checks the config (one line, exit 2 on bad input), then runs or resumes the search."""
    from evaluators.devices import DeviceError, resolve_device
    from evaluators.supernet.differentiable import (
        DifferentiableConfig,
        DifferentiableError,
        search,
    )
    from evaluators.supernet.train import SupernetError
    from mixnas.job import _declaration, _space
    from mixnas.progress import Ticker

    path = Path(args.config)
    source = str(path)
    config = read_config(path, DIFFERENTIABLE_FIELDS)
    try:
        cfg = DifferentiableConfig.from_dict(config["differentiable"], supernet=config["supernet"])
    except DifferentiableError as err:
        raise ConfigError(err.field, err.message, source=source, value=err.value) from None
    except SupernetError as err:  # the supernet block's message names its field
        raise ConfigError("supernet", str(err), source=source) from None
    try:
        resolve_device(cfg.supernet.device)
    except DeviceError as err:
        raise ConfigError("supernet.device", str(err), source=source) from None
    table = cfg.penalty.table
    if cfg.penalty.metric.startswith("latency") and table != "host" and not Path(table).is_dir():
        raise ConfigError(
            "differentiable.penalty.table",
            "must be 'host' or an existing directory of latency tables",
            source=source,
            value=table,
        )
    declaration = _declaration(config["space"], source)
    space = _space(declaration, source)
    task = _task_name(space, source)
    if task != "classification":
        raise ConfigError(
            "space",
            f"the differentiable search trains classifiers; this space's heads learn {task} "
            "(allowed: a space with a classifier head; `mixnas supernet train` takes any task)",
            source=source,
        )
    config["data"] = config["data"] or "digits"
    _check_data(config, space, source)
    run_dir = Path(args.runs_dir or config["runs_dir"]) / config["name"]
    data = {
        "name": config["data"] or "synthetic",
        **config["data_options"],
        "seed": config["data_seed"],
    }
    bar = Ticker(cfg.steps, f"differentiable {config['name']}", "step", quiet=args.quiet)
    bar.note(f"differentiable {config['name']}: pricing the space's ops ({cfg.penalty.metric})")

    def progress(step: int, total: int, numbers: Any) -> None:
        shown = {"loss": f"{numbers['weight_loss']:.3f}"}
        if "expected_cost" in numbers:
            shown["cost"] = f"{numbers['expected_cost']:.4g}"
        bar.set(step, **shown)

    try:
        result = search(
            space,
            data,
            cfg,
            run_dir,
            extra={
                "space": declaration,
                "data": {
                    "name": config["data"],
                    "options": dict(config["data_options"]),
                    "seed": config["data_seed"],
                },
            },
            progress=progress,
        )
    finally:
        bar.close()
    measured = result.measured["latency_ms"] if result.measured else None
    tail = f", measured {measured:.3f} ms" if measured is not None else ""
    print(
        f"arch: {run_dir / 'arch.json'} (spec {result.spec.id[:12]}, {result.metric} "
        f"{result.spec_cost:.4g}, expected {result.expected_cost:.4g}{tail}, "
        f"top1 {result.top1:.1f}%)"
    )
    return 0


def add_to(sub: Any) -> None:
    parser = sub.add_parser("supernet", help="weight-sharing supernets").add_subparsers(
        dest="supernet_command", required=True
    )
    train = parser.add_parser("train", help="train a supernet into a run folder (resumable)")
    train.add_argument("config", help="supernet config (.yaml/.json)")
    train.add_argument("--runs-dir", default=None, help="overrides the config's runs_dir")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="data-parallel ranks: processes started by torchrun here, or Ray workers",
    )
    train.add_argument(
        "--ray-address",
        default=None,
        help="train on this Ray cluster with Ray Train ('local': a Ray started here)",
    )
    train.set_defaults(func=cmd_supernet_train)
    diff = parser.add_parser(
        "differentiable",
        help="differentiable (Gumbel-softmax) cost-aware search over the space (resumable)",
    )
    diff.add_argument("config", help="supernet config with a differentiable: block")
    diff.add_argument("--runs-dir", default=None, help="overrides the config's runs_dir")
    diff.add_argument("--quiet", action="store_true", help="no progress bar")
    diff.set_defaults(func=cmd_supernet_differentiable)
