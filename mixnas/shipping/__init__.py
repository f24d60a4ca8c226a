"""``mixnas ship TRAINED_DIR|RUN_DIR``: a trained model exported with its weights and verified.

Who calls what: the command (`mixnas.commands.ship`) calls `ship` for each trained folder
(`trained_folders`: the folder itself, or every ``<run>/trained/*/`` of a run folder). `ship`

1. reads and checks the trained folder (`mixnas.shipping.trained`): spec, record, best weights;
2. writes ``export/model.pt`` (TorchScript) and ``export/model.onnx`` of the *trained* float model,
   each loaded back and checked against PyTorch on a batch (`mixnas.export.write_model_files`),
   and copies ``spec.json`` and ``train_record.json`` beside them;
3. writes int8 files where the spec's policy asks for <= 8-bit weights (`mixnas.shipping.int8`)
   and, when the training's test split can be loaded again, measures every file's test top-1;
4. times the model with torch and ONNX Runtime at the search's batch, threads and precision and
   compares them with the search's latency for the trial (`mixnas.shipping.verify`);
5. writes all of it to ``export/ship.json`` (atomically), which the run's report reads.

ship.json (paths relative to the export folder, sizes in bytes, latencies in ms):
``spec_id``, ``trained_dir``, ``source {run, trial}``, ``params``, ``test_top1``,
``best_val_top1``, ``files {torchscript, onnx: {path, bytes, max_abs_diff, checked_batches,
dynamic_batch}, spec, train_record}``, ``int8 {status, reason|dtype, policy, torchscript, onnx,
notes}``, ``accuracy {split, samples, fp32_torch, fp32_onnx, int8_torch, int8_onnx} | {reason}``,
``latency {settings, torch, onnxruntime {cpu, cpu_int8, cuda}}``, ``search`` (the trial's
`SearchLatency`, or null), ``comparison {searched_ms, torch_ms, onnxruntime_ms, gap_torch,
gap_onnxruntime, threshold, basis, flagged, why} | {reason}``, ``flagged``, ``problems``,
``versions``, ``shipped``.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from mixnas.export import ExportError, write_model_files
from mixnas.manifest import versions, write_json_atomic
from mixnas.shipping.int8 import INT8_ONNX, INT8_TS, int8_request, write_int8
from mixnas.shipping.trained import (
    RECORD,
    SPEC,
    ShipError,
    TrainedFolder,
    read_trained,
    trained_folders,
)
from mixnas.shipping.verify import (
    DEFAULT_TOLERANCE,
    TORCH_DEVICES,
    SearchLatency,
    compare,
    search_latency,
    ship_timing,
    time_onnx,
    time_torch,
)

EXPORT, SHIP_JSON = "export", "ship.json"
FORMAT = 1
log = logging.getLogger(__name__)


def ship(
    trained_dir: str | Path,
    *,
    torchscript: bool = True,
    onnx: bool = True,
    int8: str = "auto",
    batch: int | None = None,
    threads: int | None = None,
    device: str = "auto",
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """Ships one trained folder (see the module docstring); returns ship.json's content.

    Args:
        torchscript, onnx: which float files to write (at least one).
        int8: ``auto`` (int8 files where the policy asks for <= 8 bits), ``on`` (also for a
            float policy) or ``off``.
        batch, threads: timing settings; None: those of the search's latency metric (1 if none).
        device: torch device to time on (``auto``: the search's latency device, CPU when this
            machine lacks it; ``cpu``, ``cuda``, ``cuda:N``).
        tolerance: the allowed relative gap for a latency measured by the search (and for a
            predictor that states no error).
    """
    if not (torchscript or onnx):
        raise ShipError("nothing to ship: ask for --torchscript and/or --onnx")
    if not tolerance > 0:
        raise ShipError(f"--tolerance: must be a fraction > 0, e.g. 0.25 (got {tolerance})")
    _torch_device(device, None)  # a GPU that is not there: one line before anything is written
    folder = read_trained(trained_dir)
    out = folder.root / EXPORT
    out.mkdir(exist_ok=True)
    for name in (SHIP_JSON, "model.pt", "model.onnx", INT8_TS, INT8_ONNX):
        # files of an earlier ship that this one may not write (--no-int8, --onnx only) would
        # sit beside a ship.json that does not describe them
        (out / name).unlink(missing_ok=True)
    model = folder.float_model()
    problems: list[str] = []
    files: dict[str, Any] = {}
    for fmt, wanted in (("torchscript", torchscript), ("onnx", onnx)):
        if not wanted:
            continue
        try:  # one format failing does not stop the other
            (written,) = write_model_files(
                model, folder.spec, out / "model", torchscript=fmt == "torchscript",
                onnx=fmt == "onnx",
            )  # fmt: skip
            files[fmt] = written.to_dict(relative_to=out)
        except ExportError as err:
            files[fmt] = {"error": str(err)}
            problems.append(str(err))
    for name in (SPEC, RECORD):
        shutil.copy2(folder.root / name, out / name)
        files[name.split(".")[0]] = name
    onnx_path = out / files["onnx"]["path"] if "path" in files.get("onnx", {}) else None
    dtype, why = int8_request(folder.spec, int8)
    int8_entry: dict[str, Any]
    if dtype is None:
        int8_entry = {"status": "not written", "reason": why}
    else:
        try:
            int8_entry = {"asked": why, **write_int8(model, folder.spec, out, dtype, onnx_path,
                                                    torchscript=torchscript)}  # fmt: skip
        except ExportError as err:
            int8_entry = {"asked": why, "status": "failed", "reason": str(err)}
            problems.append(str(err))
    result: dict[str, Any] = {
        "format": FORMAT,
        "spec_id": folder.spec.id,
        "trained_dir": str(folder.root),
        "params": sum(int(t.numel()) for t in model.parameters()),
        "test_top1": _number(folder.record.get("test_top1")),
        "best_val_top1": _number(folder.record.get("best_val_top1")),
        "files": files,
        "int8": int8_entry,
        "accuracy": _accuracy(folder, model, out, files, int8_entry),
    }
    run_dir, trial = folder.source()
    result["source"] = {"run": None if run_dir is None else str(run_dir), "trial": trial}
    search, reason = (None, "the trained folder names no search trial (train_record.json source)")
    if run_dir is not None and trial is not None:
        search, reason = search_latency(run_dir, trial, folder.spec, tolerance=tolerance)
    result["search"] = search.to_dict() if search is not None else {"reason": reason}
    result["latency"], result["comparison"] = _verify(
        folder, model, out, files, int8_entry, search, reason, batch, threads, device
    )
    result["flagged"] = bool(result["comparison"].get("flagged", False))
    result["problems"] = problems
    result["versions"] = versions()
    result["shipped"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json_atomic(out / SHIP_JSON, result)
    return result


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _accuracy(
    folder: TrainedFolder,
    model: Any,
    out: Path,
    files: dict[str, Any],
    int8_entry: dict[str, Any],
) -> dict[str, Any]:
    """Test-split top-1 of every shipped file, when the training's test split loads again."""
    from mixnas.shipping.int8 import accuracy

    split, reason = _test_split(folder)
    if split is None:
        return {"reason": reason}
    x, y = split
    onnx_files = {}
    if "path" in files.get("onnx", {}):
        onnx_files["fp32_onnx"] = out / files["onnx"]["path"]
    if "path" in int8_entry.get("onnx", {}):
        onnx_files["int8_onnx"] = out / INT8_ONNX
    int8_dtype = int8_entry.get("dtype") if "path" in int8_entry.get("torchscript", {}) else None
    return {
        "split": "test",
        "samples": len(y),
        **accuracy(model, folder.spec, x, y, int8_dtype=int8_dtype, onnx_files=onnx_files),
    }


def _test_split(folder: TrainedFolder) -> tuple[tuple[Any, Any] | None, str]:
    """The trained folder's test split, loaded as ``mixnas train`` loaded it (its record's
    ``data``); None and the reason when it is not at hand."""
    data = folder.record.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None, "train_record.json names no data source"
    from evaluators.fulltrain.recipe import TrainError, data_from_dict
    from evaluators.fulltrain.splits import load_splits

    keys = ("name", "options", "data_seed", "test_fraction")
    try:
        recipe = data_from_dict({k: data[k] for k in keys if k in data}, str(folder.root / RECORD))
        splits = load_splits(folder.spec.input, recipe)
    except (TrainError, OSError) as err:
        return None, f"the test split is not at hand here: {err}"
    if splits.x_test is None or splits.y_test is None:
        return None, f"{data['name']} was trained without a test split"
    return (splits.x_test, splits.y_test), ""


def _verify(
    folder: TrainedFolder,
    model: Any,
    out: Path,
    files: dict[str, Any],
    int8_entry: dict[str, Any],
    search: SearchLatency | None,
    reason: str,
    batch: int | None,
    threads: int | None,
    device: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Times the model with torch and every ONNX file with ONNX Runtime, and compares."""
    import onnxruntime

    options = ship_timing(search, batch=batch, threads=threads)
    torch_device, note = _torch_device(device, search)
    latency: dict[str, Any] = {"settings": options.to_dict(), "torch": {}, "onnxruntime": {}}
    latency["torch"] = time_torch(model, folder.spec, options, torch_device)
    providers = onnxruntime.get_available_providers()
    int8_onnx = out / INT8_ONNX if "path" in int8_entry.get("onnx", {}) else None
    onnx_path = out / files["onnx"]["path"] if "path" in files.get("onnx", {}) else None
    cpu = "CPUExecutionProvider"
    runs = [("cpu", onnx_path, cpu), ("cpu_int8", int8_onnx, cpu)]
    if "CUDAExecutionProvider" in providers:
        runs.append(("cuda", onnx_path, "CUDAExecutionProvider"))
    for key, path, provider in runs:
        if path is None:
            continue
        try:
            latency["onnxruntime"][key] = time_onnx(path, folder.spec, options, provider)
        except Exception as err:  # a file with a fixed batch, a provider that fails to start
            latency["onnxruntime"][key] = {"error": str(err).strip().splitlines()[0]}
    if search is None:
        return latency, {"reason": reason, "flagged": False}
    if (options.batch_size, options.threads) != (search.batch_size, search.threads):
        note = note or (
            f"timed at batch {options.batch_size} with {options.threads} thread(s), the search's "
            f"{search.metric} at batch {search.batch_size} with {search.threads}"
        )
    if note:
        return latency, {"reason": note, "flagged": False}
    # the ORT run comparable with the search's number: same device, same precision
    asks = int8_request(folder.spec, "auto")[0] is not None
    int8_here = latency["torch"]["device"] == "cpu" and (
        options.dtype == "int8" or (options.dtype == "auto" and asks)
    )
    key = "cuda" if search.device == "cuda" else ("cpu_int8" if int8_here and int8_onnx else "cpu")
    onnx_ms = latency["onnxruntime"].get(key, {}).get("ms")
    comparison = compare(search, latency["torch"]["ms"], onnx_ms)
    comparison["onnxruntime_run"] = key if onnx_ms is not None else None
    return latency, comparison


def _torch_device(device: str, search: SearchLatency | None) -> tuple[str, str]:
    """The torch device to time on, and why the search's number cannot be compared with it
    (empty when it can)."""
    from evaluators.devices import DeviceError, resolve_device

    if device != "auto":
        try:
            chosen = resolve_device(device)
        except DeviceError as err:
            raise ShipError(f"--device: {err}") from None
    else:
        wanted = TORCH_DEVICES.get(search.device, "cpu") if search is not None else "cpu"
        try:
            chosen = resolve_device(wanted)
        except DeviceError:
            chosen = "cpu"
    if search is None:
        return chosen, ""
    if search.device not in TORCH_DEVICES:
        return chosen, (
            f"{search.metric} is a prediction for another device ({search.device}); this "
            "machine's measurements are not comparable with it"
        )
    if TORCH_DEVICES[search.device] != chosen.split(":")[0]:
        return chosen, f"{search.metric} is for {search.device}, timed here on {chosen}"
    return chosen, ""


__all__ = ["EXPORT", "SHIP_JSON", "ShipError", "read_trained", "ship", "trained_folders"]
