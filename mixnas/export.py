"""``mixnas export RUN_DIR --pick front|best|topK|ID``: the specs a run found, ready to ship.

Each pick becomes ``<out>/trial-<id>-<spec id>.json`` holding the spec, its id, the trial's
metrics, the analytic costs, and where it came from (run, trial, space hash, seed, versions). On
request, the built model is also written as TorchScript (``.pt``) and/or ONNX (``.onnx``), and each
file is loaded back and run on a seeded input: its output must equal PyTorch's within tolerance, or
the export fails. `write_models` writes a spec's freshly initialised model; `write_model_files`
writes a model the caller built (``mixnas ship``: one with trained weights, `mixnas.shipping`) and
returns each file's check (`Written`: path, max abs diff, checked batch sizes).

An ONNX file has a dynamic batch axis: it is checked at batch sizes 1, 2 and
5 (`ONNX_BATCHES`); a model neither ONNX exporter can make batch-dynamic is written with the batch
fixed at 2, and a warning says so. `mixnas build FILE.json` rebuilds an exported spec into the same
model.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixnas.manifest import versions, write_json_atomic
from mixnas.records import TrialRecord
from mixnas.report.data import RunData
from search_space.errors import MixnasError
from strategies.base import MAXIMIZE, MINIMIZE, Direction

ATOL, RTOL = 1e-4, 1e-3
ONNX_BATCHES = (1, 2, 5)  # an ONNX file is checked at each: its batch axis is dynamic
PICKS = "front, best, topK (e.g. top5, ranked by the first objective or --by) or trial ids like 3,7"
_TOP = re.compile(r"top(\d+)")
log = logging.getLogger(__name__)


class ExportError(MixnasError, ValueError):
    """A pick that does not exist, or an exported model that does not match PyTorch."""


def ranking(run: RunData, by: str | None = None) -> tuple[str, Direction]:
    """The metric and direction ``by`` names: ``METRIC`` (an objective's direction; any other
    metric needs one), ``METRIC:max`` or ``METRIC:min``; None: the first objective. A metric no
    trial reports, or a missing direction, raises `ExportError` naming what is allowed."""
    if by is None:
        first = run.objectives[0]
        return first.metric, first.direction
    metric, _, suffix = by.rpartition(":") if by.endswith((":max", ":min")) else (by, "", "")
    known = sorted(run.trials.metrics)
    if metric not in run.trials.metrics:
        raise ExportError(
            f"--by: no trial of {run.run_dir} reports the metric {metric!r}; known: "
            f"{', '.join(known) or '(none: no trial finished)'}"
        )
    directions = {o.metric: o.direction for o in run.objectives}
    if suffix:
        return metric, MAXIMIZE if suffix == "max" else MINIMIZE
    if metric in directions:
        return metric, directions[metric]
    raise ExportError(
        f"--by: {metric!r} is not an objective of this run, so its direction is unknown: say "
        f"{metric}:max or {metric}:min (objectives: "
        f"{', '.join(f'{m} ({d})' for m, d in directions.items())})"
    )


def top_positions(run: RunData, k: int | None, metric: str, direction: Direction) -> list[int]:
    """Positions (in ``run.trials``) of the best ``k`` trials (all when None) on ``metric``:
    trials that finished ok, report the metric and meet the run's constraints, best first,
    ties broken by the earlier trial."""
    from mixnas.front import ranked

    t = run.trials
    return ranked(t.status, t.metrics, run.config.constraints, metric, direction, k)


def picked(run: RunData, pick: str, by: str | None = None) -> list[TrialRecord]:
    """The records a pick names: ``front``, ``best``, ``topK`` (the best K by ``by``, default
    the first objective; see `ranking`), or trial ids (``3`` or ``3,7``)."""
    if by is not None and not _TOP.fullmatch(pick):
        raise ExportError(
            f"--by ranks a topK pick (e.g. --pick top5); it means nothing for {pick!r}"
        )
    if pick == "front":
        return run.front()
    if pick == "best":
        record = run.best()
        return [record] if record is not None else []
    top = _TOP.fullmatch(pick)
    if top:
        k = int(top.group(1))
        if k < 1:
            raise ExportError(f"--pick: {pick!r} picks nothing; allowed: {PICKS}")
        return run.records_of(top_positions(run, k, *ranking(run, by)))
    out = []
    for part in pick.split(","):
        try:
            trial_id = int(part)
        except ValueError:
            raise ExportError(f"--pick: expected {PICKS} (got {pick!r})") from None
        record = run.by_id(trial_id)
        if record is None:
            raise ExportError(f"--pick: {run.run_dir} has no finished trial {trial_id}")
        out.append(record)
    return out


def export_run(
    run_dir: str | Path,
    *,
    pick: str = "front",
    out: str | Path | None = None,
    torchscript: bool = False,
    onnx: bool = False,
    by: str | None = None,
) -> list[Path]:
    """Writes the picked specs (and model files on request); returns the spec JSON paths."""
    run = RunData.load(Path(run_dir))
    records = picked(run, pick, by)  # a bad pick is refused before the folder is made
    folder = Path(out) if out is not None else run.run_dir / "export"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    problems = []
    for record in records:
        stem = f"trial-{record.trial_id}-{record.spec_id}"
        path = folder / f"{stem}.json"
        write_json_atomic(path, exported_record(run, record))
        written.append(path)
        for fmt, wanted in (("torchscript", torchscript), ("onnx", onnx)):
            if not wanted:
                continue
            try:  # one format failing for one model does not stop the others
                write_models(
                    record, folder / stem, torchscript=fmt == "torchscript", onnx=fmt == "onnx"
                )
            except ExportError as err:
                problems.append(str(err))
    if problems:
        raise ExportError(
            f"{len(problems)} model file(s) could not be exported (the spec JSON files were): "
            + " | ".join(problems)
        )
    return written


def exported_record(run: RunData, record: TrialRecord) -> dict[str, Any]:
    from search_space import ArchSpec, spec_cost

    spec = ArchSpec.from_dict(dict(record.spec))
    return {
        "id": spec.id,
        "spec": spec.to_dict(),
        "metrics": dict(record.metrics),
        "costs": spec_cost(spec).to_dict(),
        "provenance": {
            "run": str(run.run_dir),
            "run_name": run.config.name,
            "trial_id": record.trial_id,
            "origin": record.origin,
            "seed": run.config.seed,
            "space_hash": run.manifest.get("space_hash"),
            "objectives": [[o.metric, o.direction] for o in run.objectives],
            "versions": versions(),
            "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }


@dataclass(frozen=True)
class Written:
    """One model file written and checked: its path, format (``torchscript`` or ``onnx``), the
    largest absolute difference from PyTorch's output over the checked batches, those batch
    sizes, and whether its batch axis is dynamic."""

    path: Path
    fmt: str
    max_abs_diff: float
    batches: tuple[int, ...]
    dynamic_batch: bool

    def to_dict(self, relative_to: Path | None = None) -> dict[str, Any]:
        path = self.path.relative_to(relative_to) if relative_to is not None else self.path
        return {
            "path": str(path),
            "bytes": self.path.stat().st_size,
            "max_abs_diff": self.max_abs_diff,
            "checked_batches": list(self.batches),
            "dynamic_batch": self.dynamic_batch,
        }


def write_models(
    record: TrialRecord, stem: Path, *, torchscript: bool, onnx: bool, seed: int = 0
) -> list[Path]:
    """Builds the record's model (freshly initialised with ``seed``) and writes the requested
    formats, each checked against PyTorch on a seeded input (raises `ExportError` when an
    output differs). A trained model goes through `write_model_files` instead."""
    from search_space import ArchSpec, build_model

    spec = ArchSpec.from_dict(dict(record.spec))
    model = build_model(spec, seed=seed)
    written = write_model_files(model, spec, stem, torchscript=torchscript, onnx=onnx, seed=seed)
    return [w.path for w in written]


def write_model_files(
    model: Any,
    spec: Any,
    stem: Path,
    *,
    torchscript: bool,
    onnx: bool,
    seed: int = 0,
    batch_size: int = 2,
) -> list[Written]:
    """Writes ``model`` as it is (its own weights: trained ones when it was trained) to
    ``stem.pt`` and/or ``stem.onnx``, each loaded back and checked against the model's PyTorch
    output on a seeded input of ``spec`` (`ExportError` when an output differs). The model is
    put in eval mode, not copied: the caller's weights are what is written."""
    import torch

    from search_space import example_input

    model = model.eval()
    x = example_input(spec, batch_size=batch_size, seed=seed)
    with torch.no_grad():
        expected = model(x)
    written = []
    if torchscript:
        written.append(_torchscript(model, x, expected, stem.with_suffix(".pt")))
    if onnx:
        written.append(
            _onnx(
                model,
                x,
                expected,
                stem.with_suffix(".onnx"),
                lambda size: example_input(spec, batch_size=size, seed=seed + size),
            )
        )
    return written


def _check(name: str, expected: Any, got: Any, path: Path) -> float:
    """The largest absolute difference of ``got`` from ``expected``; raises `ExportError` when
    the shapes differ or a value is outside ``ATOL + RTOL * |expected|``."""
    import numpy as np

    expected = np.asarray(expected)
    got = np.asarray(got)
    if expected.shape != got.shape or not np.allclose(got, expected, atol=ATOL, rtol=RTOL):
        diff = float(np.max(np.abs(got - expected))) if expected.shape == got.shape else "shape"
        raise ExportError(f"{path}: {name} output differs from PyTorch (max abs diff {diff})")
    return float(np.max(np.abs(got - expected))) if got.size else 0.0


def _torchscript(model: Any, x: Any, expected: Any, path: Path) -> Written:
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        # the trace's caveat about Python loops over tensors: the file is checked below
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, x, check_trace=False)
    traced.save(str(path))
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        diff = _check("TorchScript", expected.numpy(), loaded(x).numpy(), path)
    # a trace records the shapes it saw, but its ops are shape-generic for most models: the
    # batch is called dynamic only for ONNX, whose checks run at several sizes
    return Written(path, "torchscript", diff, (int(x.shape[0]),), False)


def _onnx(model: Any, x: Any, expected: Any, path: Path, batch_of: Callable[[int], Any]) -> Written:
    """Exports with a dynamic batch axis (the dynamo exporter, then TorchScript's), checked
    against PyTorch at every size of `ONNX_BATCHES`; a model that neither exports with a dynamic
    batch is written with the batch fixed at ``x``'s, checked at that size, with a warning.
    ``batch_of(size)``: a seeded input of that batch size."""
    import torch

    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ExportError(
            "--onnx needs the onnx, onnxscript and onnxruntime packages: "
            "pip install 'mixnas[export]'"
        ) from None
    names: dict[str, Any] = {"input_names": ["input"], "output_names": ["output"]}
    batch = {"input": {0: "batch"}, "output": {0: "batch"}}
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("dynamo", {"dynamo": True, "dynamic_shapes": ({0: torch.export.Dim("batch")},)}),
        # the dynamo exporter lacks some ops (SDPA on 5-D windows): TorchScript's
        ("torchscript", {"dynamo": False, "dynamic_axes": batch}),
        # TorchScript's can bake the batch into reshapes: then a fixed batch is all there is
        ("fixed", {"dynamo": False}),
    ]
    reasons: list[str] = []  # why each attempt failed, the first one named in the error
    for how, options in attempts:
        try:
            with warnings.catch_warnings(), _native_stdout_silenced():
                warnings.simplefilter("ignore", FutureWarning)  # torch's exporter internals
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                torch.onnx.export(model, (x,), str(path), verbose=False, **names, **options)
        except Exception as err:  # e.g. complex FFTs (global filter): ONNX has no such op
            reasons.append(_first_line(err))
            continue
        batches = (int(x.shape[0]),) if how == "fixed" else ONNX_BATCHES
        try:
            diff = _check_onnx(model, x, expected, path, batches, batch_of)
        except ExportError as err:  # an output that differs from PyTorch's
            reasons.append(str(err))
            continue
        except Exception as err:  # onnxruntime refuses the file (a shape it cannot infer)
            reasons.append(f"onnxruntime cannot run the {how} export: {_first_line(err)}")
            continue
        if how == "fixed":
            log.warning(
                "%s: the batch axis is fixed at %d (no exporter made it dynamic: %s)",
                path,
                int(x.shape[0]),
                reasons[0] if reasons else "",
            )
        return Written(path, "onnx", diff, tuple(batches), how != "fixed")
    raise ExportError(f"{path}: ONNX cannot express this model: {_telling(reasons)}")


def _telling(reasons: Sequence[str]) -> str:
    """The most specific of the attempts' reasons: the one naming an unsupported operator (the
    TorchScript exporter's) rather than the dynamo exporter's generic 'step 3/3' line."""
    for reason in reasons:
        if "not supported" in reason or "operator" in reason:
            return reason
    return reasons[0] if reasons else "no exporter succeeded"


@contextlib.contextmanager
def _native_stdout_silenced() -> Iterator[None]:
    """Drops what native code writes to file descriptor 1 meanwhile: torch's TorchScript exporter
    prints the whole graph there (hundreds of lines) when it fails, and the reason is in the
    exception already."""
    # and torch's ONNX registry logs a warning per torchvision op it skips (torchvision is not
    # a dependency)
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry.level
    registry.setLevel(logging.ERROR)
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no descriptor 1 (an embedded interpreter): nothing to silence
        saved = -1
    try:
        if saved < 0:
            yield
        else:
            with open(os.devnull, "w") as sink:
                os.dup2(sink.fileno(), 1)
                yield
    finally:
        sys.stdout.flush()
        registry.setLevel(level)
        if saved >= 0:
            os.dup2(saved, 1)
            os.close(saved)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _check_onnx(
    model: Any,
    x: Any,
    expected: Any,
    path: Path,
    batches: Sequence[int],
    batch_of: Callable[[int], Any],
) -> float:
    """Runs the ONNX file at each batch size on seeded inputs (``x`` itself at its own size)
    and checks its output against PyTorch's; returns the largest absolute difference."""
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for size in batches:
        if size == int(x.shape[0]):
            inputs, want = x, expected
        else:
            inputs = batch_of(size)
            with torch.no_grad():
                want = model(inputs)
        (got,) = session.run(None, {"input": inputs.numpy()})
        worst = max(worst, _check(f"ONNX (batch {size})", want.numpy(), got, path))
    return worst


def rebuild_check(paths: Sequence[Path]) -> list[str]:
    """Rebuilds each exported spec and returns the problems found (params that differ from the
    recorded ones); empty when every spec rebuilds as recorded."""
    from search_space import ArchSpec, build_model
    from search_space.nn.builder import count_params

    problems = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        model = build_model(ArchSpec.from_dict(data["spec"]))
        built = count_params(model)
        recorded = data["metrics"].get("params")
        if recorded is not None and int(recorded) != built:
            problems.append(f"{path}: rebuilt {built} params, recorded {int(recorded)}")
    return problems
