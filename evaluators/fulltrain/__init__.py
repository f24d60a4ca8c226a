"""Full training of one spec: from a search's winner to trained weights (``mixnas train``).

`train_spec` trains a spec to completion with a `TrainRecipe` (AdamW, cosine schedule with warm-up,
label smoothing, mixup/CutMix, EMA, early stopping; every knob in a YAML file with defaults), on
one device or as the ranks of a torch.distributed group, resumable after a kill; `load_trained`
reads the best weights back. The output folder's layout is described in
`evaluators.fulltrain.checkpoint` and docs/training.md.
"""

from evaluators.fulltrain.checkpoint import Layout, read_metrics
from evaluators.fulltrain.recipe import (
    DataRecipe,
    TrainError,
    TrainRecipe,
    load_recipe,
    recipe_from_dict,
    recipe_to_dict,
)
from evaluators.fulltrain.run import TrainResult, load_trained, train_spec

__all__ = [
    "DataRecipe",
    "Layout",
    "TrainError",
    "TrainRecipe",
    "TrainResult",
    "load_recipe",
    "load_trained",
    "read_metrics",
    "recipe_from_dict",
    "recipe_to_dict",
    "train_spec",
]
