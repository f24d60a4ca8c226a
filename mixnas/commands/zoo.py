"""``mixnas zoo list|show|build``: the architectures of the seed papers as specs."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from mixnas.commands.build import built_info
from mixnas.commands.common import emit, fmt_big, fmt_int


def model_row(name: str) -> dict[str, Any]:
    """One model's metadata and analytic costs at its own resolution (JSON-ready)."""
    from search_space import spec_cost, zoo
    from search_space.costs import macs_as_counted

    meta, spec = zoo.info(name), zoo.get(name)
    cost = spec_cost(spec)
    pub = meta.published
    return {
        "name": name,
        "paper": meta.paper,
        "mixers": spec.mixer_names(),
        "families": list(meta.families),
        "macro": list(meta.macro),
        "params": cost.params,
        "macs": cost.macs,
        "resolution": spec.input.resolution[0],
        "published": {
            "params_m": pub.params_m,
            "macs_g": pub.macs_g,
            "resolution": pub.resolution,
            "source": pub.source,
            "ref": pub.ref,
            "counter": pub.counter,
            "counter_evidence": pub.counter_evidence,
            # our MACs as that counter counts them, the figure to compare with macs_g
            "macs_as_counted": macs_as_counted(spec, pub.counter),
        },
        "notes": meta.notes,
        "id": spec.id,
    }


def cmd_zoo_list(args: argparse.Namespace) -> int:
    from search_space import zoo

    rows = [model_row(n) for n in zoo.names()]
    if args.json:
        emit(rows)
        return 0
    print(f"{'name':20} {'params':>9} {'MACs':>9} {'res':>4}  {'mixers':34} paper")
    for r in rows:
        print(
            f"{r['name']:20} {fmt_big(r['params']):>9} {fmt_big(r['macs']):>9} "
            f"{r['resolution']:>4}  {','.join(r['mixers'])[:34]:34} {r['paper']}"
        )
    return 0


def cmd_zoo_show(args: argparse.Namespace) -> int:
    from search_space import zoo

    print(zoo.get(args.name).to_json(indent=2))
    return 0


def cmd_zoo_build(args: argparse.Namespace) -> int:
    from search_space import zoo

    spec = zoo.get(args.name)
    if args.resolution:
        side = (args.resolution, args.resolution)
        spec = spec.replace(input=dataclasses.replace(spec.input, resolution=side))
    info = {"name": args.name, **built_info(spec, args.seed)}
    del info["modules"]
    cost = info["analytic"]
    if args.json:
        emit(info)
        return 0
    print(f"{args.name} ({spec.id}): depths {spec.depths}, widths {spec.widths}")
    print(
        f"  params {fmt_int(info['params'])} (built), {fmt_int(cost['params'])} (analytic)\n"
        f"  MACs {fmt_int(info['macs'])} (counted), {fmt_int(cost['macs'])} (analytic)\n"
        f"  input {info['input_shape']} -> output {info['output_shape']}"
    )
    return 0


def add_to(sub: Any) -> None:
    zoo = sub.add_parser("zoo", help="architectures of the seed papers").add_subparsers(
        dest="zoo_command", required=True
    )
    listing = zoo.add_parser("list", help="every model with its paper, mixers and costs")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_zoo_list)

    show = zoo.add_parser("show", help="a model's spec as JSON")
    show.add_argument("name")
    show.set_defaults(func=cmd_zoo_show)

    build = zoo.add_parser("build", help="build a model, run it forward, print its costs")
    build.add_argument("name")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument(
        "--resolution", type=int, default=0, help="input side to build at (default: the model's)"
    )
    build.add_argument("--json", action="store_true")
    build.set_defaults(func=cmd_zoo_build)
