"""``mixnas space list|describe|sample``: the built-in search spaces, and inspect one.

A space is named by a file (``.yaml``/``.json``), a built-in name (`search_space/spaces/`), or
``nb201`` / ``nb201:<dataset>`` (NAS-Bench-201's cell space, `search_space.spaces.nb201`, which
is declared in Python rather than YAML).
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from mixnas.commands.common import emit, fmt_big, fmt_int, positive_int

NB201 = re.compile(r"nb201(?::(?P<dataset>[\w-]+)|\[(?P<bracket>[\w-]+)\])?")


def builtin_spaces() -> list[dict[str, str]]:
    """Every built-in space: its name, how to name it, and its one-line description."""
    from search_space.declare.loader import read_declaration
    from search_space.spaces import builtin_path, names
    from search_space.spaces.nb201 import DATASETS, EDGES, OPS

    out = []
    for name in names():
        data = read_declaration(builtin_path(name))  # type: ignore[arg-type]
        text = data.get("description", "") if isinstance(data, dict) else ""
        out.append({"name": name, "description": " ".join(str(text).split())})
    out.append(
        {
            "name": "nb201",
            "description": f"NAS-Bench-201's cell space: {len(EDGES)} edges x {len(OPS)} ops "
            f"({len(OPS) ** len(EDGES):,} cells) in its fixed 3-stage skeleton; nb201:<dataset> "
            f"for {', '.join(DATASETS)} (default cifar10)",
        }
    )
    return sorted(out, key=lambda s: s["name"])


def open_space(name: str) -> Any:
    """The space a command line names: a file, a built-in name, or ``nb201[:dataset]``. An
    unknown name is one line listing the built-in spaces."""
    from search_space import load_space, paths
    from search_space.errors import SpaceError
    from search_space.spaces import builtin_path

    nb201 = NB201.fullmatch(name)
    if nb201 and not paths.exists(name):
        from search_space.spaces.nb201 import DATASETS, NB201Space

        dataset = nb201.group("dataset") or nb201.group("bracket") or "cifar10"
        if dataset not in DATASETS:
            raise SpaceError(
                "dataset",
                f"NAS-Bench-201 has the datasets {', '.join(DATASETS)}",
                source=name,
                value=dataset,
            )
        return NB201Space(dataset)
    if not paths.exists(name) and builtin_path(name) is None:
        known = ", ".join(s["name"] for s in builtin_spaces())
        raise SpaceError(
            "<file>",
            f"no such file, and not a built-in space; built-in: {known} (see 'mixnas space list')",
            source=name,
        )
    return load_space(name)


def cmd_space_list(args: argparse.Namespace) -> int:
    spaces = builtin_spaces()
    if args.json:
        emit(spaces)
        return 0
    width = max(len(s["name"]) for s in spaces)
    for s in spaces:
        print(f"{s['name'].ljust(width)}  {s['description']}")
    return 0


def cmd_space_describe(args: argparse.Namespace) -> int:
    space = open_space(args.file)
    info = space.describe()
    if args.json:
        emit(info)
        return 0
    if "ops" in info:  # NAS-Bench-201: edges and ops, not stages
        print(f"space {info['name']} ({info['dataset']})")
        print(f"  input: {info['input']}")
        print(f"  cardinality: {fmt_int(info['cardinality'])}")
        print(f"  decision dimensions: {info['num_dims']} (one op per cell edge)")
        print(f"  ops: {', '.join(info['ops'])}")
        print("  skeleton: 3 stages of 5 cells (16, 32, 64 channels), residual downsampling")
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

    from search_space import spec_cost

    space = open_space(args.file)
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
    listing = space.add_parser("list", help="the built-in spaces, one line each")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_space_list)

    describe = space.add_parser("describe", help="dimensions, mixers, bits, cardinality")
    describe.add_argument(
        "file", help="space file (.yaml/.json), built-in name, or nb201[:dataset]"
    )
    describe.add_argument("--json", action="store_true")
    describe.set_defaults(func=cmd_space_describe)

    sample = space.add_parser("sample", help="sample specs with their costs")
    sample.add_argument("file", help="space file (.yaml/.json), built-in name, or nb201[:dataset]")
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
