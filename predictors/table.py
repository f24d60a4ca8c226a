"""Versioned per-device latency tables: op signature -> measured time, stored as one JSON file.

A table belongs to one device and one way of measuring (torch version, threads, batch size,
dtype, CPU model for the host). Those settings are hashed into the file name, so a table measured
under other settings is never silently reused (the "predictor files that rot" of nn-Meter and
OFA) and tables for several settings live side by side. A file of another ``FORMAT`` is ignored
with a warning and rewritten. Writes are atomic (temp file + rename) so a killed profiling run
leaves the previous table intact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from predictors.timing import Timing, TimingOptions

FORMAT = 2
log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$MIXNAS_CACHE/latency`` or ``~/.cache/mixnas/latency``."""
    root = os.environ.get("MIXNAS_CACHE") or Path.home() / ".cache" / "mixnas"
    return Path(root) / "latency"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_settings(options: TimingOptions, torch_device: str = "cpu") -> dict[str, Any]:
    """What makes host measurements comparable: hardware, software and the timing options."""
    import torch

    hardware = cpu_model()
    if torch_device.startswith("cuda"):
        hardware = torch.cuda.get_device_name(torch_device)
    return {
        "hardware": hardware,
        "torch": torch.__version__.split("+")[0],
        "threads": options.threads,
        "batch_size": options.batch_size,
        "dtype": options.dtype,
    }


@dataclass
class LatencyTable:
    """Entries of one device under one set of settings; see the module docstring."""

    device: str
    settings: dict[str, Any]
    entries: dict[str, dict[str, float]] = field(default_factory=dict)
    path: Path | None = None

    @staticmethod
    def file_for(directory: Path, device: str, settings: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
        return Path(directory) / f"{device}-{digest}.lut.json"

    @classmethod
    def open(cls, directory: Path, device: str, settings: dict[str, Any]) -> LatencyTable:
        """The table of ``device`` under ``settings`` in ``directory`` (empty if none yet)."""
        path = cls.file_for(directory, device, settings)
        table = cls(device, dict(settings), {}, path)
        if not path.exists():
            return table
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            log.warning("latency table %s unreadable (%s); starting a new one", path, err)
            return table
        if data.get("format") != FORMAT or data.get("settings") != table.settings:
            log.warning(
                "latency table %s has format %s (this mixnas writes %s) or other settings; "
                "starting a new one",
                path,
                data.get("format"),
                FORMAT,
            )
            return table
        table.entries = {k: dict(v) for k, v in data.get("entries", {}).items()}
        return table

    def __contains__(self, signature: str) -> bool:
        return signature in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, signature: str) -> dict[str, float]:
        return self.entries[signature]

    def add(self, signature: str, timing: Timing) -> None:
        self.entries[signature] = {
            "median_ms": timing.median_ms,
            "min_ms": timing.min_ms,
            "iqr_ms": timing.iqr_ms,
            "noisy": float(timing.noisy),
        }

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "format": FORMAT,
            "device": self.device,
            "settings": self.settings,
            "entries": dict(sorted(self.entries.items())),
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.path)
