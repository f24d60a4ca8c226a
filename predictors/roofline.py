"""Roofline device models: latency from peak compute and memory bandwidth, calibrated when measured.

The roofline model (Williams, Waterman and Patterson, CACM 2009): an op whose arithmetic intensity
(FLOPs per byte moved) is below the device's ridge point is bound by memory bandwidth, above it by
peak compute, so ``time(op) = max(2 * MACs / peak_flops, bytes / bandwidth)``. A network is the sum
over its ops (`predictors.features.op_costs` gives MACs and bytes at each op's bit-width). Real
devices reach a fraction of their peak and pay a fixed cost per op (kernel launch, framework), so
measurements, when there are any, calibrate the sum with `predictors.calibration` (scale, per-op
cost, constant). Uncalibrated, the estimate is an optimistic lower bound.

`DEVICES` is a small library of devices described by their vendors' numbers: peak FP32 FLOP/s is
cores (or CUDA cores) x clock x FLOPs per cycle (2 per FMA x SIMD width), bandwidth is memory
channels x transfer rate x bus width, from the spec sheets named in each entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from predictors.base import Predictor, register
from predictors.calibration import IDENTITY, design, fit_correction
from predictors.features import op_costs
from search_space.errors import SpaceError
from search_space.plan import plan
from search_space.spec import ArchSpec


@dataclass(frozen=True)
class Device:
    """A device as the roofline sees it."""

    name: str
    peak_gflops: float  # FP32, all cores
    bandwidth_gbs: float  # DRAM
    kind: str
    compute_source: str  # how the peak follows from the vendor's spec sheet
    memory_source: str


_LIBRARY = (
    (
        "1080ti",
        11340.0,
        484.0,
        "gpu",
        "NVIDIA GTX 1080 Ti spec: 3584 cores x 1582 MHz x 2",
        "11 Gbps x 352 bit",
    ),
    (
        "2080ti",
        13450.0,
        616.0,
        "gpu",
        "NVIDIA RTX 2080 Ti spec: 4352 cores x 1545 MHz x 2",
        "14 Gbps x 352 bit",
    ),
    (
        "titan_rtx",
        16310.0,
        672.0,
        "gpu",
        "NVIDIA Titan RTX spec: 4608 cores x 1770 MHz x 2",
        "14 Gbps x 384 bit",
    ),
    (
        "titanx",
        10970.0,
        480.0,
        "gpu",
        "NVIDIA Titan X (Pascal) spec: 3584 cores x 1531 MHz x 2",
        "10 Gbps x 384 bit",
    ),
    (
        "titanxp",
        12150.0,
        547.7,
        "gpu",
        "NVIDIA Titan Xp spec: 3840 cores x 1582 MHz x 2",
        "11.4 Gbps x 384 bit",
    ),
    (
        "gold_6226",
        2073.6,
        140.8,
        "cpu",
        "Intel ARK Xeon Gold 6226: 12 cores x 2.7 GHz x 64 (2 AVX-512 FMA)",
        "6 ch DDR4-2933",
    ),
    (
        "gold_6240",
        2995.2,
        140.8,
        "cpu",
        "Intel ARK Xeon Gold 6240: 18 cores x 2.6 GHz x 64 (2 AVX-512 FMA)",
        "6 ch DDR4-2933",
    ),
    (
        "silver_4114",
        704.0,
        115.2,
        "cpu",
        "Intel ARK Xeon Silver 4114: 10 cores x 2.2 GHz x 32 (1 AVX-512 FMA)",
        "6 ch DDR4-2400",
    ),
    (
        "silver_4210r",
        768.0,
        115.2,
        "cpu",
        "Intel ARK Xeon Silver 4210R: 10 cores x 2.4 GHz x 32 (1 AVX-512 FMA)",
        "6 ch DDR4-2400",
    ),
    (
        "raspi4",
        48.0,
        12.8,
        "cpu",
        "Raspberry Pi 4 product brief: 4 Cortex-A72 x 1.5 GHz x 8 (128-bit NEON FMA)",
        "LPDDR4-3200 x 32 bit",
    ),
    (
        "pixel3",
        89.6,
        29.9,
        "mobile",
        "Snapdragon 845: 4 Kryo 385 Gold (A75) x 2.8 GHz x 8 (128-bit NEON FMA)",
        "LPDDR4X-1866 x 4 x 16 bit",
    ),
    (
        "jetson_nano",
        235.8,
        25.6,
        "gpu",
        "NVIDIA Jetson Nano module data sheet: 128 cores x 921.6 MHz x 2",
        "LPDDR4-3200 x 64 bit",
    ),
)
DEVICES: dict[str, Device] = {row[0]: Device(*row) for row in _LIBRARY}


def roofline_ms(spec: ArchSpec, device: Device, batch_size: int = 1) -> tuple[float, int]:
    """The uncalibrated roofline latency of ``spec`` (ms) and its number of ops."""
    peak, bandwidth = device.peak_gflops * 1e9, device.bandwidth_gbs * 1e9
    total = 0.0
    items = plan(spec)
    for item in items:
        c = op_costs(item)
        # weights are read once per batch; activations scale with it
        moved = c.weight_bytes + batch_size * (c.traffic_bytes - c.weight_bytes)
        total += max(2.0 * c.macs * batch_size / peak, moved / bandwidth)
    return total * 1e3, len(items)


@register
class RooflinePredictor(Predictor):
    """Roofline estimate for a device of `DEVICES`, calibrated by `fit` on measurements.

    Args:
        device: a name in `DEVICES` (or any name together with ``peak_gflops`` and
            ``bandwidth_gbs``).
        peak_gflops, bandwidth_gbs: describe a device that is not in the library.
        batch_size: input batch size.
    """

    name = "roofline"
    log_target: ClassVar[bool] = False

    def __init__(
        self,
        *,
        seed: int = 0,
        device: str = "raspi4",
        peak_gflops: float | None = None,
        bandwidth_gbs: float | None = None,
        batch_size: int = 1,
    ) -> None:
        super().__init__(seed=seed, device=device)
        if peak_gflops is not None or bandwidth_gbs is not None:
            for field_name, value in (
                ("peak_gflops", peak_gflops),
                ("bandwidth_gbs", bandwidth_gbs),
            ):
                if not isinstance(value, int | float) or not value > 0:
                    raise SpaceError(
                        f"predictor.roofline.{field_name}", "must be a number > 0", value=value
                    )
            self.hardware = Device(
                device,
                float(peak_gflops),  # type: ignore[arg-type]
                float(bandwidth_gbs),  # type: ignore[arg-type]
                "custom",
                "given by the user",
                "given by the user",
            )
        elif device in DEVICES:
            self.hardware = DEVICES[device]
        else:
            raise SpaceError(
                "predictor.roofline.device",
                f"unknown device; known: {', '.join(sorted(DEVICES))} "
                "(or give peak_gflops and bandwidth_gbs)",
                value=device,
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise SpaceError(
                "predictor.roofline.batch_size", "must be an integer >= 1", value=batch_size
            )
        self.batch_size = batch_size
        self.coef, self.rel_sigma = IDENTITY, 0.0
        self.fitted = True  # the raw roofline needs no data

    def estimates(self, specs: Sequence[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        rows = [roofline_ms(s, self.hardware, self.batch_size) for s in specs]
        return np.array([r[0] for r in rows]), np.array([r[1] for r in rows], dtype=float)

    def _fit(self, specs: list[ArchSpec], y: np.ndarray) -> None:
        self.coef, self.rel_sigma = fit_correction(*self.estimates(specs), y)

    def _predict(self, specs: list[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        mean = design(*self.estimates(specs)) @ self.coef
        # uncalibrated, a roofline is a lower bound that real devices miss by large factors
        rel = self.rel_sigma if self.rel_sigma > 0 else 1.0
        return mean, rel * mean
