"""Benchmark of the search space: sampling, validation, analytic costs, model building and MACs.

One run reports, per space, how many specs per second are sampled, validated and costed
analytically, how many models per second are built, and how four cost counters compare on the same
built models: mixnas's analytic formulas (`spec_cost`), fvcore alone (default handles), fvcore
with mixnas's handlers (`count_macs`, the reference) and thop. A per-mixer table shows, for every
registered token mixer in one fixed context, the MACs each counter finds, which is where the peers'
blind spots (attention through SDPA, FFTs, scans) show.

    python bench/space.py                       # hybrid and isotropic, 2000 samples, 40 models
    python bench/space.py --space sequence --models 10 --json
    python bench/space.py --out docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

import search_space as ss
from evaluators.counting import EXTRA_HANDLES, count_macs
from search_space import SearchSpace
from search_space.ops import TOKEN_MIXERS, OpContext, OpDef
from search_space.ops.base import LAYOUT_GRID, LAYOUT_GRID_LAST, LAYOUT_SEQUENCE
from search_space.plan import plan

T = TypeVar("T")

DEFAULT_SPACES = ("hybrid", "isotropic")
SECTION_TITLE = "## Search space: sampling, building and cost counting (`bench/space.py`)"
# The reference every counter is compared with: fvcore plus the handlers for what it skips.
REFERENCE = "fvcore+mixnas"
# One mid-network context for the per-mixer table: a 14x14 grid (ViT-B/16 at 224 px) at width 128
# fits every mixer's default parameters (window 7 and sr_ratio 2 divide it) and is large enough
# that the quadratic attention terms fvcore misses are visible next to the projections.
MIXER_CONTEXT = OpContext(dim=128, grid=(14, 14), out_dim=128)

# (MACs, parameters or None when the counter does not report parameters)
Count = tuple[float, int | None]
Counter = Callable[[nn.Module, Any], Count]


# -- counters --------------------------------------------------------------------------------------


@contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    """Eval mode without autograd, as `count_macs` and thop count, so all counters see one graph."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _fvcore_analysis(model: nn.Module, x: Any) -> Any:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, (x,))
    # Only the warnings are silenced (they would flood stdout); the op handles stay fvcore's own.
    return analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)


def count_fvcore(model: nn.Module, x: Any) -> Count:
    """fvcore alone: `FlopCountAnalysis(...).total()` with its default handles."""
    with _inference(model):
        return float(_fvcore_analysis(model, x).total()), None


def count_fvcore_mixnas(model: nn.Module, x: Any) -> Count:
    """fvcore plus mixnas's handlers for SDPA, FFTs, RMS norm and the scan op."""
    return float(count_macs(model, x)), None


def count_thop(model: nn.Module, x: Any) -> Count:
    """thop: forward hooks on known leaf module types; returns its MACs and parameters."""
    import thop

    macs, params = thop.profile(model, inputs=(x,), verbose=False)
    return float(macs), int(params)


COUNTERS: dict[str, Counter] = {
    "fvcore": count_fvcore,
    REFERENCE: count_fvcore_mixnas,
    "thop": count_thop,
}
COUNTER_LABELS = {
    "analytic": "mixnas analytic (`spec_cost`)",
    "fvcore": "fvcore alone",
    REFERENCE: "fvcore + mixnas handlers (`count_macs`)",
    "thop": "thop",
}


def fvcore_skipped(model: nn.Module, x: Any) -> list[str]:
    """The MAC-carrying ops fvcore alone skips (those mixnas adds handlers for), by name."""
    with _inference(model):
        analysis = _fvcore_analysis(model, x)
        analysis.total()
        return sorted(op for op in analysis.unsupported_ops() if op in EXTRA_HANDLES)


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and its wall time in seconds."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _count_on_copy(counter: Counter, model: nn.Module, x: Any) -> tuple[Count, float]:
    # thop leaves buffers and hooks on the modules it profiles: each counter gets its own copy,
    # made outside the timed region, so counters neither interfere nor pay for the copy.
    fresh = copy.deepcopy(model)
    return _timed(lambda: counter(fresh, x))


# -- whole models ----------------------------------------------------------------------------------


@dataclass
class ModelRecord:
    """One sampled model counted every way.

    Attributes:
        spec_id: the spec's id.
        dominant_mixer: the token mixer with the most analytic MACs in the model.
        exact_params: ``sum(p.numel())`` of the built model.
        analytic_params, analytic_macs: `spec_cost`'s figures.
        macs: MACs per counter name (COUNTERS keys).
        params: parameters per counter that reports them (thop).
        ms: milliseconds per step: ``build``, ``analytic`` and each counter.
    """

    spec_id: str
    dominant_mixer: str
    exact_params: int
    analytic_params: int
    analytic_macs: int
    macs: dict[str, float]
    params: dict[str, int]
    ms: dict[str, float]


def dominant_mixer(spec: ss.ArchSpec) -> str:
    """The token mixer whose blocks carry the most analytic MACs in ``spec``."""
    totals: dict[str, int] = defaultdict(int)
    for item in plan(spec):
        if item.role == "token_mixer" and item.op is not None:
            totals[item.op.name] += item.op.cost(item.ctx, item.params).macs
    return max(totals, key=lambda name: totals[name]) if totals else "none"


def measure_model(spec: ss.ArchSpec) -> ModelRecord:
    """Builds ``spec`` once and counts its cost analytically and with every counter."""
    model, build_s = _timed(lambda: ss.build_model(spec, seed=0))
    cost, analytic_s = _timed(lambda: ss.spec_cost(spec))
    x = ss.example_input(spec, batch_size=1)  # batch 1: every counter reports per-sample MACs
    record = ModelRecord(
        spec_id=spec.id,
        dominant_mixer=dominant_mixer(spec),
        exact_params=sum(p.numel() for p in model.parameters()),
        analytic_params=cost.params,
        analytic_macs=cost.macs,
        macs={},
        params={},
        ms={"build": build_s * 1e3, "analytic": analytic_s * 1e3},
    )
    for name, counter in COUNTERS.items():
        (macs, params), seconds = _count_on_copy(counter, model, x)
        record.macs[name] = macs
        record.ms[name] = seconds * 1e3
        if params is not None:
            record.params[name] = params
    return record


# -- throughput ------------------------------------------------------------------------------------


@dataclass
class SpaceResult:
    """Everything measured on one space."""

    space: str
    input: str
    samples: int
    sample_per_s: float
    validate_per_s: float
    cost_per_s: float
    models: int
    build_per_s: float
    records: list[ModelRecord] = field(default_factory=list)


def _describe_input(spec: ss.ArchSpec) -> str:
    inp = spec.input
    if inp.kind == "image":
        return f"{inp.channels}x{inp.resolution[0]}x{inp.resolution[1]} image"
    return f"{inp.seq_len} tokens"


def _per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def _warm_up(space: SearchSpace) -> None:
    """One untimed sample, validation and cost, so first-call costs do not enter the rates."""
    spec = space.sample(np.random.default_rng(2**32 - 1))
    ss.validate_spec(spec)
    ss.spec_cost(spec)


def bench_space(name: str, *, n: int, models: int, seed: int) -> SpaceResult:
    """Samples ``n`` specs (timing sampling, validation and analytic cost on them) and builds and
    counts the first ``models`` specs of the same seeded stream."""
    space = ss.load_space(name)
    _warm_up(space)
    rng = np.random.default_rng(seed)
    specs, sample_s = _timed(lambda: [space.sample(rng) for _ in range(max(n, models))])
    timed = specs[:n]
    _, validate_s = _timed(lambda: [ss.validate_spec(s) for s in timed])
    _, cost_s = _timed(lambda: [ss.spec_cost(s) for s in timed])
    records = [measure_model(s) for s in specs[:models]]
    build_s = sum(r.ms["build"] for r in records) / 1e3
    return SpaceResult(
        space=name,
        input=_describe_input(specs[0]),
        samples=n,
        sample_per_s=_per_second(len(specs), sample_s),
        validate_per_s=_per_second(n, validate_s),
        cost_per_s=_per_second(n, cost_s),
        models=models,
        build_per_s=_per_second(models, build_s),
        records=records,
    )


# -- agreement summaries ---------------------------------------------------------------------------


def rel_diff_pct(value: float, reference: float) -> float:
    """|value - reference| / reference in percent (0 when both are 0)."""
    if reference == 0:
        return 0.0 if value == 0 else float("inf")
    return abs(value - reference) / reference * 100.0


@dataclass
class CounterSummary:
    """One counter over a space's models: speed, MAC agreement with the reference, parameters."""

    counter: str
    median_ms: float
    median_macs_diff_pct: float
    max_macs_diff_pct: float
    params_exact: int | None = None
    median_params_diff_pct: float | None = None
    max_params_diff_pct: float | None = None


def _macs_of(record: ModelRecord, counter: str) -> float:
    return float(record.analytic_macs) if counter == "analytic" else record.macs[counter]


def _params_of(record: ModelRecord, counter: str) -> int | None:
    return record.analytic_params if counter == "analytic" else record.params.get(counter)


def summarize_counter(records: Sequence[ModelRecord], counter: str) -> CounterSummary:
    """Median time and MAC/parameter agreement of ``counter`` (``analytic`` or a COUNTERS key)."""
    macs = [rel_diff_pct(_macs_of(r, counter), r.macs[REFERENCE]) for r in records]
    summary = CounterSummary(
        counter,
        statistics.median(r.ms[counter] for r in records),
        statistics.median(macs),
        max(macs),
    )
    params = [(_params_of(r, counter), r.exact_params) for r in records]
    if all(p is not None for p, _ in params):
        diffs = [rel_diff_pct(float(p or 0), exact) for p, exact in params]
        summary.params_exact = sum(p == exact for p, exact in params)
        summary.median_params_diff_pct = statistics.median(diffs)
        summary.max_params_diff_pct = max(diffs)
    return summary


def summarize(records: Sequence[ModelRecord]) -> list[CounterSummary]:
    return [summarize_counter(records, c) for c in ("analytic", *COUNTERS)]


@dataclass
class DominantRow:
    """MAC agreement of the peers on the models one token mixer dominates."""

    mixer: str
    models: int
    median_diff_pct: dict[str, float]


def by_dominant_mixer(records: Sequence[ModelRecord]) -> list[DominantRow]:
    groups: dict[str, list[ModelRecord]] = defaultdict(list)
    for r in records:
        groups[r.dominant_mixer].append(r)
    return [
        DominantRow(
            mixer,
            len(group),
            {
                c: statistics.median(rel_diff_pct(_macs_of(r, c), r.macs[REFERENCE]) for r in group)
                for c in ("analytic", "fvcore", "thop")
            },
        )
        for mixer, group in sorted(groups.items())
    ]


# -- one mixer at a time ---------------------------------------------------------------------------


@dataclass
class MixerRow:
    """One token mixer with its default parameters in MIXER_CONTEXT, counted every way."""

    mixer: str
    family: str
    analytic_macs: int
    macs: dict[str, float]
    fvcore_skips: list[str]
    exact_params: int
    thop_params: int


def _mixer_input(op: OpDef, ctx: OpContext) -> torch.Tensor:
    """A batch-1 input in the layout the mixer consumes (see `search_space.ops.base.LAYOUTS`)."""
    gen = torch.Generator().manual_seed(0)
    if op.layout == LAYOUT_GRID:
        shape: tuple[int, ...] = (1, ctx.dim, *ctx.grid)
    elif op.layout == LAYOUT_GRID_LAST:
        shape = (1, *ctx.grid, ctx.dim)
    elif op.layout == LAYOUT_SEQUENCE:
        shape = (1, ctx.n, ctx.dim)
    else:
        shape = (1, ctx.tokens, ctx.dim)
    return torch.randn(*shape, generator=gen)


def measure_mixer(name: str, ctx: OpContext = MIXER_CONTEXT) -> MixerRow:
    op = TOKEN_MIXERS.get(name)
    params = op.defaults()
    op.check_rules(ctx, params, name)
    torch.manual_seed(0)
    module = op.module_class()(ctx.dim, grid=ctx.grid, **params)
    x = _mixer_input(op, ctx)
    counts = {c: _count_on_copy(fn, module, x)[0] for c, fn in COUNTERS.items()}
    return MixerRow(
        mixer=name,
        family=op.family,
        analytic_macs=op.cost(ctx, params).macs,
        macs={c: macs for c, (macs, _) in counts.items()},
        fvcore_skips=fvcore_skipped(copy.deepcopy(module), x),
        exact_params=sum(p.numel() for p in module.parameters()),
        thop_params=counts["thop"][1] or 0,
    )


def bench_mixers(names: Sequence[str] | None = None) -> list[MixerRow]:
    return [measure_mixer(n) for n in (names or TOKEN_MIXERS.names())]


# -- report ----------------------------------------------------------------------------------------


@dataclass
class Report:
    command: str
    machine: dict[str, str]
    spaces: list[SpaceResult]
    mixers: list[MixerRow]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for space, result in zip(data["spaces"], self.spaces, strict=True):
            space["summary"] = [asdict(s) for s in summarize(result.records)]
            space["by_dominant_mixer"] = [asdict(d) for d in by_dominant_mixer(result.records)]
        return data


def machine_info() -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": str(torch.get_num_threads()),
        "cpu_count": str(os.cpu_count()),
        "fvcore": version("fvcore"),
        "thop": version("thop"),
    }


def command_line(spaces: Sequence[str], n: int, models: int, seed: int, threads: int) -> str:
    """The canonical command that reproduces a run."""
    return (
        f"python bench/space.py --space {','.join(spaces)} --n {n} --models {models} "
        f"--seed {seed} --threads {threads}"
    )


def run(
    spaces: Sequence[str],
    *,
    n: int,
    models: int,
    seed: int,
    threads: int = 1,
    mixers: Sequence[str] | None = None,
) -> Report:
    """Runs the whole benchmark with ``threads`` torch threads (restored afterwards); ``mixers``
    limits the per-mixer table (default: every registered token mixer)."""
    previous = torch.get_num_threads()
    # Counting runs batch-1 forwards on small tensors: extra intra-op threads buy nothing there,
    # and when another process holds a core they spin and slow every traced op down about tenfold.
    torch.set_num_threads(threads)
    try:
        # The per-mixer table runs first: it meets every op type once, so one-time costs (lazy
        # imports, first traces of the scan and FFT ops) fall outside the per-model timings
        # instead of on whichever counter happens to run first on the first model with that op.
        mixer_rows = bench_mixers(mixers)
        results = [bench_space(s, n=n, models=models, seed=seed) for s in spaces]
        machine = machine_info()
    finally:
        torch.set_num_threads(previous)
    return Report(command_line(spaces, n, models, seed, threads), machine, results, mixer_rows)


# -- markdown --------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table padded to aligned columns, readable as plain text too."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _mmacs(value: float) -> str:
    return f"{value / 1e6:.3f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def throughput_table(results: Sequence[SpaceResult]) -> str:
    headers = [
        "space",
        "input",
        "specs sampled/s",
        "specs validated/s",
        "analytic costs/s",
        "models built/s",
    ]
    rows = [
        [
            r.space,
            r.input,
            _rate(r.sample_per_s),
            _rate(r.validate_per_s),
            _rate(r.cost_per_s),
            _rate(r.build_per_s),
        ]
        for r in results
    ]
    return table(headers, rows)


def counter_table(result: SpaceResult) -> str:
    headers = [
        "counter",
        "median ms/model",
        "MACs median Δ %",
        "MACs max Δ %",
        "params exact",
        "params median Δ %",
        "params max Δ %",
    ]
    rows = []
    for s in summarize(result.records):
        exact = "—" if s.params_exact is None else f"{s.params_exact}/{len(result.records)}"
        rows.append(
            [
                COUNTER_LABELS[s.counter],
                f"{s.median_ms:.3f}",
                _pct(s.median_macs_diff_pct),
                _pct(s.max_macs_diff_pct),
                exact,
                _pct(s.median_params_diff_pct),
                _pct(s.max_params_diff_pct),
            ]
        )
    return table(headers, rows)


def dominant_table(result: SpaceResult) -> str:
    headers = [
        "dominant token mixer",
        "models",
        "analytic median Δ %",
        "fvcore alone median Δ %",
        "thop median Δ %",
    ]
    rows = [
        [
            d.mixer,
            str(d.models),
            _pct(d.median_diff_pct["analytic"]),
            _pct(d.median_diff_pct["fvcore"]),
            _pct(d.median_diff_pct["thop"]),
        ]
        for d in by_dominant_mixer(result.records)
    ]
    return table(headers, rows)


def _share(value: float, reference: float) -> str:
    if reference == 0:
        return f"{_mmacs(value)} (—)"
    return f"{_mmacs(value)} ({value / reference * 100:.0f}%)"


def mixer_table(rows: Sequence[MixerRow]) -> str:
    headers = [
        "token mixer",
        "family",
        "analytic MMACs",
        "mixnas MMACs",
        "fvcore alone MMACs",
        "thop MMACs",
        "ops fvcore skips",
        "params (exact / thop)",
    ]
    body = []
    for r in rows:
        ref = r.macs[REFERENCE]
        body.append(
            [
                r.mixer,
                r.family,
                _mmacs(r.analytic_macs),
                _mmacs(ref),
                _share(r.macs["fvcore"], ref),
                _share(r.macs["thop"], ref),
                ", ".join(f"`{op}`" for op in r.fvcore_skips) or "—",
                f"{r.exact_params:,} / {r.thop_params:,}",
            ]
        )
    return table(headers, body)


def _undercounted(rows: Sequence[MixerRow], counter: str) -> str:
    low = [
        f"{r.mixer} {r.macs[counter] / r.macs[REFERENCE] * 100:.0f}%"
        for r in rows
        if r.macs[REFERENCE] and r.macs[counter] < 0.98 * r.macs[REFERENCE]
    ]
    return ", ".join(low) or "none"


def reading_notes(report: Report) -> str:
    """What the differences mean; the lists of mixers are computed from this run's figures."""
    return (
        "fvcore alone has no handler for `scaled_dot_product_attention`, FFTs or mixnas's "
        "`linear_scan`, so it silently drops the attention score and weighted-sum matmuls, the "
        "spectral transforms and the scans (mixers it counts below 98% of mixnas: "
        f"{_undercounted(report.mixers, 'fvcore')}). thop counts only forward hooks on known leaf "
        "modules (linear, conv, norm, pooling, ...), so every functional op (SDPA, `matmul`, "
        "`einsum`, FFTs, scans) is invisible to it, it counts norms, pooling and activations at "
        "its own rates, and its parameter total misses parameters registered directly on other "
        "modules (class tokens, position embeddings, layer scales, spectral filters, relative "
        "position tables, SSM state matrices); mixers it counts below 98%: "
        f"{_undercounted(report.mixers, 'thop')}. The analytic column is mixnas's torch-free "
        "formula, which predicts the counted MACs without building a model."
    )


def _machine_line(machine: dict[str, str]) -> str:
    return (
        f"{machine['platform']} ({machine['processor']}), {machine['cpu_count']} CPU cores "
        f"(torch threads {machine['torch_threads']}), Python {machine['python']}, "
        f"torch {machine['torch']}, fvcore {machine['fvcore']}, thop {machine['thop']}"
    )


def to_markdown(report: Report) -> str:
    """The markdown section, headed by SECTION_TITLE."""
    parts = [
        SECTION_TITLE,
        f"Command:\n\n```\n{report.command}\n```",
        f"Machine: {_machine_line(report.machine)}.",
        "### Throughput\n\nSampling checks each spec against the space's constraints; validation "
        "and analytic costs run on the already-sampled specs; building includes weight "
        "initialisation.\n\n" + throughput_table(report.spaces),
    ]
    for result in report.spaces:
        parts.append(
            f"### Cost counters on {result.models} `{result.space}` models\n\n"
            "Δ is the absolute relative difference `|count - reference| / reference` in percent; "
            "the MAC reference is what `count_macs` finds (fvcore + mixnas handlers), the "
            "parameter reference `sum(p.numel())` of the built model.\n\n"
            f"{counter_table(result)}\n\nBy the token mixer with the most MACs in the model:\n\n"
            f"{dominant_table(result)}"
        )
    ctx = MIXER_CONTEXT
    parts.append(
        f"### One token mixer at a time\n\nEach registered token mixer with its default "
        f"parameters, width {ctx.dim}, grid {'x'.join(map(str, ctx.grid))}, batch 1; percentages "
        f"are of the mixnas count.\n\n{mixer_table(report.mixers)}\n\n{reading_notes(report)}"
    )
    return "\n\n".join(parts) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replaces the section under SECTION_TITLE in ``path`` (up to the next ``## `` heading), or
    appends it, so a rerun refreshes the figures without touching the rest of the document."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, ln in enumerate(lines) if ln.rstrip() == SECTION_TITLE)
    except StopIteration:
        sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + sep + section, encoding="utf-8")
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    path.write_text(
        "".join(lines[:start]) + section + ("\n" + tail if tail else ""), encoding="utf-8"
    )


# -- command line ----------------------------------------------------------------------------------


def _spaces(values: Sequence[str] | None) -> list[str]:
    if not values:
        return list(DEFAULT_SPACES)
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--space",
        action="append",
        metavar="NAME",
        help="space name or file; repeatable or comma-separated "
        f"(default: {','.join(DEFAULT_SPACES)})",
    )
    parser.add_argument(
        "--n", type=int, default=2000, help="specs to sample, validate and cost (default 2000)"
    )
    parser.add_argument(
        "--models", type=int, default=40, help="models to build and count per space (default 40)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads while benchmarking (default 1, see run)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--out", type=Path, help="markdown file whose benchmark section is written or replaced"
    )
    args = parser.parse_args(argv)
    if min(args.n, args.models, args.threads) < 1:
        parser.error("--n, --models and --threads must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(
        _spaces(args.space), n=args.n, models=args.models, seed=args.seed, threads=args.threads
    )
    section = to_markdown(report)
    print(json.dumps(report.to_dict(), indent=2) if args.json else section)
    if args.out:
        write_section(args.out, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
