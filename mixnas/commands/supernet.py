"""``mixnas supernet train CONFIG``: train a weight-sharing supernet into a run folder.

The config (YAML or JSON; every field but ``space`` has a default)::

    name: sn-digits          # run folder: <runs_dir>/<name> (default: the config file's stem)
    space: my_space.yaml     # built-in name, file, inline declaration, or {from: ..., ...}
    data: digits             # digits, synthetic, an .npz file or an image folder
    data_options: {}         # options of evaluators.data.load_dataset
    data_seed: 0             # seeds the split
    strict: true             # refuse ops without a weight-sharing rule
    runs_dir: runs
    supernet: {recipe: sandwich, steps: 300, batch_size: 64, num_random: 2, distill: false,
               lr: 0.002, checkpoint_every: 50, seed: 0}

The run folder gets ``supernet.pt`` (the checkpoint: weights, optimizer, step, the space
declaration and the data settings, which the ``supernet`` evaluator reads) and ``supernet.json``
(config and summary). Running the same command again resumes from the checkpoint; a finished run
is left as it is. Search over it with ``evaluators: [{name: supernet, options: {checkpoint:
RUN/supernet.pt}}]`` in a search config.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mixnas.config import ConfigError

FIELDS = ("name", "space", "data", "data_options", "data_seed", "strict", "runs_dir", "supernet")
CHECKPOINT, SUMMARY = "supernet.pt", "supernet.json"


def read_config(path: Path) -> dict[str, Any]:
    """The config as a checked mapping (see the module docstring)."""
    from search_space.declare.loader import read_declaration

    data = read_declaration(path)
    source = str(path)
    if not isinstance(data, Mapping):
        raise ConfigError("<root>", "must be a mapping", source=source)
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(unknown[0], f"unknown field; allowed: {', '.join(FIELDS)}", source=source)
    if "space" not in data:
        raise ConfigError("space", "is required", source=source)
    config = {
        "name": str(data.get("name", path.stem)),
        "space": data["space"],
        "data": data.get("data", "digits"),
        "data_options": data.get("data_options") or {},
        "data_seed": data.get("data_seed", 0),
        "strict": data.get("strict", True),
        "runs_dir": str(data.get("runs_dir", "runs")),
        "supernet": data.get("supernet") or {},
    }
    for key, kind in (("data_options", Mapping), ("supernet", Mapping), ("strict", bool)):
        if not isinstance(config[key], kind):
            raise ConfigError(key, f"must be a {kind.__name__}", source=source, value=config[key])
    if isinstance(config["data_seed"], bool) or not isinstance(config["data_seed"], int):
        raise ConfigError(
            "data_seed", "must be an integer", source=source, value=config["data_seed"]
        )
    if config["data"] is not None and not isinstance(config["data"], str):
        raise ConfigError(
            "data", "must be a dataset name or path", source=source, value=config["data"]
        )
    return config


def cmd_supernet_train(args: argparse.Namespace) -> int:
    from evaluators.data import load_dataset
    from evaluators.supernet import Supernet
    from evaluators.supernet.train import RecipeConfig, train_supernet
    from mixnas.job import _declaration, _space
    from mixnas.manifest import versions, write_json_atomic

    path = Path(args.config)
    config = read_config(path)
    source = str(path)
    try:
        recipe = RecipeConfig.from_dict(config["supernet"])
    except ValueError as err:
        raise ConfigError("supernet", str(err), source=source) from None
    declaration = _declaration(config["space"], source)
    space = _space(declaration, source)
    data_settings = {
        "name": config["data"],
        "options": dict(config["data_options"]),
        "seed": config["data_seed"],
    }
    data = load_dataset(
        config["data"], space.decl.input, seed=config["data_seed"], **config["data_options"]
    )
    run_dir = Path(args.runs_dir or config["runs_dir"]) / config["name"]
    run_dir.mkdir(parents=True, exist_ok=True)
    supernet = Supernet(space, seed=recipe.seed, strict=config["strict"])
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=recipe.steps, desc=f"supernet {config['name']}", unit="step")

    def progress(step: int, total: int, loss: float) -> None:
        if bar is not None:
            bar.n = step
            bar.set_postfix(loss=f"{loss:.3f}")

    summary = train_supernet(
        supernet,
        data,
        recipe,
        checkpoint=run_dir / CHECKPOINT,
        extra={"space": declaration, "data": data_settings},
        progress=progress,
    )
    if bar is not None:
        bar.close()
    write_json_atomic(
        run_dir / SUMMARY,
        {
            "config": {**config, "supernet": vars(recipe)},
            "space_declaration": declaration,
            "weights": sum(p.numel() for p in supernet.parameters()),
            "steps": summary["steps"],
            "train_seconds": summary["seconds"],
            "final_loss": summary["history"][-1] if summary["history"] else None,
            "versions": versions(),
        },
    )
    print(f"supernet checkpoint: {run_dir / CHECKPOINT} ({summary['steps']} steps)")
    return 0


def add_to(sub: Any) -> None:
    parser = sub.add_parser("supernet", help="weight-sharing supernets").add_subparsers(
        dest="supernet_command", required=True
    )
    train = parser.add_parser("train", help="train a supernet into a run folder (resumable)")
    train.add_argument("config", help="supernet config (.yaml/.json)")
    train.add_argument("--runs-dir", default=None, help="overrides the config's runs_dir")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_supernet_train)
