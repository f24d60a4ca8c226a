"""``mixnas latency measure|profile``: time a spec on this machine, fill a device's lookup table."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from mixnas.commands.common import emit, positive_int
from search_space import paths
from search_space.errors import SpaceError


def load_spec(target: str) -> Any:
    """A spec file (or exported record), or a zoo model's name when the zoo is installed."""
    from mixnas.commands.build import read_spec

    if paths.exists(target) or target.endswith(".json"):
        return read_spec(target)
    if importlib.util.find_spec("search_space.zoo") is not None:
        from search_space import zoo

        return zoo.get(target)
    raise SpaceError("spec", "no such file (and no zoo to look a name up in)", value=target)


def _timing_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "threads": args.threads,
        "batch_size": args.batch_size,
        "dtype": args.dtype,
        "statistic": args.statistic,
    }


def _device(name: str, flag: str) -> str:
    """``name`` as a torch device this machine has (`evaluators.devices`): a GPU that is not
    there is one line naming the flag (exit 2), not an error deep inside torch."""
    from evaluators.devices import DeviceError, resolve_device

    try:
        return resolve_device(name)
    except DeviceError as err:
        raise SpaceError(flag, str(err).removeprefix(f"device {name!r}: "), value=name) from None


def cmd_measure(args: argparse.Namespace) -> int:
    import evaluators
    from evaluators import EvalContext

    device = _device(args.device, "--device")
    spec = load_spec(args.spec)
    evaluator = evaluators.create(
        "latency", **_timing_options(args), warmup=args.warmup, repeats=args.repeats
    )
    result = evaluator.evaluate(spec, EvalContext(seed=args.seed, device=device))
    if not result.ok:
        raise SpaceError(args.spec, f"could not be measured: {result.error}")
    m = result.metrics
    info = {"id": spec.id, "device": args.device, **_timing_options(args), **m}
    if args.json:
        emit(info)
        return 0
    flag = "  NOISY: spread stayed above 10% after re-measuring" if m["latency_noisy"] else ""
    print(
        f"spec {spec.id} on {args.device} (batch {args.batch_size}, {args.dtype}, "
        f"{args.threads} thread(s)): median {m['latency_median_ms']:.3f} ms, IQR "
        f"{m['latency_iqr_ms']:.3f} ms ({100 * m['latency_rel_iqr']:.1f}%), min "
        f"{m['latency_min_ms']:.3f} ms, {m['latency_attempts']:.0f} attempt(s){flag}"
    )
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    import numpy as np

    from predictors.lut import LookupTablePredictor
    from search_space import load_space

    torch_device = _device(args.torch_device, "--torch-device")
    space = load_space(args.space)
    # the table covers what the space can produce; a latency bound is what it will help enforce
    space.constraints = tuple(c for c in space.constraints if c.analytic)
    rng = np.random.default_rng(args.seed)
    specs = [space.sample(rng) for _ in range(args.n)]
    lut = LookupTablePredictor(
        device=args.device,
        cache_dir=args.cache_dir,
        repeats=args.repeats,
        torch_device=torch_device,
        **_timing_options(args),
    )
    before = len(lut.table)
    from mixnas.progress import Ticker

    # spec by spec, so that a long profile shows progress and keeps each spec's timings
    ticker = Ticker(len(specs), f"latency profile {args.device}", "spec")
    measured = 0
    try:
        for spec in specs:
            measured += lut.ensure([spec])
            ticker.update(1, profiled=measured)
    finally:
        ticker.close()
    info = {
        "device": args.device,
        "table": str(lut.table.path),
        "specs": len(specs),
        "signatures": len(lut.table),
        "already_cached": before,
        "profiled": measured,
    }
    if args.json:
        emit(info)
        return 0
    print(
        f"{args.device}: {len(specs)} specs of {args.space}; table {info['table']} now holds "
        f"{info['signatures']} op signatures ({before} cached before, {measured} profiled now)"
    )
    return 0


def _add_timing(parser: argparse.ArgumentParser, repeats: int) -> None:
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads")
    parser.add_argument("--batch-size", type=positive_int, default=1)
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "fp32", "fp16", "bf16", "int8"),
        help="auto: int8 where the spec's quantization policy asks for <= 8-bit weights",
    )
    parser.add_argument("--repeats", type=positive_int, default=repeats, help="timed samples")
    parser.add_argument(
        "--statistic",
        default="median",
        choices=("median", "min"),
        help="headline value; min repeats better on a busy machine",
    )
    parser.add_argument("--json", action="store_true")


def add_to(sub: Any) -> None:
    latency = sub.add_parser(
        "latency", help="measure latency, profile lookup tables"
    ).add_subparsers(dest="latency_command", required=True)
    measure = latency.add_parser("measure", help="time a spec's model on this machine")
    measure.add_argument("spec", help="ArchSpec JSON file (or exported record) or a zoo name")
    measure.add_argument("--device", default="cpu", help="torch device: auto, cpu, cuda or cuda:N")
    measure.add_argument("--warmup", type=int, default=5)
    measure.add_argument("--seed", type=int, default=0)
    _add_timing(measure, repeats=30)
    measure.set_defaults(func=cmd_measure)

    profile = latency.add_parser(
        "profile", help="fill a device's op lookup table for the specs of a space"
    )
    profile.add_argument("--device", required=True, help="table name, e.g. host")
    profile.add_argument("--space", required=True, help="space file (.yaml/.json) or built-in")
    profile.add_argument("-n", type=positive_int, default=50, help="specs to sample")
    profile.add_argument("--seed", type=int, default=0)
    profile.add_argument("--cache-dir", type=Path, default=None, help="table directory")
    profile.add_argument(
        "--torch-device", default="cpu", help="where to run: auto, cpu, cuda or cuda:N"
    )
    _add_timing(profile, repeats=10)
    profile.set_defaults(func=cmd_profile)
