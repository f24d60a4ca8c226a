"""The ``mixnas`` command line.

Bad input (a malformed space file, an unknown mixer, a broken spec) prints one line on stderr that
names the file, the field and what is allowed, and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from search_space.errors import InfeasibleError, MixnasError, SpaceError

EXIT_BAD_INPUT = 2
log = logging.getLogger("mixnas")


def _emit(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def _fmt_big(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:g}"


# -- space ---------------------------------------------------------------------------------------


def cmd_space_describe(args: argparse.Namespace) -> int:
    from search_space import load_space

    space = load_space(args.file)
    info = space.describe()
    if args.json:
        _emit(info)
        return 0
    print(f"space {info['name']} ({info['source']})")
    if info["description"]:
        print(f"  {info['description']}")
    print(f"  input: {info['input']}")
    print(
        f"  cardinality: {_fmt_int(info['cardinality'])} (~10^{len(str(info['cardinality'])) - 1})"
    )
    print(f"  decision dimensions: {info['num_dims']}")
    print(f"  token mixers: {', '.join(info['mixers'])}")
    print(f"  channel mixers: {', '.join(info['channel_mixers'])}")
    print(f"  quantization bits: {info['quant_bits']} ({info['quant_scope']})")
    print(f"  stages: {info['num_stages']}")
    for i, st in enumerate(info["stages"]):
        print(f"    [{i}] depth {st['depth']} width {st['width']} patterns {st['patterns']}")
        print(f"        downsample {', '.join(st['downsample'])}")
        print(
            f"        {len(st['token_mixers'])} token-mixer options: "
            f"{', '.join(sorted({m.split('(')[0] for m in st['token_mixers']}))}"
        )
    if info["constraints"]:
        print(f"  constraints: {'; '.join(info['constraints'])}")
    return 0


def cmd_space_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from search_space import load_space, spec_cost

    space = load_space(args.file)
    unresolved = [c.metric for c in space.constraints if not c.analytic]
    if unresolved:
        # sampling here has no predictor; say so instead of silently ignoring the bound
        print(
            f"mixnas: warning: {', '.join(unresolved)} not enforced (no predictor in "
            "'space sample')",
            file=sys.stderr,
        )
        space.constraints = tuple(c for c in space.constraints if c.analytic)
    rng = np.random.default_rng(args.seed)
    rows = []
    for _ in range(args.n):
        spec = space.sample(rng, max_tries=args.max_tries)
        row = {"id": spec.id, "spec": spec.to_dict(), **spec_cost(spec).to_dict()}
        if args.build:
            row.update(_built_costs(spec))
        rows.append(row)
    if args.json:
        _emit(rows)
        return 0
    built = "  counted MACs  forward ms" if args.build else ""
    print(f"{'id':16}  {'params':>10}  {'MACs':>10}  {'bytes':>10}  {'bitops':>10}{built}  mixers")
    for row in rows:
        mixers = [[b["token_mixer"]["name"] for b in st["blocks"]] for st in row["spec"]["stages"]]
        shown = " | ".join(",".join(dict.fromkeys(m)) for m in mixers)
        measured = ""
        if args.build:
            measured = f"  {_fmt_big(row['counted_macs']):>12}  {row['forward_ms']:>10.2f}"
        print(
            f"{row['id']:16}  {_fmt_big(row['params']):>10}  {_fmt_big(row['macs']):>10}  "
            f"{_fmt_big(row['bytes']):>10}  {_fmt_big(row['bitops']):>10}{measured}  {shown}"
        )
    return 0


def _built_costs(spec: Any) -> dict[str, Any]:
    """Builds the spec's model, counts its parameters and MACs, times one forward pass."""
    import time

    import torch

    from evaluators.counting import count_macs
    from search_space import build_model, example_input
    from search_space.nn.builder import count_params

    model = build_model(spec).eval()
    x = example_input(spec, batch_size=1)
    with torch.no_grad():
        model(x)  # warm-up: first calls pay for allocation and kernel selection
        start = time.perf_counter()
        model(x)
        forward_ms = (time.perf_counter() - start) * 1e3
    return {
        "built_params": count_params(model),
        "counted_macs": count_macs(model, x),
        "forward_ms": forward_ms,
    }


# -- build ---------------------------------------------------------------------------------------


def _read_spec(path: str) -> Any:
    from search_space import ArchSpec, validate_spec

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpaceError("<file>", f"cannot be read: {exc.strerror}", source=path) from None
    data = json.loads(text) if text.strip().startswith("{") else None
    if isinstance(data, dict) and "spec" in data and "stages" not in data:
        # an exported record ({"id", "spec", metrics...}) carries the spec under "spec"
        text = json.dumps(data["spec"])
    spec = ArchSpec.from_json(text, source=path)
    return validate_spec(spec, source=path)


def cmd_build(args: argparse.Namespace) -> int:
    from evaluators.counting import count_macs
    from search_space import build_model, example_input, spec_cost
    from search_space.nn.builder import count_params, summary

    spec = _read_spec(args.spec)
    model = build_model(spec, seed=args.seed)
    x = example_input(spec, batch_size=1)
    model.eval()
    out = model(x)
    cost = spec_cost(spec)
    info = {
        "id": spec.id,
        "params": count_params(model),
        "macs": count_macs(model, x),
        "analytic": cost.to_dict(),
        "input_shape": list(x.shape),
        "output_shape": list(out.shape),
        "modules": summary(model),
    }
    if args.json:
        _emit(info)
        return 0
    print(f"spec {spec.id}: {len(spec.stages)} stages, depths {spec.depths}, widths {spec.widths}")
    for row in info["modules"]:
        print(f"  {row['module']:10} {_fmt_int(row['params']):>14} params")
    print(
        f"  params {_fmt_int(info['params'])}  MACs {_fmt_int(info['macs'])} (counted), "
        f"{_fmt_int(cost.macs)} (analytic)"
    )
    print(
        f"  bytes {_fmt_int(cost.bytes)}  bitops {_fmt_int(cost.bitops)}  "
        f"activation bytes {_fmt_int(cost.activation_bytes)}"
    )
    print(f"  input {info['input_shape']} -> output {info['output_shape']}")
    return 0


# -- parser --------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixnas", description="Hybrid-architecture NAS engine")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    space = sub.add_parser("space", help="inspect search spaces").add_subparsers(
        dest="space_command", required=True
    )
    describe = space.add_parser("describe", help="dimensions, mixers, bits, cardinality")
    describe.add_argument("file", help="space file (.yaml/.json) or built-in name")
    describe.add_argument("--json", action="store_true")
    describe.set_defaults(func=cmd_space_describe)

    sample = space.add_parser("sample", help="sample specs with their costs")
    sample.add_argument("file", help="space file (.yaml/.json) or built-in name")
    sample.add_argument("-n", type=_positive_int, default=5, help="number of specs")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument(
        "--max-tries",
        type=_positive_int,
        default=1000,
        help="draws per sample before a constraint is declared infeasible",
    )
    sample.add_argument(
        "--build",
        action="store_true",
        help="also build each model, count its MACs and time a forward pass",
    )
    sample.add_argument("--json", action="store_true")
    sample.set_defaults(func=cmd_space_sample)

    build = sub.add_parser("build", help="build a spec's model and count its costs")
    build.add_argument("spec", help="ArchSpec JSON file (or an exported record)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--json", action="store_true")
    build.set_defaults(func=cmd_build)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (SpaceError, InfeasibleError, MixnasError) as err:
        print(f"mixnas: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except json.JSONDecodeError as err:
        print(f"mixnas: error: not valid JSON: {err.msg} at line {err.lineno}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
