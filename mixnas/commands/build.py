"""``mixnas build SPEC.json``: rebuild a spec (or an exported record) and count its costs."""

from __future__ import annotations

import argparse
from typing import Any

from mixnas.commands.common import emit, fmt_int


def read_spec(path: str) -> Any:
    """A spec file or an exported record, checked (`search_space.declare.loader.load_spec`)."""
    from search_space.declare.loader import load_spec

    return load_spec(path)


def built_info(spec: Any, seed: int) -> dict[str, Any]:
    """Builds ``spec``'s model, runs one forward pass, counts params and MACs next to the
    analytic costs (shared by ``mixnas build`` and ``mixnas zoo build``)."""
    import torch

    from evaluators.counting import count_macs
    from search_space import build_model, example_input, spec_cost
    from search_space.nn.builder import count_params, summary

    model = build_model(spec, seed=seed).eval()
    x = example_input(spec, batch_size=1)
    with torch.no_grad():
        out = model(x)
    return {
        "id": spec.id,
        "params": count_params(model),
        "macs": count_macs(model, x),
        "analytic": spec_cost(spec).to_dict(),
        "input_shape": list(x.shape),
        "output_shape": list(out.shape),
        "modules": summary(model),
    }


def cmd_build(args: argparse.Namespace) -> int:
    spec = read_spec(args.spec)
    info = built_info(spec, args.seed)
    cost = info["analytic"]
    if args.json:
        emit(info)
        return 0
    print(f"spec {spec.id}: {len(spec.stages)} stages, depths {spec.depths}, widths {spec.widths}")
    for row in info["modules"]:
        print(f"  {row['module']:10} {fmt_int(row['params']):>14} params")
    print(
        f"  params {fmt_int(info['params'])}  MACs {fmt_int(info['macs'])} (counted), "
        f"{fmt_int(cost['macs'])} (analytic)"
    )
    print(
        f"  bytes {fmt_int(cost['bytes'])}  bitops {fmt_int(cost['bitops'])}  "
        f"activation bytes {fmt_int(cost['activation_bytes'])}"
    )
    print(f"  input {info['input_shape']} -> output {info['output_shape']}")
    return 0


def add_to(sub: Any) -> None:
    build = sub.add_parser("build", help="build a spec's model and count its costs")
    build.add_argument("spec", help="ArchSpec JSON file (or an exported record)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--json", action="store_true")
    build.set_defaults(func=cmd_build)
