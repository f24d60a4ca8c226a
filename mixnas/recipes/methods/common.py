"""Python stages several recipes share."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def sample_spec(out_dir: Path, config: Mapping[str, Any], *, quiet: bool = True) -> dict[str, Any]:
    """Writes one spec of ``config["space"]`` (``space.sample(seed)``; a space of one point
    declares a fixed model) to ``spec.json``; outputs ``spec`` (the path), ``id``, ``params``,
    ``macs``, and ``float_spec``: the same architecture with every layer in float
    (``float_spec.json``), for methods that train in float and quantize afterwards."""
    from search_space import load_space, spec_cost
    from search_space.quant import float_policy

    spec = load_space(config["space"]).sample(int(config.get("seed", 0)))
    path = out_dir / "spec.json"
    path.write_text(spec.to_json(indent=2))
    float_path = out_dir / "float_spec.json"
    float_path.write_text(float_policy(spec).to_json(indent=2))
    cost = spec_cost(spec)
    return {
        "spec": str(path),
        "float_spec": str(float_path),
        "id": spec.id,
        "params": cost.params,
        "macs": cost.macs,
    }
