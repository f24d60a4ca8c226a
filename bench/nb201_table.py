"""NAS-Bench-201 as a lookup table: test accuracy per dataset and latency per device, by arch
string, from the reference data in ``../shared/data`` (never copied into the project)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ACCURACY = DATA / "nb201_nats_test_acc" / "nats_bench.csv"
LATENCY = DATA / "hw_latency_help" / "nb201_latency_ms.csv"
ACC_COLUMNS = {
    "cifar10": "CIFAR10TestAccuracy200Epochs",
    "cifar100": "CIFAR100TestAccuracy200Epochs",
    "ImageNet16-120": "ImageNetTestAccuracy200Epochs",
}


@dataclass(frozen=True)
class Table:
    """Accuracy (maximise) and latency (minimise) of all 15,625 cells, aligned by index."""

    dataset: str
    device: str
    arch: tuple[str, ...]
    accuracy: np.ndarray
    latency: np.ndarray

    @property
    def index(self) -> dict[str, int]:
        return _index(self.arch)

    def lookup(self, arch: str) -> tuple[float, float]:
        i = self.index[arch]
        return float(self.accuracy[i]), float(self.latency[i])

    def losses(self, archs: list[str]) -> np.ndarray:
        """(n, 2) losses to minimise: negated accuracy and latency."""
        idx = [self.index[a] for a in archs]
        return np.stack([-self.accuracy[idx], self.latency[idx]], axis=1)

    def all_losses(self) -> np.ndarray:
        return np.stack([-self.accuracy, self.latency], axis=1)


@cache
def _index(arch: tuple[str, ...]) -> dict[str, int]:
    return {a: i for i, a in enumerate(arch)}


@cache
def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    for path in (ACCURACY, LATENCY):
        if not path.exists():
            raise SystemExit(
                f"reference data missing: {path} (../shared/ must sit beside the repository)"
            )
    return pd.read_csv(ACCURACY), pd.read_csv(LATENCY)


def devices() -> list[str]:
    return [c for c in _frames()[1].columns if c not in ("nb201_index", "arch_str")]


@cache
def load(dataset: str, device: str) -> Table:
    acc, lat = _frames()
    if dataset not in ACC_COLUMNS:
        raise SystemExit(f"unknown dataset {dataset!r}; known: {', '.join(ACC_COLUMNS)}")
    if device not in lat.columns:
        raise SystemExit(f"unknown device {device!r}; known: {', '.join(devices())}")
    # both files list the 15,625 cells in NB201 index order; check rather than assume
    if not (acc["ArchitectureString"].values == lat["arch_str"].values).all():
        raise SystemExit("accuracy and latency tables disagree on the cell order")
    return Table(
        dataset,
        device,
        tuple(acc["ArchitectureString"]),
        acc[ACC_COLUMNS[dataset]].to_numpy(float),
        lat[device].to_numpy(float),
    )
