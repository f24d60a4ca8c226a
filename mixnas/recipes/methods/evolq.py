"""Evol-Q's stage: PTQ of a trained model, then the evolutionary scale search, against the PTQ
baseline (the algorithm is `evaluators.quant_evolution`).

The trained folder holds the float model (trained with every layer in float); ``quantized_spec``
is the same architecture with the policy to quantize to (`mixnas.recipes.methods.common
.sample_spec` writes both). Data: the trained folder's own data settings (its ``recipe.yaml``);
the calibration set is the first ``calib_size`` training images, the comparison is on the
validation split (never seen by the search) and on the test split when the data has one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def run(out_dir: Path, config: Mapping[str, Any], *, quiet: bool = True) -> dict[str, Any]:
    import torch

    from evaluators.data import load_dataset
    from evaluators.fulltrain import load_recipe, load_trained
    from evaluators.quant_evolution import EvolQConfig, evolve_scales, quantize_ptq
    from search_space import build_model
    from search_space.declare.loader import load_spec

    trained = Path(config["trained"])
    _, float_model = load_trained(trained)
    # the policy to quantize to: the architecture trained in float, with its bit-widths
    spec = load_spec(config["quantized_spec"])
    model = build_model(spec, quantize=False)
    model.load_state_dict(float_model.state_dict())
    model.eval()
    recipe = load_recipe(trained / "recipe.yaml")
    data = load_dataset(
        recipe.data.name, spec.input, seed=recipe.data.data_seed, **dict(recipe.data.options)
    )
    known = EvolQConfig.__dataclass_fields__
    settings = EvolQConfig(**{k: config[k] for k in known if k in config})
    calib = data.x_train[: int(config.get("calib_size", 256))]
    chunks = list(calib.split(128))
    torch.manual_seed(settings.seed)
    quantized = quantize_ptq(model, spec, chunks, settings.calibration)

    def top1(net: torch.nn.Module, x: torch.Tensor | None, y: torch.Tensor | None) -> float | None:
        if x is None or y is None or len(y) == 0:
            return None
        with torch.no_grad():
            hits = sum(
                int((net(xb).argmax(1) == yb).sum())
                for xb, yb in zip(x.split(256), y.split(256), strict=True)
            )
        return 100.0 * hits / len(y)

    splits = {"val": (data.x_val, data.y_val), "test": (data.x_test, data.y_test)}
    before = {k: top1(quantized, *v) for k, v in splits.items()}
    fp32 = {k: top1(model, *v) for k, v in splits.items()}
    result = evolve_scales(quantized, model, spec, calib, settings)
    after = {k: top1(quantized, *v) for k, v in splits.items()}
    summary = {
        "spec": spec.id,
        "settings": settings.__dict__,
        "calib_size": len(calib),
        "fp32": fp32,
        "ptq": before,
        "evolq": after,
        "loss": {"ptq": result.baseline_loss, "evolq": result.final_loss},
        "accepted": result.accepted,
        "tried": result.tried,
        "history": result.history,
    }
    (out_dir / "evolq.json").write_text(json.dumps(summary, indent=2))
    return {
        "summary": str(out_dir / "evolq.json"),
        "fp32_top1": fp32["val"],
        "ptq_top1": before["val"],
        "evolq_top1": after["val"],
        "gain": None if after["val"] is None else after["val"] - (before["val"] or 0.0),
        "ptq_loss": result.baseline_loss,
        "evolq_loss": result.final_loss,
    }
