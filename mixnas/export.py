"""``mixnas export RUN_DIR --pick front|best|ID``: the specs a run found, ready to ship.

Each pick becomes ``<out>/trial-<id>-<spec id>.json`` holding the spec, its id, the trial's
metrics, the analytic costs, and where it came from (run, trial, space hash, seed, versions). On
request, the built model is also written as TorchScript (``.pt``) and/or ONNX (``.onnx``), and each
file is loaded back and run on a seeded input: its output must equal PyTorch's within tolerance, or
the export fails. `mixnas build FILE.json` rebuilds an exported spec into the same model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mixnas.manifest import versions, write_json_atomic
from mixnas.records import TrialRecord
from mixnas.report.data import RunData
from search_space.errors import MixnasError

ATOL, RTOL = 1e-4, 1e-3


class ExportError(MixnasError, ValueError):
    """A pick that does not exist, or an exported model that does not match PyTorch."""


def picked(run: RunData, pick: str) -> list[TrialRecord]:
    """The records a pick names: ``front``, ``best``, or trial ids (``3`` or ``3,7``)."""
    if pick == "front":
        return run.front()
    if pick == "best":
        record = run.best()
        return [record] if record is not None else []
    out = []
    for part in pick.split(","):
        try:
            trial_id = int(part)
        except ValueError:
            raise ExportError(
                f"--pick: expected front, best or trial ids like 3 or 3,7 (got {pick!r})"
            ) from None
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
) -> list[Path]:
    """Writes the picked specs (and model files on request); returns the spec JSON paths."""
    run = RunData.load(Path(run_dir))
    folder = Path(out) if out is not None else run.run_dir / "export"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    problems = []
    for record in picked(run, pick):
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


def write_models(
    record: TrialRecord, stem: Path, *, torchscript: bool, onnx: bool, seed: int = 0
) -> list[Path]:
    """Builds the record's model and writes the requested formats, each checked against
    PyTorch on a seeded input (raises `ExportError` when an output differs)."""
    import torch

    from search_space import ArchSpec, build_model, example_input

    spec = ArchSpec.from_dict(dict(record.spec))
    model = build_model(spec, seed=seed).eval()
    x = example_input(spec, batch_size=2, seed=seed)
    with torch.no_grad():
        expected = model(x)
    paths = []
    if torchscript:
        paths.append(_torchscript(model, x, expected, stem.with_suffix(".pt")))
    if onnx:
        paths.append(_onnx(model, x, expected, stem.with_suffix(".onnx")))
    return paths


def _check(name: str, expected: Any, got: Any, path: Path) -> None:
    import numpy as np

    expected = np.asarray(expected)
    got = np.asarray(got)
    if expected.shape != got.shape or not np.allclose(got, expected, atol=ATOL, rtol=RTOL):
        diff = float(np.max(np.abs(got - expected))) if expected.shape == got.shape else "shape"
        raise ExportError(f"{path}: {name} output differs from PyTorch (max abs diff {diff})")


def _torchscript(model: Any, x: Any, expected: Any, path: Path) -> Path:
    import torch

    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
    traced.save(str(path))
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        _check("TorchScript", expected.numpy(), loaded(x).numpy(), path)
    return path


def _onnx(model: Any, x: Any, expected: Any, path: Path) -> Path:
    import torch

    try:
        import onnxruntime
    except ImportError:
        raise ExportError(
            "--onnx needs the onnx, onnxscript and onnxruntime packages: "
            "pip install 'mixnas[export]'"
        ) from None
    names = {"input_names": ["input"], "output_names": ["output"]}
    try:
        torch.onnx.export(model, (x,), str(path), dynamo=True, **names)
    except Exception:  # the dynamo exporter lacks some ops (SDPA on 5-D windows): TorchScript's
        try:
            torch.onnx.export(model, (x,), str(path), dynamo=False, **names)
        except Exception as err:  # e.g. complex FFTs (global filter): ONNX has no such op
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ExportError(f"{path}: ONNX cannot express this model: {first}") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x.numpy()})
    _check("ONNX", expected.numpy(), got, path)
    return path


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
