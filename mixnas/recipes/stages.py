"""Stage kinds: how a recipe's stage runs, and which outputs later stages may cite.

Every kind runs the same code path as its command (the config is written into the recipe's
folder and handed to ``mixnas.cli.main``), so a stage checks its config exactly as the command
does and a user can rerun any stage by hand from the file it left. Kinds and their outputs:

- ``supernet``: ``mixnas supernet train``; outputs ``run_dir``, ``checkpoint``.
- ``differentiable``: ``mixnas supernet differentiable`` (a supernet config plus its
  ``differentiable`` block); outputs ``run_dir``, ``arch`` (arch.json), ``spec`` (the chosen
  spec's file), ``spec_id``, ``expected_cost``, ``spec_cost``, ``top1`` (inherited) and
  ``measured_<key>`` for the chosen spec's measurements.
- ``search``: ``mixnas search``; outputs ``run_dir``, ``report``, ``pareto``, ``front_size``,
  ``trials``, and for the best finished trial by ``args.best_by`` (``METRIC:max|min``; default the
  first objective; or ``{rank_vote: [METRIC:max|min, ...]}``, the best mean rank, as As-ViT
  and TE-NAS combine their proxies): ``best_trial`` (``RUN_DIR:TRIAL_ID``, what ``mixnas
  scale`` takes), ``best_spec`` (its exported spec JSON) and ``best_<metric>`` for each of its
  metrics.
- ``scale``: ``mixnas scale BASE --budget ... --out``; ``args``: ``base``, ``budget``, ``rule``
  and ``proxy``; outputs ``dir``, ``members``, ``family`` (the report's path).
- ``train``: ``mixnas train TARGET --recipe <config> --out``; ``args``: ``target`` (a spec file
  or a run folder), ``pick`` and ``data``; ``config`` is the training recipe (docs/training.md);
  outputs ``dir``, ``spec``, ``best`` (the best weights), ``test_top1``, ``best_val_top1``,
  ``epochs_run``.
- ``python``: ``args.function`` (``module:function``) called as ``function(stage_dir, config,
  quiet=...)`` returning its outputs (a mapping of JSON values): the least code a method needs
  that no command has.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mixnas.recipes.recipe import RecipeError, Stage

SET_BY_RECIPE = ("name", "runs_dir")


@dataclass(frozen=True)
class StageContext:
    """Where a stage runs: the recipe's folder (each stage gets ``<dir>/<stage name>``)."""

    recipe_dir: Path
    about: Mapping[str, Any]
    quiet: bool = True

    def stage_dir(self, stage: Stage) -> Path:
        return self.recipe_dir / stage.name


class StageKind(Protocol):
    def check(self, stage: Stage, source: str) -> None: ...

    def run(self, stage: Stage, ctx: StageContext) -> dict[str, Any]: ...


class StageFailed(RecipeError):
    """A stage's command exited with an error (it has printed its own one-line reason)."""


def _cli(argv: list[str], stage: Stage) -> None:
    from mixnas.cli import main

    status = main(argv)
    if status != 0:
        raise StageFailed(
            "<recipe>",
            f"stage {stage.name}",
            f"`mixnas {' '.join(argv)}` exited {status}; its reason is printed above",
        )


def _no_recipe_fields(stage: Stage, source: str) -> None:
    for key in SET_BY_RECIPE:
        if key in stage.config:
            raise RecipeError(
                source,
                f"stages.{stage.name}.config.{key}",
                "is set by the recipe (the stage's folder is <recipe run>/<stage name>)",
            )


def _known_args(stage: Stage, allowed: tuple[str, ...], source: str) -> None:
    unknown = sorted(set(stage.args) - set(allowed))
    if unknown:
        raise RecipeError(
            source,
            f"stages.{stage.name}.args.{unknown[0]}",
            f"unknown; allowed: {', '.join(allowed) or 'none'}",
        )


def _write_config(stage: Stage, ctx: StageContext) -> Path:
    config = {**stage.config, "name": stage.name, "runs_dir": str(ctx.recipe_dir)}
    path = ctx.recipe_dir / f"{stage.name}.json"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path


class SupernetStage:
    def check(self, stage: Stage, source: str) -> None:
        _no_recipe_fields(stage, source)
        if "space" not in stage.config:
            raise RecipeError(source, f"stages.{stage.name}.config.space", "is required")

    def run(self, stage: Stage, ctx: StageContext) -> dict[str, Any]:
        path = _write_config(stage, ctx)
        _cli(["supernet", "train", str(path), *(["--quiet"] if ctx.quiet else [])], stage)
        run_dir = ctx.stage_dir(stage)
        return {"run_dir": str(run_dir), "checkpoint": str(run_dir / "supernet.pt")}


class DifferentiableStage:
    def check(self, stage: Stage, source: str) -> None:
        _no_recipe_fields(stage, source)
        _known_args(stage, (), source)
        for key in ("space", "differentiable"):
            if key not in stage.config:
                raise RecipeError(source, f"stages.{stage.name}.config.{key}", "is required")

    def run(self, stage: Stage, ctx: StageContext) -> dict[str, Any]:
        from mixnas.manifest import write_json_atomic

        path = _write_config(stage, ctx)
        quiet = ["--quiet"] if ctx.quiet else []
        _cli(["supernet", "differentiable", str(path), *quiet], stage)
        run_dir = ctx.stage_dir(stage)
        arch = json.loads((run_dir / "arch.json").read_text())
        spec_path = run_dir / "spec.json"
        write_json_atomic(spec_path, arch["spec"])
        outputs = {
            "run_dir": str(run_dir),
            "arch": str(run_dir / "arch.json"),
            "spec": str(spec_path),
            "spec_id": arch["spec_id"],
            "expected_cost": arch["expected_cost"],
            "spec_cost": arch["spec_cost"],
            "top1": arch["top1"],
        }
        measured = arch.get("measured") or {}
        for key, value in measured.items():
            if isinstance(value, int | float):
                outputs[f"measured_{key}"] = value
        return outputs


class SearchStage:
    def check(self, stage: Stage, source: str) -> None:
        _no_recipe_fields(stage, source)
        if "objectives" not in stage.config:
            raise RecipeError(source, f"stages.{stage.name}.config.objectives", "is required")
        best_by = stage.args.get("best_by")
        if best_by is not None and not _best_by_ok(best_by):
            raise RecipeError(
                source,
                f"stages.{stage.name}.args.best_by",
                f"{best_by!r}; allowed: METRIC[:max|:min] or {{rank_vote: [METRIC:max|min, ...]}}",
            )
        _known_args(stage, ("best_by",), source)

    def run(self, stage: Stage, ctx: StageContext) -> dict[str, Any]:
        run_dir = ctx.stage_dir(stage)
        path = _write_config(stage, ctx)
        quiet = ["--quiet"] if ctx.quiet else []
        if (run_dir / "config.json").is_file():  # a stage stopped before: continue it
            _cli(["search", "--resume", str(run_dir), *quiet], stage)
        else:
            _cli(["search", str(path), *quiet], stage)
        write_run_recipe(run_dir, ctx.about, stage.name)
        return search_outputs(run_dir, stage.args.get("best_by"))


def write_run_recipe(run_dir: Path, about: Mapping[str, Any], stage: str) -> None:
    """Names the recipe in the run folder (the report shows it) and rewrites the report."""
    from mixnas.integrity import reading_records
    from mixnas.manifest import write_json_atomic
    from mixnas.report import write_report

    write_json_atomic(run_dir / "recipe.json", {**about, "stage": stage})
    with reading_records(run_dir):
        write_report(run_dir)


def _best_by_ok(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    if isinstance(value, Mapping) and set(value) == {"rank_vote"}:
        listed = value["rank_vote"]
        return (
            isinstance(listed, list)
            and len(listed) >= 1
            and all(isinstance(m, str) and m.endswith((":max", ":min")) for m in listed)
        )
    return False


def _rank_vote_best(run: Any, metrics: list[str]) -> list[int]:
    """As-ViT's and TE-NAS's pick: the eligible trial with the best mean rank over ``metrics``
    (``METRIC:max|min``); eligible = finished ok, every metric reported, constraints met."""
    from evaluators.proxies.aggregate import rank_vote
    from mixnas.export import top_positions
    from strategies.base import MAXIMIZE, MINIMIZE

    name, _, side = metrics[0].rpartition(":")
    positions = top_positions(run, None, name, MAXIMIZE if side == "max" else MINIMIZE)
    columns = {}
    for item in metrics:
        metric, _, side = item.rpartition(":")
        values = run.trials.metric(metric)[positions]
        columns[item] = values if side == "max" else -values
    keep = [i for i in range(len(positions)) if all(math.isfinite(c[i]) for c in columns.values())]
    if not keep:
        return []
    votes = rank_vote({k: v[keep] for k, v in columns.items()})
    return [positions[keep[int(votes.argmax())]]]


def search_outputs(run_dir: Path, best_by: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """What later stages may cite of a finished search (see the module docstring)."""
    from mixnas.export import exported_record, ranking, top_positions
    from mixnas.manifest import write_json_atomic
    from mixnas.report.data import RunData

    run = RunData.load(run_dir)
    out: dict[str, Any] = {
        "run_dir": str(run_dir),
        "report": str(run_dir / "report.html"),
        "pareto": str(run_dir / "pareto.csv"),
        "front_size": len(run.front()),
        "trials": len(run.trials.status),
    }
    if isinstance(best_by, Mapping):
        best = run.records_of(_rank_vote_best(run, list(best_by["rank_vote"])))
    else:
        best = run.records_of(top_positions(run, 1, *ranking(run, best_by)))
    if best:
        record = best[0]
        path = run_dir / "best.json"
        write_json_atomic(path, exported_record(run, record))
        out["best_trial"] = f"{run_dir}:{record.trial_id}"
        out["best_spec"] = str(path)
        out["best_id"] = record.trial_id
        for name, value in record.metrics.items():
            key = "best_" + "".join(c if c.isalnum() else "_" for c in name)
            out[key] = value
    return out


class ScaleStage:
    ARGS = ("base", "budget", "rule", "proxy")

    def check(self, stage: Stage, source: str) -> None:
        _known_args(stage, self.ARGS, source)
        for key in ("base", "budget"):
            if not isinstance(stage.args.get(key), str):
                raise RecipeError(source, f"stages.{stage.name}.args.{key}", "is required")
        if stage.config:
            raise RecipeError(source, f"stages.{stage.name}.config", "a scale stage takes args")

    def run(self, stage: Stage, ctx: StageContext) -> dict[str, Any]:
        out = ctx.stage_dir(stage)
        argv = ["scale", str(stage.args["base"]), "--budget", str(stage.args["budget"])]
        if "rule" in stage.args:
            argv += ["--rule", str(stage.args["rule"])]
        if "proxy" in stage.args:
            argv += ["--proxy", str(stage.args["proxy"])]
        _cli([*argv, "--out", str(out)], stage)
        members = sorted(str(p) for p in out.glob("*.json") if p.name != "family.json")
        return {"dir": str(out), "members": members, "family": str(out / "report.html")}


class TrainStage:
    ARGS = ("target", "pick", "data")

    def check(self, stage: Stage, source: str) -> None:
        _known_args(stage, self.ARGS, source)
        if not isinstance(stage.args.get("target"), str):
            raise RecipeError(
                source, f"stages.{stage.name}.args.target", "is required: a spec file or run folder"
            )

    def run(self, stage: Stage, ctx: StageContext) -> dict[str, Any]:
        out = ctx.stage_dir(stage)
        recipe = ctx.recipe_dir / f"{stage.name}.json"
        recipe.write_text(json.dumps(dict(stage.config), indent=2, sort_keys=True) + "\n")
        argv = ["train", str(stage.args["target"]), "--recipe", str(recipe), "--out", str(out)]
        if "pick" in stage.args:
            argv += ["--pick", str(stage.args["pick"])]
        if "data" in stage.args:
            argv += ["--data", str(stage.args["data"])]
        _cli([*argv, *(["--quiet"] if ctx.quiet else [])], stage)
        record = json.loads((out / "train_record.json").read_text())
        outputs = {
            "dir": str(out),
            "spec": str(out / "spec.json"),
            "best": str(out / "checkpoints" / "best.pt"),
        }
        for key in ("test_top1", "best_val_top1", "epochs_run"):
            if key in record:
                outputs[key] = record[key]
        return outputs


class PythonStage:
    def check(self, stage: Stage, source: str) -> None:
        target = stage.args.get("function")
        if not isinstance(target, str) or ":" not in target:
            raise RecipeError(
                source, f"stages.{stage.name}.args.function", "module:function is required"
            )
        _known_args(stage, ("function",), source)

    def run(self, stage: Stage, ctx: StageContext) -> dict[str, Any]:
        function = load_function(stage.args["function"], stage.name)
        out_dir = ctx.stage_dir(stage)
        out_dir.mkdir(parents=True, exist_ok=True)
        outputs = function(out_dir, dict(stage.config), quiet=ctx.quiet)
        if not isinstance(outputs, Mapping):
            raise RecipeError("<recipe>", f"stage {stage.name}", "its function returned no mapping")
        return dict(outputs)


def load_function(target: str, stage: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        function = getattr(module, attr)
    except (ImportError, AttributeError) as err:
        raise RecipeError("<recipe>", f"stage {stage}", f"cannot load {target}: {err}") from None
    if not callable(function):
        raise RecipeError("<recipe>", f"stage {stage}", f"{target} is not callable")
    return function  # type: ignore[no-any-return]


KINDS: dict[str, StageKind] = {
    "supernet": SupernetStage(),
    "differentiable": DifferentiableStage(),
    "search": SearchStage(),
    "scale": ScaleStage(),
    "train": TrainStage(),
    "python": PythonStage(),
}
