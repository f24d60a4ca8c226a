"""MatFormer (Devvrit et al., "MatFormer: Nested Transformer for Elastic Inference", 2023): one
nested model, many sub-models by Mix'n'Match of per-layer MLP granularities, no retraining.

`granularities` writes the g "uniform" sub-models (every layer at the same granularity: the
models MatFormer trains explicitly); the recipe's search evaluates them first and then searches
Mix'n'Match combinations with inherited weights under a MACs budget; `summarise` compares the two:
for each uniform model, the best Mix'n'Match sub-model at no more MACs, and writes the table and
a figure of top-1 against MACs.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mixnas.recipes.recipe import RecipeError


@dataclass(frozen=True)
class _Point:
    ratios: tuple[float, ...]
    top1: float
    macs: float

    @property
    def uniform(self) -> bool:
        return len(set(self.ratios)) == 1


def layer_ratios(spec: Any) -> tuple[float, ...]:
    """Each layer's MLP ratio (its granularity) in the order of the layers."""
    return tuple(
        float(dict(block.channel_mixer.params)["ratio"])
        for stage in spec.stages
        for block in stage.blocks
    )


def granularities(
    out_dir: Path, config: Mapping[str, Any], *, quiet: bool = True
) -> dict[str, Any]:
    """One spec file per granularity shared by every layer, found among the space's specs."""
    from search_space import load_space

    space = load_space(config["space"])
    uniform: dict[float, Any] = {}
    for spec in space.enumerate(limit=int(config.get("limit", 100_000))):
        ratios = set(layer_ratios(spec))
        if len(ratios) == 1:
            uniform.setdefault(ratios.pop(), spec)
    if len(uniform) < 2:
        raise RecipeError(str(config["space"]), "channel_mixers", "fewer than two granularities")
    files = []
    for ratio, spec in sorted(uniform.items()):
        path = out_dir / f"granularity-{ratio:g}-{spec.id}.json"
        path.write_text(spec.to_json(indent=2))
        files.append(str(path))
    return {"specs": files, "count": len(files)}


def summarise(out_dir: Path, config: Mapping[str, Any], *, quiet: bool = True) -> dict[str, Any]:
    """Uniform granularities against the best Mix'n'Match sub-model at no more MACs."""
    from mixnas.report.data import RunData
    from mixnas.report.svg import PALETTE, PointGroup, scatter_chart
    from search_space import ArchSpec

    run = RunData.load(Path(config["run_dir"]))
    ok = [i for i, status in enumerate(run.trials.status) if status == "ok"]
    points = []
    for record in run.records_of(ok):
        if "top1" not in record.metrics or "macs" not in record.metrics:
            continue
        ratios = layer_ratios(ArchSpec.from_dict(dict(record.spec)))
        points.append(_Point(ratios, float(record.metrics["top1"]), float(record.metrics["macs"])))
    uniform = sorted((p for p in points if p.uniform), key=lambda p: p.macs)
    mixed = [p for p in points if not p.uniform]
    if not uniform:
        raise RecipeError(str(run.run_dir), "trials", "no uniform granularity finished")
    rows = []
    for point in uniform:
        cheaper = [m for m in mixed if m.macs <= point.macs]
        best = max(cheaper, key=lambda m: m.top1) if cheaper else None
        rows.append(
            {
                "granularity": point.ratios[0],
                "uniform_macs": point.macs,
                "uniform_top1": point.top1,
                "mixnmatch_top1": best.top1 if best else "",
                "mixnmatch_macs": best.macs if best else "",
                "mixnmatch_ratios": " ".join(f"{r:g}" for r in best.ratios) if best else "",
                "gain": round(best.top1 - point.top1, 3) if best else "",
            }
        )
    table = out_dir / "matformer.csv"
    with table.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    groups = [
        PointGroup(
            "Mix'n'Match",
            PALETTE[0],
            [m.macs / 1e6 for m in mixed],
            [m.top1 for m in mixed],
            kind="mixnmatch",
        ),
        PointGroup(
            "uniform granularity",
            PALETTE[1],
            [u.macs / 1e6 for u in uniform],
            [u.top1 for u in uniform],
            shape="square",
            kind="uniform",
        ),
    ]
    figure = out_dir / "matformer.svg"
    figure.write_text(
        scatter_chart(
            groups,
            title="MatFormer sub-models: inherited top-1 against MACs",
            xlabel="MACs (M)",
            ylabel="inherited top-1 (%)",
        )
    )
    gains = [float(r["gain"]) for r in rows if r["gain"] != ""]
    return {
        "table": str(table),
        "figures": [str(figure)],
        "uniform": len(uniform),
        "mixnmatch": len(mixed),
        "best_top1": max(p.top1 for p in points),
        "mean_gain": float(np.mean(gains)) if gains else None,
    }
