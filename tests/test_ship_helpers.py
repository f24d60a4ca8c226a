"""Helpers for the ``mixnas ship`` tests: a tiny space, a run that measured latency, and trained
folders made by hand (the contract of `evaluators.fulltrain.checkpoint`), so that shipping is
tested without training. The one test here checks the helper itself."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

TINY_SPACE: dict[str, Any] = {
    "name": "tiny_ship",
    "input": {"kind": "image", "channels": 3, "resolution": 16, "num_classes": 4},
    "stem": [{"name": "patch_embed", "patch_size": 4}],
    "num_stages": [1],
    "token_mixers": {"pooling": {}, "attention": {"head_dim": [8]}},
    "channel_mixers": {"mlp": {"ratio": [2.0]}},
    "stages": [{"depth": [2], "width": [16], "token_mixers": ["pooling", "attention"]}],
    "head": {"name": "classifier", "pool": "gap"},
}
DATA = {"name": "synthetic", "options": {"size": 300}, "data_seed": 0, "test_fraction": 0.2}


def tiny_space(weight_bits: int = 32) -> Any:
    from search_space.declare.space import SearchSpace

    declaration = dict(TINY_SPACE)
    if weight_bits < 32:
        declaration["quantization"] = {
            "weight_bits": [weight_bits],
            "act_bits": [8],
            "granularity": ["per_channel"],
        }
    return SearchSpace.from_dict(declaration, source="tiny_ship")


def tiny_spec(weight_bits: int = 32, seed: int = 0) -> Any:
    return tiny_space(weight_bits).sample(np.random.default_rng(seed))


def make_trained(
    root: Path,
    spec: Any,
    *,
    source: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    perturb: float = 0.5,
    test_top1: float = 61.5,
) -> Path:
    """A trained folder as ``mixnas train`` writes it: the spec's model with weights moved away
    from their initial values by seeded noise of scale ``perturb`` (a stand-in for training),
    best.pt/last.pt, spec.json, recipe.yaml and train_record.json."""
    import torch

    from search_space import build_model

    model = build_model(spec, seed=0)
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(perturb * torch.randn(p.shape, generator=gen))
    (root / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), root / "checkpoints" / "best.pt")
    torch.save(model.state_dict(), root / "checkpoints" / "last.pt")
    (root / "spec.json").write_text(spec.to_json())
    (root / "recipe.yaml").write_text("epochs: 1\n")
    record = {
        "spec_id": spec.id,
        "data": dict(data or DATA),
        "params": sum(p.numel() for p in model.parameters()),
        "best_val_top1": 60.0,
        "test_top1": test_top1,
        "seconds": 1.0,
        "source": source,
    }
    (root / "train_record.json").write_text(json.dumps(record))
    return root


def latency_run(runs_dir: Path, weight_bits: int = 32, name: str = "shiprun") -> Any:
    """A 3-trial run over the tiny space whose trials' ``latency_ms@host`` was measured by the
    ``latency`` evaluator (the default search's way, few repeats)."""
    from mixnas.config import parse_config
    from mixnas.driver import run_search

    declaration = dict(TINY_SPACE)
    if weight_bits < 32:
        declaration["quantization"] = {
            "weight_bits": [weight_bits],
            "act_bits": [8],
            "granularity": ["per_channel"],
        }
    config = {
        "name": name,
        "seed": 0,
        "space": declaration,
        "objectives": [
            {"metric": "latency_ms@host", "direction": "minimize"},
            {"metric": "params", "direction": "minimize"},
        ],
        "evaluators": [{"name": "latency", "options": {"threads": 1, "warmup": 1, "repeats": 3}}],
        "strategy": {"name": "random"},
        "budget": {"trials": 3},
        "backend": {"name": "local", "workers": 0},  # in the driver: no worker processes
        "runs_dir": str(runs_dir),
        "export": None,
    }
    return run_search(parse_config(config), quiet=True)


def plant_metric(run_dir: Path, trial_id: int, metric: str, value: float) -> None:
    """Overwrites one metric of one trial in the run's records (a planted search value)."""
    from mixnas.records import DB_NAME

    with sqlite3.connect(run_dir / DB_NAME) as conn:
        (text,) = conn.execute(
            "SELECT metrics FROM trials WHERE trial_id = ?", (trial_id,)
        ).fetchone()
        metrics = json.loads(text)
        metrics[metric] = value
        conn.execute(
            "UPDATE trials SET metrics = ? WHERE trial_id = ?", (json.dumps(metrics), trial_id)
        )


def test_made_folder_holds_perturbed_weights_that_load(tmp_path: Path) -> None:
    import torch

    from mixnas.shipping import read_trained
    from search_space import build_model

    spec = tiny_spec()
    folder = read_trained(make_trained(tmp_path / "t", spec))
    fresh = build_model(spec, seed=0).state_dict()
    assert any(not torch.equal(fresh[k], folder.weights[k]) for k in fresh)
