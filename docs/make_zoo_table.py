"""Writes docs/zoo.md: every zoo model, our analytic size against the published one, and the
coverage of the seed catalog's mixer families (section (a)) and macro structures (section (b)).

Run ``.venv/bin/python docs/make_zoo_table.py``; a test fails when the file is out of date. The
numbers are the analytic costs (`search_space.spec_cost`), which equal the built model's
parameters and MACs counted with mixnas's handlers (tests/test_zoo.py checks both). A published
MAC figure is set beside ours under the counting convention it was produced with
(`search_space.costs.macs_as_counted`), as the tests compare them.
"""

from __future__ import annotations

from pathlib import Path

from search_space import spec_cost, zoo
from search_space.costs import (
    COUNTER_FVCORE,
    COUNTER_MIXNAS,
    COUNTER_MODULE_HOOKS,
    macs_as_counted,
    total_cost,
)
from search_space.zoo.registry import SOURCE_NONE, SOURCE_TIMM

OUT = Path(__file__).with_name("zoo.md")

# section (a) of ../shared/docs/seed_catalog.md
FAMILIES = {
    "M01": "dense global softmax self-attention",
    "M02": "window / block-local attention",
    "M03": "neighbourhood and dilated neighbourhood attention",
    "M04": "fixed sparse global patterns (axial, grid, dilated)",
    "M05": "reduced-KV / pooled-KV global attention",
    "M06": "content-routed sparse attention",
    "M07": "linear / kernelised attention",
    "M08": "additive / convolutional attention for mobile",
    "M09": "frequency-split mixers (HiLo)",
    "M10": "spectral / Fourier mixing",
    "M11": "pooling",
    "M12": "identity / removed mixer",
    "M13": "shift",
    "M14": "token-mixing MLP",
    "M15": "depthwise / separable convolution (k <= 7)",
    "M16": "large-kernel convolution",
    "M17": "gated / high-order / modulation mixers",
    "M18": "deformable / sampling-based mixers",
    "M19": "state-space / recurrent mixers",
    "M20": "latent / agent / cross-attention mixers",
    "M21": "outlook attention, lambda layers",
    "M22": "KAN layers",
    "M23": "channel / transposed attention and channel-attention add-ons",
}
# section (b)
MACROS = {
    "MA1": "isotropic / columnar",
    "MA2": "hierarchical 4-stage pyramid",
    "MA3": "hierarchical 3-stage / 16x-stem pyramid",
    "MA4": "stage-wise hybrid",
    "MA5": "intra-block hybrid",
    "MA6": "parallel-branch / head-split",
    "MA7": "U-Net / encoder-decoder",
    "MA8": "interleaved local/global layers",
    "MA9": "recursive / weight-shared depth",
    "MA10": "nested / elastic",
    "MA11": "conditional compute (MoE, early exit, dynamic tokens)",
    "MA12": "nested token hierarchies inside a patch",
    "MA13": "factorised spatio-temporal / multi-axis data",
}
# why a family or macro has no zoo model (only read when one is missing)
MISSING = {
    "MA11": "no op routes tokens or experts, and no block exits early",
    "MA13": "the input description has images and sequences only, no video (time x space)",
}


# models the issue or the catalog names that the zoo does not emit yet, and why
NOT_EMITTED: dict[str, str] = {}

# what each MAC-counting convention leaves out (search_space.costs.macs_as_counted)
CONVENTIONS = {
    COUNTER_MIXNAS: "every MAC of the analytic model, FFTs at 2 n log2 n per complex transform",
    COUNTER_FVCORE: "fvcore's rules, as in timm's tables: FFTs are not counted",
    COUNTER_MODULE_HOOKS: (
        "ptflops / mmcv `get_model_complexity_info` / thop count leaf `nn.Module` layers only: "
        "no FFTs and no functional activation x activation MACs (attention scores and weighted "
        "sums, scans, deformable sampling); approximate, as those counters also count norms, "
        "activations and biases as elementwise operations"
    ),
}


def _pct(ours: float, published: float | None) -> str:
    if published is None:
        return "-"
    return f"{100 * (ours / published - 1):+.1f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _models_table() -> list[str]:
    lines = [
        "| model | res | params (M) ours / published | diff | MACs (G) ours / published | diff "
        "| counted as | all MACs (G) | source | mixers | families | macro | paper |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in zoo.names():
        meta, spec = zoo.info(name), zoo.get(name)
        cost, pub = spec_cost(spec), meta.published
        # ours as the published figure's counter would count it; all of ours beside it
        params, macs = cost.params / 1e6, macs_as_counted(spec, pub.counter) / 1e9
        counted = f"`{pub.counter}`" if pub.macs_g is not None else "-"
        source = pub.source if pub.source != SOURCE_TIMM else f"timm `{pub.ref}`"
        if pub.source == "paper":
            source = f"paper: {pub.ref}"
        mixers = ", ".join(f"`{m}`" for m in spec.mixer_names())
        lines.append(
            f"| `{name}` | {spec.input.resolution[0]} | {params:.2f} / {_num(pub.params_m)} "
            f"| {_pct(params, pub.params_m)} | {macs:.2f} / {_num(pub.macs_g)} "
            f"| {_pct(macs, pub.macs_g)} | {counted} | {cost.macs / 1e9:.2f} | {source} "
            f"| {mixers} | {', '.join(meta.families)} | {', '.join(meta.macro)} | {meta.paper} |"
        )
    return lines


def _conventions() -> list[str]:
    return [f"- `{key}`: {what}." for key, what in CONVENTIONS.items()]


def _counter_note(name: str) -> str | None:
    """Why a paper's MACs are compared under another counter than mixnas's, with the parts."""
    pub, spec = zoo.info(name).published, zoo.get(name)
    if pub.source in (SOURCE_TIMM, SOURCE_NONE) or pub.counter == COUNTER_MIXNAS:
        return None
    cost = total_cost(spec)
    ours = macs_as_counted(spec, pub.counter) / 1e9
    left_out = f"{cost.fft_macs / 1e6:.1f} M of FFTs"
    if pub.counter == COUNTER_MODULE_HOOKS:
        left_out += (
            f" and {cost.dynamic_macs / 1e6:.1f} M of functional activation x activation MACs"
        )
    return (
        f"- `{name}` (MACs counted as `{pub.counter}`): {pub.counter_evidence}. Under that "
        f"convention ours are {ours:.2f} G ({_pct(ours, pub.macs_g)} against {pub.macs_g} G); "
        f"all of mixnas's MACs are {cost.macs / 1e9:.2f} G ({_pct(cost.macs / 1e9, pub.macs_g)}), "
        f"the difference being {left_out} that such a counter does not see"
    )


def _notes() -> list[str]:
    lines = []
    for name in zoo.names():
        meta = zoo.info(name)
        counter = _counter_note(name)
        if counter:
            lines.append(counter + ".")
        if meta.deviation:
            lines.append(f"- `{name}` (outside the tolerance): {meta.deviation}.")
        if meta.notes:
            lines.append(f"- `{name}`: {meta.notes}.")
    return lines


def _coverage(title: str, names: dict[str, str], attr: str) -> list[str]:
    lines = ["", f"## {title}", "", "| id | what | zoo models |", "|---|---|---|"]
    for key, label in names.items():
        models = [n for n in zoo.names() if key in getattr(zoo.info(n), attr)]
        shown = ", ".join(f"`{m}`" for m in models) if models else f"missing: {MISSING[key]}"
        lines.append(f"| {key} | {label} | {shown} |")
    return lines


def render() -> str:
    covered_f = sum(any(k in zoo.info(n).families for n in zoo.names()) for k in FAMILIES)
    covered_m = sum(any(k in zoo.info(n).macro for n in zoo.names()) for k in MACROS)
    lines = [
        "# Zoo",
        "",
        "Generated by `docs/make_zoo_table.py` from `search_space.zoo`; do not edit by hand.",
        f"{len(zoo.names())} architectures of the seed papers, each an `ArchSpec` built by the one "
        "generic builder (`mixnas zoo list|show|build`). Ours = analytic params and MACs at the "
        "model's resolution; the MACs set beside a published figure are counted the way that "
        "figure was (column 'counted as', conventions below), and 'all MACs' are every MAC "
        "mixnas counts (equal to the built model's MACs counted with fvcore plus mixnas's "
        "handlers). Published = timm's benchmark table (`../shared/data/timm_results`, fvcore "
        "MACs) or the paper / official README. Tolerances (tests/test_zoo.py): timm 0.5% params "
        "and 3% MACs, papers 3% and 5%.",
        f"Coverage: {covered_f} of {len(FAMILIES)} mixer families, {covered_m} of {len(MACROS)} "
        "macro structures.",
        "",
        "## Models",
        "",
        *_models_table(),
        "",
        "MAC counting conventions ('counted as'; `search_space.costs.macs_as_counted`). A paper's "
        "figure is taken as `mixnas` unless its code shows the counter used (the evidence is "
        "noted in the next section):",
        "",
        *_conventions(),
        "",
        "## How specs depart from the reference implementations",
        "",
        *_notes(),
        "",
        "## Named in the issue or the catalog, not emitted",
        "",
        *(f"- {model}: {why}." for model, why in NOT_EMITTED.items()),
        *([] if NOT_EMITTED else ["None: every model the issue and the catalog name is emitted."]),
        *_coverage("Mixer families (catalog section (a))", FAMILIES, "families"),
        *_coverage("Macro structures (catalog section (b))", MACROS, "macro"),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
