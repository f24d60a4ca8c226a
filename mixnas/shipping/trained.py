"""A trained folder (what ``mixnas train`` writes), read and checked before anything is shipped.

The contract (`evaluators.fulltrain.checkpoint`): ``spec.json`` (the ArchSpec), ``recipe.yaml``,
``metrics.jsonl``/``metrics.csv``, ``checkpoints/best.pt`` (a state dict, read here with
``torch.load(..., weights_only=True)``: a weights file is never unpickled), ``checkpoints/last.pt``
and ``train_record.json``, written last, whose ``source: {run, trial}`` names the search trial the
spec came from. Folders of a run live in ``runs/<run>/trained/trial-<id>/``.

Every problem is a `ShipError` whose one line names the file, what is wrong and what is expected,
so ``mixnas ship`` prints it and exits 2.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_space.errors import MixnasError

SPEC, RECORD, BEST = "spec.json", "train_record.json", Path("checkpoints") / "best.pt"
TRAINED = "trained"  # the run folder's sub-folder of trained folders
_TRIAL_DIR = re.compile(r"trial-(\d+)")
_CONTRACT = "a trained folder holds spec.json, checkpoints/best.pt and train_record.json"


class ShipError(MixnasError, ValueError):
    """A trained folder (or run folder) that cannot be shipped; the message is one line."""


@dataclass(frozen=True)
class TrainedFolder:
    """A checked trained folder: its spec, training record and best weights.

    Attributes:
        root: the folder.
        spec: the `ArchSpec` of ``spec.json``.
        record: ``train_record.json`` as a mapping.
        weights: the state dict of ``checkpoints/best.pt`` (checked to fit ``spec``'s model).
    """

    root: Path
    spec: Any
    record: Mapping[str, Any]
    weights: Mapping[str, Any]

    def float_model(self) -> Any:
        """The spec's float model (no fake quantizers: what is exported and timed) carrying the
        trained weights, in eval mode. A model built with its policy has the same state dict
        keys (`docs/quantization.md`), so weights trained quantization-aware load here too."""
        from search_space import build_model

        model = build_model(self.spec, quantize=False)
        model.load_state_dict(dict(self.weights))
        return model.eval()

    def source(self) -> tuple[Path | None, int | None]:
        """The run folder and trial id the spec came from: ``train_record.json``'s
        ``source: {run, trial | trial_id}`` (or the provenance of the exported spec file it
        names), else the layout ``<run>/trained/trial-<id>/``; (None, None)
        when neither says."""
        source = self.record.get("source")
        if isinstance(source, Mapping) and source.get("spec_file") and not source.get("run"):
            source = _exported_provenance(Path(str(source["spec_file"])))
        if isinstance(source, Mapping) and source.get("run") is not None:
            trial = source.get("trial", source.get("trial_id"))
            return _run_path(str(source["run"]), self.root), _trial_id(trial)
        match = _TRIAL_DIR.fullmatch(self.root.name)
        if match and self.root.parent.name == TRAINED:
            return self.root.parent.parent, int(match.group(1))
        return None, None


def _exported_provenance(path: Path) -> Mapping[str, Any] | None:
    """The ``provenance`` of a spec file `mixnas export` wrote (``{run, trial_id, ...}``), so a
    model trained from an exported spec still knows its trial; None for a plain spec file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    provenance = data.get("provenance") if isinstance(data, dict) else None
    return provenance if isinstance(provenance, Mapping) else None


def _run_path(text: str, root: Path) -> Path:
    """A recorded run path: as written when it exists (absolute, or relative to the working
    directory), else relative to the run that holds ``root`` (``<run>/trained/<folder>``)."""
    path = Path(text)
    if path.is_dir() or path.is_absolute():
        return path
    if root.parent.name == TRAINED and (root.parent.parent.name == path.name):
        return root.parent.parent
    return path


def _trial_id(value: Any) -> int | None:
    """A trial named by number (``7``) or text (``"7"``, ``"trial-7"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"(?:trial-)?(\d+)", value.strip())
        return int(match.group(1)) if match else None
    return None


def read_trained(root: str | Path) -> TrainedFolder:
    """Reads and checks a trained folder; every problem is a one-line `ShipError`."""
    import torch

    from search_space.declare.loader import load_spec

    root = Path(root)
    if not root.is_dir():
        raise ShipError(f"{root}: not a folder; {_CONTRACT}")
    for name in (SPEC, str(BEST), RECORD):
        if not (root / name).is_file():
            why = " (mixnas train writes it last: has the training finished?)"
            why = why if name == RECORD else ""
            raise ShipError(f"{root / name}: missing{why}; {_CONTRACT}")
    try:
        spec = load_spec(root / SPEC)
    except MixnasError as err:
        raise ShipError(f"{root / SPEC}: not a valid spec: {_one_line(err)}") from None
    record = _read_record(root / RECORD)
    path = root / BEST
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a torch file, or objects that need unpickling
        raise ShipError(
            f"{path}: cannot be read as weights with torch.load(weights_only=True): "
            f"{_one_line(err)}"
        ) from None
    if not isinstance(weights, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in weights.values()
    ):
        raise ShipError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    folder = TrainedFolder(root, spec, record, weights)
    _check_fits(folder, path)
    return folder


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ShipError(f"{path}: not a readable JSON training record ({_one_line(err)})") from None
    if not isinstance(record, dict):
        raise ShipError(f"{path}: must be a JSON object (got {type(record).__name__})")
    return record


def _check_fits(folder: TrainedFolder, path: Path) -> None:
    """The weights must be exactly the spec's model's parameters and buffers."""
    from search_space import build_model

    expected = build_model(folder.spec, quantize=False).state_dict()
    missing = sorted(set(expected) - set(folder.weights))
    unexpected = sorted(set(folder.weights) - set(expected))
    if missing or unexpected:
        raise ShipError(
            f"{path}: does not fit spec.json's model ({len(missing)} missing key(s) "
            f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]})"
        )
    for key, tensor in expected.items():
        if tuple(folder.weights[key].shape) != tuple(tensor.shape):
            raise ShipError(
                f"{path}: {key} has shape {tuple(folder.weights[key].shape)}, spec.json's "
                f"model needs {tuple(tensor.shape)}"
            )


def trained_folders(path: str | Path) -> list[Path]:
    """The trained folders ``path`` names: itself when it holds ``spec.json``, else the
    folders of ``<path>/trained/`` (a run folder), in name order. A folder that is neither
    is a one-line `ShipError`."""
    path = Path(path)
    if not path.is_dir():
        raise ShipError(f"{path}: not a folder; expected a trained folder or a run folder")
    if (path / SPEC).is_file() or (path / BEST).is_file():
        return [path]
    inside = path / TRAINED
    found = sorted(p for p in inside.iterdir() if p.is_dir()) if inside.is_dir() else []
    if not found:
        raise ShipError(
            f"{path}: neither a trained folder ({SPEC} missing) nor a run folder with trained "
            f"folders ({inside}/<name>/ missing); run 'mixnas train' first"
        )
    return found


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
