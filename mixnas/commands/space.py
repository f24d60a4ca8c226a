"""``mixnas space describe|sample``: inspect a search space."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mixnas.commands.common import emit, fmt_big, fmt_int, positive_int


def cmd_space_describe(args: argparse.Namespace) -> int:
    from search_space import load_space

    space = load_space(args.file)
    info = space.describe()
    if args.json:
        emit(info)
        return 0
    print(f"space {info['name']} ({info['source']})")
    if info["description"]:
        print(f"  {info['description']}")
    print(f"  input: {info['input']}")
    print(
        f"  cardinality: {fmt_int(info['cardinality'])} (~10^{len(str(info['cardinality'])) - 1})"
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
        emit(rows)
        return 0
    built = "  counted MACs  forward ms" if args.build else ""
    print(f"{'id':16}  {'params':>10}  {'MACs':>10}  {'bytes':>10}  {'bitops':>10}{built}  mixers")
    for row in rows:
        mixers = [[b["token_mixer"]["name"] for b in st["blocks"]] for st in row["spec"]["stages"]]
        shown = " | ".join(",".join(dict.fromkeys(m)) for m in mixers)
        measured = ""
        if args.build:
            measured = f"  {fmt_big(row['counted_macs']):>12}  {row['forward_ms']:>10.2f}"
        print(
            f"{row['id']:16}  {fmt_big(row['params']):>10}  {fmt_big(row['macs']):>10}  "
            f"{fmt_big(row['bytes']):>10}  {fmt_big(row['bitops']):>10}{measured}  {shown}"
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


def add_to(sub: Any) -> None:
    space = sub.add_parser("space", help="inspect search spaces").add_subparsers(
        dest="space_command", required=True
    )
    describe = space.add_parser("describe", help="dimensions, mixers, bits, cardinality")
    describe.add_argument("file", help="space file (.yaml/.json) or built-in name")
    describe.add_argument("--json", action="store_true")
    describe.set_defaults(func=cmd_space_describe)

    sample = space.add_parser("sample", help="sample specs with their costs")
    sample.add_argument("file", help="space file (.yaml/.json) or built-in name")
    sample.add_argument("-n", type=positive_int, default=5, help="number of specs")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument(
        "--max-tries",
        type=positive_int,
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
