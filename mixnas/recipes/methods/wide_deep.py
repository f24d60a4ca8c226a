"""Wide vs deep attention (Brown et al., "Wide Attention Is The Way Forward For Transformers?",
2022): at a fixed total number of attention heads, is one wide layer better than many narrow ones?

`sweep_specs` picks, from a declared isotropic attention space, one spec per depth with
``depth x heads per layer = total_heads`` (heads per layer = width / head size); a search stage
then evaluates exactly those (its ``initial`` list, its trial budget their number); `summarise`
reads that search back and writes the per-point table and the figure (accuracy, latency and
memory against depth) that the run's report shows.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mixnas.recipes.recipe import RecipeError


def depth_and_heads(spec: Any) -> tuple[int, int | None]:
    """(layers, heads per layer) of a one-stage attention spec; heads None when they differ."""
    (stage,) = spec.stages
    heads = {stage.width // int(dict(b.token_mixer.params)["head_dim"]) for b in stage.blocks}
    return len(stage.blocks), heads.pop() if len(heads) == 1 else None


def sweep_specs(out_dir: Path, config: Mapping[str, Any], *, quiet: bool = True) -> dict[str, Any]:
    """One spec file per depth of the space whose layers hold ``total_heads`` heads in all."""
    from search_space import load_space

    space = load_space(config["space"])
    total = int(config["total_heads"])
    points: dict[int, Any] = {}
    for spec in space.enumerate(limit=int(config.get("limit", 100_000))):
        depth, heads = depth_and_heads(spec)
        if heads is not None and depth * heads == total:
            points.setdefault(depth, spec)
    if len(points) < 2:
        raise RecipeError(
            str(config["space"]),
            "total_heads",
            f"{total}: fewer than two depths of the space reach it (depth x width / head size)",
        )
    files = []
    for depth, spec in sorted(points.items()):
        path = out_dir / f"depth-{depth}-{spec.id}.json"
        path.write_text(spec.to_json(indent=2))
        files.append(str(path))
    return {"specs": files, "count": len(files), "depths": sorted(points)}


POINT_METRICS = {  # metric: (figure file, axis label)
    "top1": ("wide_deep_top1.svg", "validation top-1 (%)"),
    "latency_ms@host": ("wide_deep_latency.svg", "latency on this host (ms)"),
    "activation_bytes": ("wide_deep_memory.svg", "activation memory (bytes)"),
}


def summarise(out_dir: Path, config: Mapping[str, Any], *, quiet: bool = True) -> dict[str, Any]:
    """The sweep's table (``wide_deep.csv``) and one figure per metric against depth."""
    from mixnas.report.data import RunData
    from mixnas.report.svg import line_chart
    from search_space import ArchSpec

    run = RunData.load(Path(config["run_dir"]))
    ok = [i for i, status in enumerate(run.trials.status) if status == "ok"]
    points = []
    for record in run.records_of(ok):
        depth, heads = depth_and_heads(ArchSpec.from_dict(dict(record.spec)))
        point: dict[str, Any] = {"depth": depth, "heads_per_layer": heads}
        metrics = record.metrics
        point.update({m: metrics[m] for m in (*POINT_METRICS, "params") if m in metrics})
        points.append(point)
    if not points:
        raise RecipeError(str(run.run_dir), "trials", "no point of the sweep finished")
    points.sort(key=lambda p: p["depth"])
    table = out_dir / "wide_deep.csv"
    with table.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=sorted({k for p in points for k in p}))
        writer.writeheader()
        writer.writerows(points)
    figures = []
    for metric, (name, label) in POINT_METRICS.items():
        xy = [(p["depth"], p[metric]) for p in points if metric in p]
        if not xy:
            continue
        xs, ys = zip(*xy, strict=True)
        svg = line_chart(
            {metric: (xs, ys)},
            title=f"{label} against depth, {config.get('total_heads', '?')} heads in all",
            xlabel="depth (layers); heads per layer = total / depth",
            ylabel=label,
        )
        (out_dir / name).write_text(svg)
        figures.append(str(out_dir / name))
    best = max(points, key=lambda p: p.get("top1", float("-inf")))
    (out_dir / "wide_deep.json").write_text(json.dumps(points, indent=2))
    return {
        "table": str(table),
        "figures": figures,
        "best_depth": best["depth"],
        "best_top1": best.get("top1"),
        "points": len(points),
    }
