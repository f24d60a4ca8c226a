"""The run folder's manifest and strategy checkpoint, both written atomically.

The manifest says what produced a run: the config, the space's hash, the versions of mixnas, torch
and the other libraries whose behaviour shapes results, the host and the device. The checkpoint is
the strategy's `state_dict` after the last `tell`; together with the trial records it lets
``mixnas search --resume`` continue exactly (see `mixnas.driver`).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from predictors.table import cpu_model
from search_space.errors import RunFolderError

MANIFEST = "manifest.json"
CHECKPOINT = "strategy.json"
CONFIG = "config.json"
_LIBRARIES = ("mixnas", "torch", "numpy", "pandas", "optuna", "ray", "fvcore", "scikit-learn")


def write_json_atomic(path: Path, data: Any) -> None:
    """Writes JSON so that a reader (or a resumed run) sees the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """A run folder's JSON file; one that is not UTF-8 JSON raises `RunFolderError` naming it
    (a ValueError, as `json.load`'s errors are), a missing one `OSError`."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise RunFolderError(
            f"{path}: is not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})"
        ) from None
    except json.JSONDecodeError as err:
        raise RunFolderError(
            f"{path}: is not valid JSON ({err.msg} at line {err.lineno})"
        ) from None
    except RecursionError:
        raise RunFolderError(f"{path}: is nested too deeply to be a mixnas file") from None


def versions() -> dict[str, str]:
    out = {}
    for lib in _LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    out["python"] = platform.python_version()
    return out


def host() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or cpu_model(),
        "cpu_count": os.cpu_count(),
        "python_executable": sys.executable,
    }


def device() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"kind": "cpu", "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info.update(kind="cuda", name=torch.cuda.get_device_name(0))
    return info


def manifest(config: dict[str, Any], space_hash: str, *, backend: str) -> dict[str, Any]:
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": config,
        "space_hash": space_hash,
        "backend": backend,
        "versions": versions(),
        "host": host(),
        "device": device(),
        "command": sys.argv,
    }
