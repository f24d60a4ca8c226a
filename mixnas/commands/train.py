"""``mixnas train SPEC.json`` / ``mixnas train RUN_DIR --pick ID``: train one spec to completion.

SPEC.json is a spec file or an exported record (``mixnas export``); RUN_DIR with ``--pick`` takes a
trial of a search run (an id, ``best`` or ``top1``: a pick as ``mixnas export`` reads it, of
exactly one trial). The recipe (``--recipe recipe.yaml``; every field has a default, see
docs/training.md) says how; ``--data`` overrides its data source (a built-in name, an ``.npz`` file
or an image folder). Output: ``--out``, by default ``RUN_DIR/trained/trial-<id>/`` or
``runs/train-<spec id>/``, with the layout of `evaluators.fulltrain.checkpoint`.

Running the same command again after a kill resumes from the last epoch's checkpoint; a finished
folder is left as it is (``--restart`` trains it afresh). ``--nproc N`` runs N data-parallel ranks
on this machine with torchrun (`evaluators.supernet.distributed`); everything is checked here
before a rank starts. Bad input is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from search_space.errors import MixnasError


def cmd_train(args: argparse.Namespace) -> int:
    from evaluators.fulltrain import TrainRecipe, load_recipe
    from evaluators.fulltrain.augment import check_mixing
    from evaluators.supernet import distributed

    spec, out, provenance = _target(args)
    recipe = load_recipe(args.recipe) if args.recipe else TrainRecipe()
    check_mixing(recipe, spec.input, args.recipe or "recipe")
    if args.nproc < 1:
        raise _error("--nproc", f"must be an integer >= 1 (got {args.nproc})")
    _check_device(args.device, args.nproc)
    supernet = Path(args.from_supernet) if args.from_supernet else None
    if supernet is not None and not supernet.is_file():
        raise _error("--from-supernet", f"{supernet}: no such supernet checkpoint")
    data = {"name": args.data} if args.data else {}
    if args.nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        _check_data(spec, recipe, data)
        return _launch(args, out)
    distributed.init_from_env(args.device)  # a rank started by torchrun joins its group
    try:
        result = _train(args, spec, out, recipe, data, supernet, provenance)
    finally:
        distributed.close()
    if distributed.current().rank == 0 and result is not None:
        _summary(result)
    return 0


def _train(
    args: argparse.Namespace,
    spec: Any,
    out: Path,
    recipe: Any,
    data: Mapping[str, Any],
    supernet: Path | None,
    provenance: Mapping[str, Any] | None,
) -> Any:
    from evaluators.fulltrain import TrainError, train_spec
    from evaluators.supernet import distributed

    try:
        result = train_spec(
            spec,
            out,
            recipe,
            data,
            device=args.device,
            resume=not args.restart,
            from_supernet=supernet,
            progress=not args.quiet,
            provenance=provenance,
        )
    except TrainError as err:
        if args.data and str(err).startswith("data.name:"):
            raise TrainError(f"--data: {str(err).removeprefix('data.name: ')}") from None
        raise
    return result if distributed.current().rank == 0 else None


def _target(args: argparse.Namespace) -> tuple[Any, Path, dict[str, Any] | None]:
    """The spec to train, the output folder and where the spec came from (a run's trial)."""
    from search_space.declare.loader import load_spec

    target = Path(args.target)
    if target.is_dir():
        if not args.pick:
            raise _error(
                "--pick", f"{target} is a run folder: say which trial to train (--pick ID)"
            )
        return _picked(target, args.pick, args.out)
    if args.pick:
        raise _error("--pick", f"picks a trial of a run folder, but {target} is not a folder")
    spec = load_spec(target)
    out = Path(args.out) if args.out else Path("runs") / f"train-{spec.id}"
    return spec, out, {"spec_file": str(target)}


def _picked(run_dir: Path, pick: str, out: str | None) -> tuple[Any, Path, dict[str, Any]]:
    from mixnas.export import picked
    from mixnas.report.data import RunData

    run = RunData.load(run_dir)
    records = picked(run, pick)
    if len(records) != 1:
        raise _error(
            "--pick",
            f"{pick!r} picks {len(records)} trials of {run_dir}; train one at a time "
            "(a trial id, best or top1)",
        )
    return trial_target(run, records[0], out)


def trial_target(
    run: Any, record: Any, out: str | Path | None = None
) -> tuple[Any, Path, dict[str, Any]]:
    """What training a run's trial means: its spec, its folder (``out``, by default
    ``RUN/trained/trial-<id>/``) and the provenance ``train_record.json`` keeps, which
    ``mixnas ship`` reads to find the trial's searched latency. ``mixnas train RUN --pick ID``
    and a search config's ``ship:`` block (`mixnas.shipping.pipeline`) both train through it,
    so a model trained either way lands in the same place with the same record.

    Args:
        run: the run (`mixnas.report.data.RunData`).
        record: one of its trials (`mixnas.records.TrialRecord`).
    """
    from search_space import ArchSpec

    run_dir = run.run_dir
    spec = ArchSpec.from_dict(dict(record.spec), source=f"{run_dir} trial {record.trial_id}")
    folder = Path(out) if out else run_dir / "trained" / f"trial-{record.trial_id}"
    provenance = {
        "run": str(run_dir),
        "run_name": run.config.name,
        "trial_id": record.trial_id,
        "metrics": dict(record.metrics),
    }
    return spec, folder, provenance


def _check_device(device: str, nproc: int) -> None:
    """A GPU that is not there (or too few for the ranks) is one line before any work."""
    from evaluators.devices import DeviceError
    from evaluators.supernet.distributed import Ranks, rank_device

    try:
        rank_device(device, Ranks(world=nproc, local_world=nproc))
    except DeviceError as err:
        raise _error("--device", str(err)) from None


def _check_data(spec: Any, recipe: Any, data: Mapping[str, Any]) -> None:
    """The data source exists and takes its options, checked before ranks start (each rank
    would otherwise print the same error)."""
    from evaluators.fulltrain.recipe import data_from_dict
    from mixnas.job import _check_source

    block = data_from_dict(dict(data), "data", base=recipe.data) if data else recipe.data
    field = "--data" if data else "data.name"
    try:
        _check_source(block.name, dict(block.options), spec.input, field, None)
    except MixnasError as err:
        raise _error(field, str(err).removeprefix(f"{field}: ")) from None


def _launch(args: argparse.Namespace, out: Path) -> int:
    """Runs this command as ``args.nproc`` torchrun ranks, all writing to one resolved folder."""
    import sys

    from evaluators.supernet import distributed

    argv = ["-v"] if getattr(args, "verbose", False) else []
    argv += ["train", str(args.target), "--out", str(out.resolve()), "--device", args.device]
    for flag, value in (
        ("--pick", args.pick),
        ("--recipe", args.recipe),
        ("--data", args.data),
        ("--from-supernet", args.from_supernet),
    ):
        if value:
            argv += [flag, str(value)]
    argv += ["--restart"] if args.restart else []
    argv += ["--quiet"] if args.quiet else []
    status = distributed.run_torchrun(args.nproc, argv)
    if status != 0:
        print(
            f"mixnas: error: training on {args.nproc} processes failed (torchrun exit status "
            f"{status}; the ranks' messages are above)",
            file=sys.stderr,
        )
    return status


# how the task's primary metric reads: its name and unit
_PRIMARY_TEXT = {"top1": ("top-1", "%"), "miou": ("mIoU", "%"), "psnr": ("PSNR", " dB")}


def _summary(result: Any) -> None:
    out = result.out_dir
    name, unit = _PRIMARY_TEXT.get(result.primary, (result.primary, ""))
    best_value = result.best_val if result.best_val is not None else result.best_val_top1
    test_value = result.test.get(result.primary) if result.test else result.test_top1
    best = "n/a" if best_value is None else f"{best_value:.2f}{unit}"
    test = "n/a (no test split)" if test_value is None else f"{test_value:.2f}{unit}"
    line = f"best val {name} {best}, test {name} {test}"
    if result.already_done:
        print(f"already trained: {out} (left as it is; --restart trains it afresh)")
    else:
        early = ", stopped early" if result.stopped_early else ""
        print(f"trained {result.epochs_run} epochs in {result.seconds:.1f} s{early}: {line}")
    if result.already_done:
        print(f"  {line}")
    print(f"  weights: {out / 'checkpoints' / 'best.pt'}")
    print(f"  metrics: {out / 'metrics.csv'}")
    print(f"  record:  {out / 'train_record.json'}")


def _error(field: str, message: str) -> MixnasError:
    from evaluators.fulltrain import TrainError

    return TrainError(f"{field}: {message}")


def add_to(sub: Any) -> None:
    train = sub.add_parser(
        "train",
        help="train a spec (or a run's trial) to completion, resumable",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    train.add_argument("target", help="spec JSON (or exported record), or a run folder")
    train.add_argument("--pick", help="with a run folder: the trial to train (id, best, top1)")
    train.add_argument("--data", help="dataset: built-in name, .npz file or image folder")
    train.add_argument("--recipe", help="recipe YAML (every field has a default)")
    train.add_argument("--out", help="output folder (default RUN/trained/trial-ID or runs/...)")
    train.add_argument("--from-supernet", help="start from a supernet checkpoint's weights")
    train.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    train.add_argument("--nproc", type=int, default=1, help="data-parallel ranks (torchrun)")
    train.add_argument(
        "--restart", action="store_true", help="train afresh, replacing the folder's run"
    )
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.set_defaults(func=cmd_train)
