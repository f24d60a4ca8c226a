"""Scaling families on offline data: proxy-guided growth vs compound vs uniform width scaling.

Two base specs of the `hybrid_cpu` space at 32x32 (a conv-heavy one and an attention-heavy one,
the first seeded samples that fit each description, made float) are scaled to four MAC budgets by
three rules (`search_space.scaling`): As-ViT-style proxy-guided growth (linear regions + NTK
condition), EfficientNet compound scaling (B0's coefficients) and uniform width scaling. Every
member is trained with the same short budget on scikit-learn's bundled digits (offline) and the
table says, per base and budget, which rule's member reached the best validation accuracy. A
power law error(MACs) = a MACs^-b (`mixnas.scaling.laws`, plain form: three points cannot pin
an offset) is fitted to the three smaller members of each family and predicts the largest; the
table gives its error. Finally the two designs are compared by their fitted curves.

    python bench/scaling.py --steps 300 --workers 2 --out docs/benchmarks.md \
        --figure docs/figures/scaling.svg
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import math
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_nb201 import write_section

TITLE = "## Scaling families on digits (`bench/scaling.py`)"
RULES = ("proxy", "compound", "width")
ATTENTION = {"attention", "window_attention", "sr_attention", "linear_attention"}
CONV = {"dwconv", "sepconv", "lka"}


def _float(spec: Any) -> Any:
    """The spec without quantization: fake quantization would blur the scaling comparison."""
    from search_space.spec import FLOAT

    stages = tuple(
        replace(st, blocks=tuple(replace(b, quant=FLOAT) for b in st.blocks)) for st in spec.stages
    )
    return spec.replace(stages=stages, boundary_quant=FLOAT)


def pick_bases(seed: int, max_macs: float) -> dict[str, Any]:
    """The first samples of `hybrid_cpu` (3 stages, under ``max_macs``) whose blocks are all
    convolutions (conv-heavy), and at least half attention (attention-heavy)."""
    from search_space import load_space, spec_cost

    space = load_space("hybrid_cpu")
    rng = np.random.default_rng(seed)
    found: dict[str, Any] = {}
    for _ in range(5000):
        spec = space.sample(rng)
        if len(spec.stages) != 3 or spec_cost(spec).macs > max_macs:
            continue
        names = [b.token_mixer.name for b in spec.blocks]
        if "conv" not in found and all(n in CONV for n in names):
            found["conv"] = _float(spec)
        if "attn" not in found and sum(n in ATTENTION for n in names) >= len(names) / 2:
            found["attn"] = _float(spec)
        if len(found) == 2:
            return found
    raise RuntimeError("no conv-heavy / attention-heavy pair in 5000 samples")


def train(job: dict[str, Any]) -> dict[str, Any]:
    """Trains one member; runs in a worker process."""
    import torch

    from evaluators import EvalContext, create
    from search_space.spec import ArchSpec

    torch.set_num_threads(1)
    spec = ArchSpec.from_json(job["spec"])
    start = time.perf_counter()
    result = create("train", batch_size=64).evaluate(
        spec, EvalContext(seed=job["seed"], budget={"steps": job["steps"]}, data="digits")
    )
    return {
        "id": spec.id,
        "seed": job["seed"],
        "top1": result.metrics.get("top1", math.nan) if result.ok else math.nan,
        "loss": result.metrics.get("loss", math.nan) if result.ok else math.nan,
        "error": result.error,
        "seconds": time.perf_counter() - start,
    }


def _law_error(macs: list[float], err: list[float]) -> tuple[float, float, float]:
    """Fits error = a MACs^-b on all but the largest member; (predicted, actual, |diff|)."""
    from mixnas.scaling.laws import fit_power_law

    pairs = sorted(set(zip(macs, err, strict=True)))
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    if len(set(xs[:-1])) < 2:
        return math.nan, ys[-1], math.nan
    law = fit_power_law(xs[:-1], ys[:-1], form="plain", bootstrap=0)
    pred = float(law.predict(xs[-1]))
    return pred, ys[-1], abs(pred - ys[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="3e6,6e6,1.2e7,2.4e7", help="MAC budgets")
    parser.add_argument("--steps", type=int, default=300, help="training steps per member")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per member")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="picks the base specs")
    parser.add_argument("--out", type=Path, help="markdown file whose section to rewrite")
    parser.add_argument("--figure", type=Path, help="SVG of error vs MACs per family")
    parser.add_argument("--json", type=Path, help="write every member and result here")
    args = parser.parse_args(argv)
    from mixnas.scaling.family import Budget, make_family
    from mixnas.scaling.laws import compare, fit_power_law
    from search_space import spec_cost

    t0 = time.perf_counter()
    budgets = tuple(float(b) for b in args.budgets.split(","))
    bases = pick_bases(args.seed, budgets[0])
    families: dict[tuple[str, str], list[Any]] = {}
    scale_seconds: dict[tuple[str, str], float] = {}
    for bname, base in bases.items():
        for rule in RULES:
            start = time.perf_counter()
            families[bname, rule] = make_family(base, Budget("macs", budgets), rule)
            scale_seconds[bname, rule] = time.perf_counter() - start
            print(f"{bname}/{rule}: {scale_seconds[bname, rule]:.1f} s", file=sys.stderr)
    specs = {m.spec.id: m.spec for fam in families.values() for m in fam}
    jobs = [
        {"spec": s.to_json(), "steps": args.steps, "seed": seed}
        for s in specs.values()
        for seed in range(args.seeds)
    ]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(train, jobs))
    top1: dict[str, float] = {}
    for sid in specs:
        vals = [r["top1"] for r in results if r["id"] == sid]
        top1[sid] = float(np.mean(vals))
    train_secs = [r["seconds"] for r in results]

    # -- the table: per base and budget, each rule's member and accuracy -------------------------
    lines = [
        "| base | MAC budget | "
        + " | ".join(f"{r}: MACs / dims / top-1" for r in RULES)
        + " | best |",
        "|---|---|" + "---|" * len(RULES) + "---|",
    ]
    wins = {r: 0 for r in RULES}
    losses = []
    for bname in bases:
        for k, b in enumerate(budgets):
            cells, accs = [], {}
            for rule in RULES:
                m = families[bname, rule][k]
                acc = top1[m.spec.id]
                accs[rule] = acc
                d = m.dims
                cells.append(
                    f"{m.cost / 1e6:.2f}M / {'-'.join(map(str, d.depths))} x "
                    f"{'-'.join(map(str, d.widths))} @{d.resolution} / {acc:.1f}"
                )
            best = max(accs, key=lambda r: accs[r])
            ties = [r for r in RULES if accs[r] == accs[best]]
            for r in ties:
                wins[r] += 1
            if "proxy" not in ties:
                losses.append(
                    f"{bname} at {b / 1e6:g}M ({accs['proxy']:.1f} vs {best} {accs[best]:.1f})"
                )
            lines.append(
                f"| {bname} | {b / 1e6:g}M | " + " | ".join(cells) + f" | {'/'.join(ties)} |"
            )
    table = "\n".join(lines)

    # -- laws: predict the largest member from the smaller ones ----------------------------------
    law_lines = [
        "| base | rule | predicted error % | actual error % | abs. error (points) |",
        "|---|---|---|---|---|",
    ]
    law_errs = []
    for (bname, rule), fam in families.items():
        macs = [float(spec_cost(m.spec).macs) for m in fam]
        err = [100.0 - top1[m.spec.id] for m in fam]
        pred, actual, diff = _law_error(macs, err)
        law_errs.append(diff)
        law_lines.append(f"| {bname} | {rule} | {pred:.2f} | {actual:.2f} | {diff:.2f} |")
    law_table = "\n".join(law_lines)

    # -- compare the two designs by curves fitted to all members of all rules -------------------
    curves = {}
    for bname in bases:
        pts = sorted(
            {
                (float(spec_cost(m.spec).macs), 100.0 - top1[m.spec.id])
                for rule in RULES
                for m in families[bname, rule]
            }
        )
        curves[bname] = fit_power_law([p[0] for p in pts], [p[1] for p in pts], form="plain")
    x_next = 2 * budgets[-1]
    cmp = compare(curves["conv"], curves["attn"], x_next)

    if args.figure:
        from mixnas.report.svg import line_chart

        series = {}
        for (bname, rule), fam in families.items():
            xs = [math.log10(spec_cost(m.spec).macs) for m in fam]
            series[f"{bname}/{rule}"] = (xs, [100.0 - top1[m.spec.id] for m in fam])
        for bname, law in curves.items():
            grid = np.linspace(math.log10(budgets[0] / 2), math.log10(x_next), 30)
            series[f"{bname} law"] = (list(grid), list(law.predict(10**grid)))
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        args.figure.write_text(
            line_chart(
                series,
                title="validation error vs MACs (digits, short training)",
                xlabel="log10 MACs",
                ylabel="error %",
            )
        )

    elapsed = time.perf_counter() - t0
    command = "python bench/scaling.py " + " ".join(argv if argv is not None else sys.argv[1:])
    base_desc = "; ".join(
        f"{n}: {'|'.join(','.join(b.token_mixer.name for b in st.blocks) for st in s.stages)} "
        f"({spec_cost(s).macs / 1e6:.2f}M MACs, id {s.id})"
        for n, s in bases.items()
    )
    fig_note = (
        f"\n\n![error vs MACs]({os.path.relpath(args.figure, args.out.parent)})"
        if (args.figure and args.out)
        else ""
    )
    c_law, a_law = curves["conv"], curves["attn"]
    section = "\n".join(
        [
            TITLE,
            "",
            f"Command: `{command}`. Bases (float, from `hybrid_cpu` at 32x32, seed {args.seed}): "
            f"{base_desc}. Each member trained {args.steps} steps (AdamW, cosine, batch 64) on "
            f"scikit-learn's digits, {args.seeds} seed(s), validation top-1 in %. "
            f"{len(specs)} distinct members, median {np.median(train_secs):.1f} s of training "
            f"each; scaling itself took {sum(scale_seconds.values()):.0f} s (the proxy rule "
            f"{sum(v for k, v in scale_seconds.items() if k[1] == 'proxy'):.0f} s of it). "
            f"{platform.platform()}, {args.workers} workers, {elapsed / 60:.1f} minutes in all. "
            "Dims: depths x widths @ resolution. Rules: `proxy` = As-ViT growth scored by "
            "linear_regions + ntk_cond, `compound` = EfficientNet-B0 coefficients (1.2, 1.1, "
            "1.15), `width` = uniform width.",
            "",
            table,
            "",
            f"Wins (ties count for each): {', '.join(f'{r} {n}' for r, n in wins.items())}. "
            f"Where proxy-guided growth loses: {'; '.join(losses) if losses else 'nowhere'}.",
            "",
            "Scaling law error(MACs) = a MACs^-b fitted to the three smaller members of each "
            "family, predicting the largest:",
            "",
            law_table,
            "",
            f"Median absolute error of the held-out prediction: {np.nanmedian(law_errs):.2f} "
            "points of error.",
            "",
            f"Designs compared by curves fitted to all their members: conv error = "
            f"{c_law.a:.3g} MACs^({-c_law.b:.3f}), attention error = {a_law.a:.3g} "
            f"MACs^({-a_law.b:.3f}); at {x_next / 1e6:g}M MACs conv predicts "
            f"{cmp['first']:.2f}% and attention {cmp['second']:.2f}%, P(conv lower) = "
            f"{cmp['p_first_lower']:.2f} over 200 bootstrap refits." + fig_note,
            "",
        ]
    )
    print(section)
    if args.out:
        write_section(args.out, section)
    if args.json:
        payload = {
            "command": command,
            "members": {
                f"{b}/{r}": [
                    {"budget": m.budget, "id": m.spec.id, "macs": m.cost, "top1": top1[m.spec.id]}
                    for m in fam
                ]
                for (b, r), fam in families.items()
            },
            "results": results,
        }
        args.json.write_text(json.dumps(payload, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
