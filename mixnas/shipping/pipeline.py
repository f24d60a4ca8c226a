"""From a search to shipped models in one command: a config's ``ship:`` block.

Who calls what, when: ``mixnas search`` (`mixnas.commands.search`) calls `check_ship` before the
first trial, so that a bad block (a metric no evaluator reports, data that is not there, a GPU
that is missing) is one line and exit 2 before any work; after the search has finished and its
report and export are written, it calls `ship_front`, which

1. chooses the members (`choose`): the run's front, less the members that break
   ``ship.constraint``, ranked by ``ship.by`` (default: the first objective), the best ``top``;
2. trains each with `evaluators.fulltrain.train_spec` into ``RUN/trained/trial-<id>/``, the folder,
   spec and provenance ``mixnas train RUN --pick ID`` uses (`mixnas.commands.train.trial_target`);
3. ships each with `mixnas.shipping.ship`, as ``mixnas ship`` does, into that folder's
   ``export/``; the command then rewrites the report, whose "Shipped models" section reads them.

Resuming (``mixnas search --resume RUN``) runs the same steps: a member whose ship.json is newer
than its training record is left as it is, an unfinished training continues from its last
epoch (`train_spec` resumes), a finished one is shipped. One member failing (its training or its
export) is one line in its `Outcome`; the others go on, and what was finished stays on disk.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixnas.config import SHIP_RECIPE_DEFAULTS, ConfigError, SearchConfig, ShipConfig
from mixnas.shipping.trained import RECORD
from search_space.status import StringEnum

log = logging.getLogger(__name__)
EXPORT, SHIP_JSON = "export", "ship.json"  # as `mixnas.shipping` (imported late: torch, onnx)


class ShipStatus(StringEnum):
    """What became of one chosen front member (not a trial status: the trial finished ok)."""

    SHIPPED = "shipped"
    ALREADY = "already shipped"
    FAILED = "failed"


SHIPPED, ALREADY, FAILED = ShipStatus.SHIPPED, ShipStatus.ALREADY, ShipStatus.FAILED


@dataclass(frozen=True)
class Outcome:
    """What became of one chosen front member.

    Attributes:
        trial_id: the run's trial.
        folder: its trained folder, ``RUN/trained/trial-<id>/``.
        status: ``shipped``, ``already shipped`` (an earlier session did it) or ``failed``.
        result: ship.json's content (None when failed before it was written).
        error: for ``failed``: the stage (``training`` or ``shipping``) and the one-line reason.
    """

    trial_id: int
    folder: Path
    status: str
    result: Mapping[str, Any] | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status != FAILED and not (self.result or {}).get("problems")


def training_data(config: SearchConfig) -> dict[str, Any] | None:
    """The data block the members train on: ``ship.data``; else nothing (``{}``) when the
    block's recipe names its own data; else the data of the search's first training evaluator
    (``train``, or one built on it such as ``ptq``), so the shipped models learn the task the
    search ranked them on; None when there is none of these (the block must name its data)."""
    ship = config.ship or ShipConfig()
    if ship.data is not None:
        return {"name": ship.data} if isinstance(ship.data, str) else dict(ship.data)
    recipe_data = ship.recipe.get("data")
    if isinstance(recipe_data, str) or (isinstance(recipe_data, Mapping) and "name" in recipe_data):
        return {}
    evaluator = _training_evaluator(config)
    if evaluator is None:
        return None
    from evaluators.data import dataset_source

    name: Any = evaluator.data
    options: dict[str, Any] = {}
    if isinstance(name, Mapping):
        name, options = dataset_source(name)
    options = {**options, **dict(evaluator.options.get("data_options") or {})}
    block: dict[str, Any] = {"name": str(name) if name is not None else "synthetic"}
    if options:
        block["options"] = options
    if "data_seed" in evaluator.options:
        block["data_seed"] = evaluator.options["data_seed"]
    return block


def _training_evaluator(config: SearchConfig) -> Any:
    """The config's first evaluator that trains candidates, or None."""
    from evaluators.base import EVALUATORS
    from evaluators.training import ShortTraining

    for evaluator in config.evaluators:
        try:
            cls = EVALUATORS.get(evaluator.name)
        except LookupError:  # RegistryError
            continue  # a plug-in given as module:Class is no training evaluator of ours
        if isinstance(cls, type) and issubclass(cls, ShortTraining):
            return evaluator
    return None


def training_recipe(ship: ShipConfig) -> Any:
    """The block's `TrainRecipe`: its fields over `SHIP_RECIPE_DEFAULTS` over the defaults."""
    from evaluators.fulltrain import recipe_from_dict

    return recipe_from_dict({**SHIP_RECIPE_DEFAULTS, **ship.recipe}, "ship.recipe")


def check_ship(config: SearchConfig, job: Any) -> None:
    """What `mixnas.config` cannot check alone, against the prepared job: the metrics of
    ``by`` and ``constraint`` are reported by an evaluator, the data exists and fits the space's
    input, the training device is here. Each problem is a one-line `ConfigError`."""
    ship = config.ship
    if ship is None:
        return
    source = config.source

    def fail(field: str, message: str, value: Any = ...) -> ConfigError:
        return ConfigError(field, message, source=source, value=value)

    reported = tuple(job.metrics)
    names = [("ship.by", ship.by.rsplit(":", 1)[0] if ship.by else None)] + [
        (f"ship.constraint.{m}", m) for m in ship.constraint
    ]
    for field, metric in names:
        if metric is not None and metric not in reported:
            raise fail(
                field,
                f"no configured evaluator reports this metric; reported: {', '.join(reported)}",
                metric,
            )
    evaluator = _training_evaluator(config)
    task = evaluator.options.get("task", "classification") if evaluator is not None else None
    if task not in (None, "classification"):
        raise fail(
            "ship",
            f"the search's {evaluator.name} evaluator learns {task}, and mixnas ship checks "
            "classifiers only (test top-1, int8 accuracy); allowed: a ship block in a "
            "classification search (train the members with mixnas train, which takes any task)",
        )
    data = training_data(config)
    if data is None:
        raise fail(
            "ship.data",
            "the search has no training evaluator whose data the members could train on; name "
            "it (ship.data: digits, a generated task, an .npz file or an image folder)",
        )
    from evaluators.fulltrain.recipe import data_from_dict
    from mixnas.job import _check_source

    recipe = training_recipe(ship)
    block = data_from_dict(data, "ship.data", base=recipe.data) if data else recipe.data
    field = "ship.data" if data else "ship.recipe.data"
    input_spec = getattr(getattr(job.space, "decl", None), "input", None)
    _check_source(block.name, dict(block.options), input_spec, field, source)
    from evaluators.devices import DeviceError, resolve_device

    try:
        resolve_device(ship.device)
    except DeviceError as err:
        raise fail("ship.device", str(err), ship.device) from None


def choose(run: Any, ship: ShipConfig) -> tuple[list[Any], str]:
    """The front members to train, best first, and how they were chosen in words.

    Members that break ``ship.constraint`` (or do not report its metric) are left out; the rest
    are ranked by ``ship.by`` (`mixnas.export.ranking`'s grammar), ties to the earlier trial."""
    from mixnas.export import ExportError, ranking
    from mixnas.front import ranked
    from mixnas.shipping.trained import ShipError

    try:
        metric, direction = ranking(run, ship.by)
    except ExportError as err:  # e.g. no trial reports the metric: every one was screened out
        raise ShipError(str(err).replace("--by:", "ship.by:", 1)) from None
    t = run.trials
    on_front = run.on_front
    order = ranked(t.status, t.metrics, ship.constraint, metric, direction)
    members = [p for p in order if on_front[p]]
    chosen = run.records_of(members[: ship.top])
    bounds = "; ".join(
        f"{m} {' and '.join(f'{k} {v:g}' for k, v in b.items())}"
        for m, b in ship.constraint.items()
    )
    front = int(on_front.sum())
    how = f"the best {ship.top} of the front's {front} member(s) by {metric} ({direction})"
    if bounds:
        how += f" meeting {bounds} ({len(members)} do)"
    return chosen, how


def ship_front(
    config: SearchConfig,
    *,
    progress: bool = False,
    say: Callable[[str], None] = lambda line: None,
) -> list[Outcome]:
    """Trains and ships the chosen front members of ``config``'s run (see the module
    docstring); ``say`` gets one line as each member is done. A KeyboardInterrupt stops it;
    what finished stays, and a resume continues."""
    from mixnas.report.data import RunData

    ship = config.ship or ShipConfig()
    run = RunData.load(config.run_dir)
    chosen, how = choose(run, ship)
    ids = ", ".join(str(r.trial_id) for r in chosen) or "none"
    say(f"  then-train: {how}: trial(s) {ids}")
    recipe = training_recipe(ship)
    data = training_data(config) or {}
    outcomes = []
    for record in chosen:
        outcome = _one(run, record, ship, recipe, data, progress)
        outcomes.append(outcome)
        say(outcome_line(outcome))
    return outcomes


def _one(
    run: Any,
    record: Any,
    ship: ShipConfig,
    recipe: Any,
    data: Mapping[str, Any],
    progress: bool,
) -> Outcome:
    """Trains (or continues training) and ships one member; a failure is its `Outcome`."""
    from evaluators.fulltrain import train_spec
    from mixnas.commands.train import trial_target
    from mixnas.shipping import ship as ship_folder

    spec, folder, provenance = trial_target(run, record)
    done = _shipped(folder, spec.id)
    if done is not None:
        return Outcome(record.trial_id, folder, ALREADY, done)
    try:
        train_spec(
            spec,
            folder,
            recipe,
            data,
            device=ship.device,
            resume=True,
            progress=progress,
            provenance=provenance,
        )
    except Exception as err:  # one member's training must not stop the others
        log.debug("training trial %s failed", record.trial_id, exc_info=True)
        return Outcome(record.trial_id, folder, FAILED, error=f"training: {_one_line(err)}")
    try:
        result = ship_folder(
            folder,
            torchscript=ship.torchscript,
            onnx=ship.onnx,
            int8=ship.int8,
            tolerance=ship.tolerance,
        )
    except Exception as err:
        log.debug("shipping trial %s failed", record.trial_id, exc_info=True)
        return Outcome(record.trial_id, folder, FAILED, error=f"shipping: {_one_line(err)}")
    return Outcome(record.trial_id, folder, SHIPPED, result)


def _shipped(folder: Path, spec_id: str) -> dict[str, Any] | None:
    """The ship.json of an earlier session when it describes this spec's finished training
    (newer than train_record.json: a folder trained again since is shipped again)."""
    import json

    path, record = folder / EXPORT / SHIP_JSON, folder / RECORD
    if not (path.is_file() and record.is_file()):
        return None
    if path.stat().st_mtime < record.stat().st_mtime:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("spec_id") == spec_id else None


def outcome_line(outcome: Outcome) -> str:
    """One line per member: trial, test top-1, measured vs searched latency, and the verdict."""
    head = f"  trial {outcome.trial_id}"
    if outcome.status == FAILED or outcome.result is None:
        return f"{head}: FAILED in {outcome.error}; see {outcome.folder}"
    result = outcome.result
    top1 = result.get("test_top1")
    top1_text = f"{top1:.2f}%" if isinstance(top1, int | float) else "n/a"
    comparison = result.get("comparison") or {}
    latency = result.get("latency") or {}
    torch_ms = (latency.get("torch") or {}).get("ms")
    ort_ms = ((latency.get("onnxruntime") or {}).get(comparison.get("onnxruntime_run") or "cpu")
              or {}).get("ms")  # fmt: skip
    measured = ", ".join(
        f"{name} {_ms(value)}"
        for name, value in (("torch", torch_ms), ("ONNX Runtime", ort_ms))
        if isinstance(value, int | float)
    )
    if "searched_ms" in comparison:
        search = result.get("search") or {}
        flag = "FLAGGED" if comparison.get("flagged") else "within"
        latency_text = (
            f"{measured or 'not measured'} vs searched {_ms(comparison['searched_ms'])} "
            f"({search.get('metric', '?')}, {search.get('kind', '?')}): {flag}"
        )
    else:
        latency_text = f"{measured or 'not measured'}; not compared: {comparison.get('reason')}"
    problems = result.get("problems") or []
    tail = f"; PROBLEMS: {' | '.join(problems)}" if problems else ""
    where = outcome.folder / EXPORT
    status = " (already shipped)" if outcome.status == ALREADY else ""
    return f"{head}{status}: test top-1 {top1_text}; {latency_text}{tail}; {where}"


def _ms(value: float) -> str:
    return f"{value:.3g} ms" if math.isfinite(value) else "-"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if text else type(err).__name__


__all__ = [
    "Outcome",
    "check_ship",
    "choose",
    "outcome_line",
    "ship_front",
    "training_data",
    "training_recipe",
]
