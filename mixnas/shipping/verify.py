"""Verifying a shipped model's latency against what the search said about its spec.

Who calls what: `mixnas.shipping.ship` asks `search_latency` what the run recorded for the trial
(the ``latency_ms@<device>`` metric, which evaluator produced it, with which timing settings, and
how far off it may be), times the trained model with `time_torch` and the exported ONNX file with
`time_onnx` at those settings, then `compare` says whether the gap is within what was promised.

What may the gap be (``threshold``, a relative difference ``measured / searched - 1``):

* ``predicted_latency`` (a lookup-table prediction): the predictor's stated error, taken as
  `STATED_SIGMAS` standard deviations of its prediction for this spec (`Predictor.predict_std`,
  from the lookup tables the run kept in ``lookup_tables/``): the ~95 % band of the predictor's
  own error model. When the tables are gone the default tolerance stands in, and ``basis`` says so.
* ``latency`` (measured during the search): `DEFAULT_TOLERANCE`, 25 %. Why: the same model, same
  settings, measured twice on one machine differs by the machine's load (the search calls a
  measurement noisy past a relative IQR of 10 %, so two honest medians can sit 2 x 10 % apart),
  and the shipped model is timed in another process at another time; 25 % is above that and well
  below the 2x gaps a wrong runtime, precision or batch gives.

Which measurement is compared: torch at the search's settings tests the search's number (same
runtime as the search's timing), both ways: slower or faster by more than the threshold is
flagged. ONNX Runtime is the deployed runtime: it is flagged only when slower than the search's
number by more than the threshold (a deployed model faster than promised meets its budget).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from predictors.timing import Timing, TimingOptions, time_call, time_module
from search_space.errors import MixnasError

DEFAULT_TOLERANCE = 0.25
STATED_SIGMAS = 2.0
PREFIX = "latency_ms@"
TORCH_DEVICES = {"host": "cpu", "cuda": "cuda"}
#: Timing settings of a shipped model that the search does not fix: more samples than the search's
#: per-trial budget allows, since one model is timed, once.
SHIP_WARMUP, SHIP_REPEATS = 5, 30


@dataclass(frozen=True)
class SearchLatency:
    """What a run recorded about one spec's latency, and how far off it may be.

    Attributes:
        metric: ``latency_ms@<device>``.
        value_ms: the trial's value of ``metric``.
        kind: ``measured`` (the ``latency`` evaluator) or ``predicted`` (``predicted_latency``).
        device: the metric's device label (``host``, ``cuda``, a roofline device).
        evaluator: the evaluator's name in the run config.
        threads, batch_size, dtype, statistic: the timing settings behind the value.
        threshold: the relative gap above which a measurement is flagged.
        basis: where ``threshold`` comes from, in words.
        stated_std_ms: the predictor's standard deviation for this spec (None when unknown).
        run, trial: where it was read.
    """

    metric: str
    value_ms: float
    kind: str
    device: str
    evaluator: str
    threads: int
    batch_size: int
    dtype: str
    statistic: str
    threshold: float
    basis: str
    stated_std_ms: float | None
    run: str
    trial: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def search_latency(
    run_dir: Path, trial_id: int, spec: Any, *, tolerance: float = DEFAULT_TOLERANCE
) -> tuple[SearchLatency | None, str]:
    """The run's latency of ``trial_id`` (None and the reason when there is none to compare)."""
    from mixnas.report.data import RunData

    try:
        run = RunData.load(run_dir)
    except (MixnasError, OSError) as err:
        return None, f"the run {run_dir} cannot be read ({err})"
    record = run.by_id(trial_id)
    if record is None:
        return None, f"{run_dir} has no finished trial {trial_id}"
    names = [m for m in record.metrics if m.startswith(PREFIX) and math.isfinite(record.metrics[m])]
    if not names:
        return None, f"trial {trial_id} of {run_dir} has no latency_ms@<device> metric"
    objectives = [o.metric for o in run.objectives]
    metric = next((m for m in objectives if m in names), sorted(names)[0])
    device = metric[len(PREFIX) :]
    found = _producer(run.config.evaluators, device)
    if found is None:
        return None, f"no evaluator of {run_dir}/config.json produces {metric}"
    name, options = found
    value = float(record.metrics[metric])
    threads, batch_size = int(options.get("threads", 1)), int(options.get("batch_size", 1))
    # predicted_latency's lookup tables are built by a resolver with these defaults
    dtype, statistic = str(options.get("dtype", "auto")), str(options.get("statistic", "median"))
    if name == "latency":
        threshold, std = tolerance, None
        basis = f"default tolerance {tolerance:.0%} for a latency measured during the search"
    else:
        threshold, basis, std = _stated_error(
            run_dir, device, spec, value, threads, batch_size, tolerance
        )
    found_latency = SearchLatency(
        metric=metric,
        value_ms=value,
        kind="measured" if name == "latency" else "predicted",
        device=device,
        evaluator=name,
        threads=threads,
        batch_size=batch_size,
        dtype=dtype,
        statistic=statistic,
        threshold=threshold,
        basis=basis,
        stated_std_ms=std,
        run=str(run_dir),
        trial=trial_id,
    )
    return found_latency, ""


def _producer(evaluators: Any, device: str) -> tuple[str, Mapping[str, Any]] | None:
    """The first evaluator of the run config that writes ``latency_ms@<device>``."""
    for cfg in evaluators:
        options = dict(cfg.options)
        if cfg.name == "latency":
            label = options.get("device_name")
            if label == device or (label is None and device in TORCH_DEVICES):
                return cfg.name, options
        if cfg.name == "predicted_latency" and options.get("device", "host") == device:
            return cfg.name, options
    return None


def _stated_error(
    run_dir: Path,
    device: str,
    spec: Any,
    value: float,
    threads: int,
    batch_size: int,
    tolerance: float,
) -> tuple[float, str, float | None]:
    """``STATED_SIGMAS`` standard deviations of the lookup-table predictor's prediction, from
    the tables the run kept (no op is profiled here); the default tolerance when they are gone
    or the device has no table (a roofline device states no error)."""
    from predictors.lut import LookupTablePredictor

    tables = run_dir / "lookup_tables"
    if device not in TORCH_DEVICES or not tables.is_dir():
        return (
            tolerance,
            f"default tolerance {tolerance:.0%}: the predictor of latency_ms@{device} states "
            "no error the run kept",
            None,
        )
    try:
        predictor = LookupTablePredictor(
            device=device,
            cache_dir=tables,
            profile=False,
            threads=threads,
            batch_size=batch_size,
            torch_device=TORCH_DEVICES[device],
        )
        mean, std = predictor.predict_with_std([spec])
    except MixnasError as err:
        return tolerance, f"default tolerance {tolerance:.0%}: {err}", None
    if not math.isclose(float(mean[0]), value, rel_tol=0.01):
        return (
            tolerance,
            f"default tolerance {tolerance:.0%}: the run's lookup tables now predict "
            f"{float(mean[0]):.3g} ms, not the recorded {value:.3g} ms",
            None,
        )
    std_ms = float(std[0])
    stated = STATED_SIGMAS * std_ms / value if value > 0 else math.inf
    return (
        stated,
        f"the predictor's stated error: {STATED_SIGMAS:g} standard deviations of its "
        f"prediction ({std_ms:.3g} ms each, {stated:.1%} of {value:.3g} ms)",
        std_ms,
    )


def ship_timing(
    search: SearchLatency | None, *, batch: int | None, threads: int | None
) -> TimingOptions:
    """Timing options for a shipped model: the search's threads, batch, precision and statistic
    (overridden by ``batch``/``threads`` when given), with `SHIP_WARMUP`/`SHIP_REPEATS`."""
    return TimingOptions(
        threads=threads or (search.threads if search else 1),
        batch_size=batch or (search.batch_size if search else 1),
        dtype=search.dtype if search else "auto",
        statistic=search.statistic if search else "median",
        warmup=SHIP_WARMUP,
        repeats=SHIP_REPEATS,
    )


def time_torch(model: Any, spec: Any, options: TimingOptions, torch_device: str) -> dict[str, Any]:
    """Times the trained float ``model`` as the ``latency`` evaluator times a spec: put in the
    precision ``options.dtype`` asks for (int8 kernels where the policy has <= 8-bit weights,
    CPU only: on a GPU the float model), fixed threads, warm-up, repeats, median and IQR."""
    import copy

    from predictors.quantize import float_dtype, prepare_model
    from search_space import example_input

    dtype = options.dtype
    if torch_device != "cpu" and dtype in ("int8", "auto"):
        dtype = "fp32"
    prepared = prepare_model(copy.deepcopy(model), spec, dtype).to(torch_device)
    x = example_input(spec, options.batch_size, seed=0).to(torch_device)
    if x.is_floating_point():
        x = x.to(float_dtype(dtype))
    timing = time_module(prepared, x, options, device=torch_device)
    return {**_timing(timing, options), "device": torch_device, "dtype": dtype}


def time_onnx(path: Path, spec: Any, options: TimingOptions, provider: str) -> dict[str, Any]:
    """Times an ONNX file in ONNX Runtime with ``provider`` at ``options``' batch and threads
    (intra-op threads as torch's, one inter-op thread, sequential execution), by the same
    warm-up / repeats / median method as torch."""
    import onnxruntime

    from search_space import example_input

    session_options = onnxruntime.SessionOptions()
    session_options.intra_op_num_threads = options.threads
    session_options.inter_op_num_threads = 1
    session_options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    session = onnxruntime.InferenceSession(
        str(path), sess_options=session_options, providers=[provider]
    )
    x = example_input(spec, options.batch_size, seed=0).numpy()
    feed = {session.get_inputs()[0].name: x}
    timing = time_call(lambda: session.run(None, feed), options)
    return {**_timing(timing, options), "provider": provider, "file": path.name}


def _timing(timing: Timing, options: TimingOptions) -> dict[str, Any]:
    return {
        "ms": timing.value(options.statistic),
        "median_ms": timing.median_ms,
        "min_ms": timing.min_ms,
        "iqr_ms": timing.iqr_ms,
        "noisy": timing.noisy,
        "batch_size": options.batch_size,
        "threads": options.threads,
    }


def relative_gap(measured_ms: float | None, searched_ms: float) -> float | None:
    """``measured / searched - 1`` (0.3: measured 30 % slower than the search said)."""
    if measured_ms is None or not searched_ms > 0:
        return None
    return measured_ms / searched_ms - 1.0


def compare(search: SearchLatency, torch_ms: float | None, onnx_ms: float | None) -> dict[str, Any]:
    """The gaps of the torch and ONNX Runtime measurements from the search's value, and whether
    either is flagged (see the module docstring for which way each may err)."""
    gap_torch = relative_gap(torch_ms, search.value_ms)
    gap_onnx = relative_gap(onnx_ms, search.value_ms)
    why = []
    if gap_torch is not None and abs(gap_torch) > search.threshold:
        why.append(
            f"torch measured {torch_ms:.3g} ms vs {search.kind} {search.value_ms:.3g} ms: "
            f"{gap_torch:+.0%}, beyond {search.threshold:.0%}"
        )
    if gap_onnx is not None and gap_onnx > search.threshold:
        why.append(
            f"ONNX Runtime measured {onnx_ms:.3g} ms vs {search.kind} {search.value_ms:.3g} ms: "
            f"{gap_onnx:+.0%}, slower beyond {search.threshold:.0%}"
        )
    return {
        "searched_ms": search.value_ms,
        "torch_ms": torch_ms,
        "onnxruntime_ms": onnx_ms,
        "gap_torch": gap_torch,
        "gap_onnxruntime": gap_onnx,
        "threshold": search.threshold,
        "basis": search.basis,
        "flagged": bool(why),
        "why": why,
    }
