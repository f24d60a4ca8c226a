"""MPCViT (Zeng et al., "MPCViT: Searching for Accurate and Efficient MPC-Friendly Vision
Transformer with Heterogeneous Attention", ICCV 2023): which blocks can drop the softmax (and
GeLU) for cheaper attention under secure two-party inference, and what it costs in accuracy.

`baseline` writes the space's all-softmax, all-GeLU model (the ViT MPCViT starts from), which the
search evaluates first; `summarise` reads the search back: the baseline's inherited top-1 and MPC
time against the front, and the fastest model within ``tolerance`` points of the baseline's
accuracy (MPCViT's headline: equal accuracy at a fraction of the latency).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mixnas.recipes.recipe import RecipeError


def baseline(out_dir: Path, config: Mapping[str, Any], *, quiet: bool = True) -> dict[str, Any]:
    """The space's model with softmax attention and GeLU MLPs in every block."""
    from search_space import ArchSpec, load_space

    space = load_space(config["space"])
    data = space.sample(0).to_dict()
    for stage in data["stages"]:
        for block in stage["blocks"]:
            block["token_mixer"]["params"]["scores"] = "softmax"
            block["channel_mixer"]["params"]["act"] = "gelu"
    spec = ArchSpec.from_dict(data)
    if not space.contains(spec):
        raise RecipeError(str(config["space"]), "token_mixers", "offers no all-softmax model")
    path = out_dir / f"baseline-{spec.id}.json"
    path.write_text(spec.to_json(indent=2))
    return {"specs": [str(path)], "id": spec.id}


def summarise(out_dir: Path, config: Mapping[str, Any], *, quiet: bool = True) -> dict[str, Any]:
    """The baseline against the searched models (see the module docstring)."""
    from mixnas.report.data import RunData

    run = RunData.load(Path(config["run_dir"]))
    records = run.records_of([i for i, s in enumerate(run.trials.status) if s == "ok"])
    rows = [
        (r.spec_id, float(r.metrics["top1"]), float(r.metrics["mpc_ms"]))
        for r in records
        if "top1" in r.metrics and "mpc_ms" in r.metrics
    ]
    base = next((row for row in rows if row[0] == config["baseline_id"]), None)
    if base is None:
        raise RecipeError(str(run.run_dir), "trials", "the all-softmax baseline did not finish")
    tolerance = float(config.get("tolerance", 0.5))
    close = [row for row in rows if row[1] >= base[1] - tolerance]
    fastest = min(close, key=lambda row: row[2])
    summary = {
        "baseline": {"spec": base[0], "top1": base[1], "mpc_ms": base[2]},
        "fastest_within_tolerance": {"spec": fastest[0], "top1": fastest[1], "mpc_ms": fastest[2]},
        "tolerance_points": tolerance,
        "speedup": base[2] / fastest[2],
        "best_top1": max(row[1] for row in rows),
        "models": len(rows),
    }
    (out_dir / "mpcvit.json").write_text(json.dumps(summary, indent=2))
    return {
        "summary": str(out_dir / "mpcvit.json"),
        "speedup": summary["speedup"],
        "baseline_top1": base[1],
        "baseline_mpc_ms": base[2],
        "fastest_top1": fastest[1],
        "fastest_mpc_ms": fastest[2],
    }
