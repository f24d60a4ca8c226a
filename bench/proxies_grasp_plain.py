"""Why grasp and plain disagreed with NASLib on NAS-Bench-201: the checks behind the reading in
docs/benchmarks.md ("Why grasp and plain disagreed with NASLib").

For a seeded sample of NB201 cells of NAS-Bench-Suite-Zero's subset, prints the Spearman
correlation with NASLib's score and with NATS test accuracy of

- grasp with ``H g`` by exact double backward (mixnas's `grasp`, two initialisation seeds) and by
  the central finite difference mixnas used before (`gradient._hvp_finite_difference`);
- plain for several initialisation seeds, and how those seeds agree with each other.

    python bench/proxies_grasp_plain.py --cells 60 --seeds 3
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.proxies_nb201 import _batch, _cells
from search_space.spec import ArchSpec


def grasp_finite_difference(
    spec: ArchSpec, data: tuple[torch.Tensor, torch.Tensor], seed: int
) -> float:
    """mixnas's former grasp: ``-sum w * H g`` with a finite-difference ``H g``."""
    from evaluators.proxies.gradient import _grads, _hvp_finite_difference
    from evaluators.proxies.registry import real
    from search_space import build_model

    model = build_model(spec, seed=seed)
    ws, gs = _grads(model, *data)
    hgs = _hvp_finite_difference(model, *data, ws, gs)
    return float(
        sum(
            -(real(w).detach().double() * real(h).double()).sum()
            for w, h in zip(ws, hgs, strict=True)
        )
    )


def main(argv: list[str] | None = None) -> int:
    from evaluators.proxies import compute
    from search_space.spaces.nb201 import from_arch_str

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=3, help="initialisation seeds for plain")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sample-seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cells = _cells("cifar10", None).sample(args.cells, random_state=args.sample_seed)
    data = _batch("cifar10", "digits", args.batch_size, 0)
    rows = []
    for arch in cells.arch:
        spec = from_arch_str(arch, dataset="cifar10")
        row = {"grasp_fd": grasp_finite_difference(spec, data, 0)}
        for s in range(max(args.seeds, 2)):
            scores = compute(spec, ["grasp", "plain"], data=data, seed=s)
            if s < 2:
                row[f"grasp_exact_seed{s}"] = scores["grasp"]
            if s < args.seeds:
                row[f"plain_seed{s}"] = scores["plain"]
        rows.append(row)
    table = pd.DataFrame(rows, index=cells.index)
    print(f"{args.cells} cifar10 cells, digits batch {args.batch_size}; Spearman with:")
    print(f"{'score':20s} {'NASLib grasp':>13s} {'NASLib plain':>13s} {'test acc':>9s}")
    for col in table:
        print(
            f"{col:20s} {spearmanr(table[col], cells['naslib:grasp'])[0]:13.3f} "
            f"{spearmanr(table[col], cells['naslib:plain'])[0]:13.3f} "
            f"{spearmanr(table[col], cells.test_accuracy)[0]:9.3f}"
        )
    plains = table[[c for c in table if c.startswith("plain")]]
    print("plain, seed against seed (Spearman):")
    print(plains.corr("spearman").round(3).to_string())
    naslib_plain = spearmanr(cells["naslib:plain"], cells.test_accuracy)[0]
    print(f"NASLib's plain vs test acc on these cells: {naslib_plain:.3f}")
    print(
        f"NASLib's grasp vs test acc on these cells: "
        f"{spearmanr(cells['naslib:grasp'], cells.test_accuracy)[0]:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
