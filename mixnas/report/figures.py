"""The report's figures (see `mixnas.report.html` for the page around them and the scale rules).

Trials are drawn in five kinds, each with its own colour and shape and named in every legend:
on the Pareto front (red discs with a dark rim), other feasible trials (grey discs), infeasible
trials that finished but break a constraint (orange hollow squares), trials pruned by screening
(purple hollow triangles) and failed trials (black crosses); pruned and failed trials appear in
a chart only when they report its metrics, and the caption counts those that do not. With three
objectives a fourth chart draws them at once (`mixnas.report.svg.scatter3d_chart`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

from mixnas.front import nondominated, prefix_hypervolumes, sample_positions
from mixnas.records import FAILED, OK, PRUNED
from mixnas.report.data import RunData
from mixnas.report.decisions import (
    IMPORTANCE_CATEGORIES,
    IMPORTANCE_TRIALS,
    MAX_DEPTH,
    N_TREES,
    OTHER,
    collapse,
    decisions_of,
    describe_importance,
    importances,
    sample,
)
from mixnas.report.reference import default_reference, format_reference, to_loss_reference
from mixnas.report.svg import (
    PALETTE,
    PointGroup,
    bar_chart,
    fmt,
    line_chart,
    parallel_coordinates,
    scatter3d_chart,
    scatter_chart,
)

FRONT_COLOR, OTHER_COLOR, INFEASIBLE_COLOR = PALETTE[1], "#9aa7b4", "#ff7f0e"
PRUNED_COLOR, FAILED_COLOR = "#9467bd", "#222222"
AXIS_CATEGORIES = 20  # per categorical axis of the parallel coordinates (the rest: "(other)")
MAX_BARS = 16  # decisions per importance chart (the largest; the caption names the top three)
SEED = 0  # of the sample of points drawn: the same report for the same records


@dataclass(frozen=True)
class Kind:
    name: str  # the points' class: "pt <name>"
    label: str
    color: str
    shape: str
    hollow: bool = False
    radius: float = 3.5
    stroke: str | None = None


KINDS = (
    Kind("feasible", "other feasible", OTHER_COLOR, "circle"),
    Kind("infeasible", "infeasible", INFEASIBLE_COLOR, "square", True),
    Kind("pruned", "pruned", PRUNED_COLOR, "triangle", True, 4.0),
    Kind("failed", "failed", FAILED_COLOR, "cross", False, 3.5),
    Kind("front", "Pareto front", FRONT_COLOR, "circle", False, 4.5, "#5a0d0d"),
)


def kinds_of(run: RunData) -> np.ndarray:
    """(n,) the kind of each trial: front, feasible, infeasible (ok, every objective reported, a
    constraint broken or its metric missing), incomplete (ok, an objective missing; never
    drawn), pruned or failed."""
    t = run.trials
    out = np.full(len(t), "incomplete", dtype=object)
    every = np.ones(len(t), dtype=bool)
    for o in run.objectives:
        every &= np.isfinite(t.metric(o.metric))
    out[(t.status == OK) & every] = "infeasible"
    out[t.status == PRUNED] = "pruned"
    out[t.status == FAILED] = "failed"
    out[run.eligible] = "feasible"
    out[run.on_front] = "front"
    return out


def reporting(run: RunData, metrics: Sequence[str], statuses: Sequence[str] = (OK,)) -> np.ndarray:
    """Positions of the trials with one of ``statuses`` that report every one of ``metrics``."""
    t = run.trials
    ok = np.isin(t.status, list(statuses))
    for m in metrics:
        ok &= np.isfinite(t.metric(m))
    return np.flatnonzero(ok)


def drawn(run: RunData, rows: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(front rows, other rows to draw): every front row, and at most ``max_points`` others,
    a seeded random sample kept in trial order."""
    on = rows[run.on_front[rows]]
    rest = sample(rows[~run.on_front[rows]], max_points, SEED)
    return on, rest


def drawn_note(on: np.ndarray, rest: np.ndarray, total: int, what: str) -> str:
    """The sentence under a chart that says how many of the points it draws."""
    count = on.size + rest.size
    if count == total:
        return f"All {total:,} {what} are drawn."
    return (
        f"{count:,} of {total:,} {what} drawn: all {on.size:,} on the Pareto "
        f"front and a random sample (seed {SEED}) of {rest.size:,} of the "
        f"{total - on.size:,} others; trials.csv lists every trial."
    )


def _points(
    run: RunData, kind: Kind, x: np.ndarray, y: np.ndarray, pos: np.ndarray, metrics: list[str]
) -> PointGroup:
    """The trials at ``pos`` drawn as ``kind`` draws them, at (x, y), with their tooltips."""
    return PointGroup(
        kind.label,
        kind.color,
        x[pos].tolist(),
        y[pos].tolist(),
        [tip(run, i, metrics, kind.name) for i in pos],
        radius=kind.radius,
        shape=kind.shape,
        hollow=kind.hollow,
        stroke=kind.stroke,
        kind=kind.name,
    )


def tip(run: RunData, i: int, metrics: Sequence[str], kind: str = "") -> str:
    t = run.trials
    shown = ", ".join(f"{m}={t.metric(m)[i]:.4g}" for m in metrics)
    label = f" [{kind}]" if kind else ""
    return f"trial {t.trial_id[i]} ({t.spec_id[i]}){label}: {shown}"


def figure(chart: str, caption: str = "", wide: bool = False) -> str:
    cls = " class='wide'" if wide else ""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure{cls}>{chart}{cap}</figure>"


# -- the Pareto front, pair by pair ---------------------------------------------------------------


def pareto_section(run: RunData, max_points: int, curve_points: int) -> str:
    objectives = list(run.objectives)
    if len(objectives) < 2:
        return single_objective(run, curve_points)
    names = [o.metric for o in objectives]
    t = run.trials
    finite = np.column_stack([np.isfinite(t.metric(m)) for m in names])
    # a pruned or failed trial may report some objectives (analytic costs): drawn where it can be
    kinds = kinds_of(run)
    rows = np.flatnonzero((finite.sum(axis=1) >= 2) & (kinds != "incomplete"))
    on, rest = drawn(run, rows, max_points)
    charts = []
    for (ia, a), (ib, b) in itertools.combinations(enumerate(objectives), 2):
        xa, yb = t.metric(a.metric), t.metric(b.metric)
        groups = []
        for kind in KINDS:
            pos = on if kind.name == "front" else rest[kinds[rest] == kind.name]
            pos = pos[np.isfinite(xa[pos]) & np.isfinite(yb[pos])]
            groups.append(_points(run, kind, xa, yb, pos, names))
        both = rows[np.isfinite(xa[rows]) & np.isfinite(yb[rows])]
        charts.append(
            figure(
                scatter_chart(
                    groups,
                    title=f"{b.metric} vs {a.metric}",
                    xlabel=f"{a.metric} ({a.direction})",
                    ylabel=f"{b.metric} ({b.direction})",
                    staircase=_pair_front(run, ia, ib),
                    log_x=_wide(xa[both]),
                    log_y=_wide(yb[both]),
                    width=620,
                    height=420,
                )
            )
        )
    if len(names) == 3:
        charts.append(figure(_three_d(run, on, rest, kinds)))
    what = "trials that report the objectives"
    if len(names) > 2:
        what = "trials that report two or more objectives"
    return (
        f"<div class='charts'>{''.join(charts)}</div>"
        f"<p class='drawn'>{_pareto_caption(run, names, kinds, rows)} "
        f"{drawn_note(on, rest, rows.size, what)}</p>"
    )


def _three_d(run: RunData, on: np.ndarray, rest: np.ndarray, kinds: np.ndarray) -> str:
    """The three objectives at once (see `scatter3d_chart`): each scaled to [0, 1] over the
    drawn trials, 0 its best value (log10 first for one spanning more than two decades)."""
    t = run.trials
    rows = np.concatenate([rest, on])
    every = np.ones(rows.size, dtype=bool)
    for o in run.objectives:
        every &= np.isfinite(t.metric(o.metric)[rows])
    rows = rows[every]
    scaled, labels, ends = {}, [], []
    for o in run.objectives:
        values = t.metric(o.metric)
        log = _wide(values[rows])
        v = np.log10(np.where(values > 0, values, np.nan)) if log else values.copy()
        if o.direction == "maximize":
            v = -v
        lo, hi = float(np.nanmin(v[rows])), float(np.nanmax(v[rows]))
        scaled[o.metric] = (v - lo) / (hi - lo if hi > lo else 1.0)
        best, worst = values[rows][np.nanargmin(v[rows])], values[rows][np.nanargmax(v[rows])]
        labels.append(o.metric + (" (log)" if log else ""))
        ends.append((fmt(float(best)), fmt(float(worst))))
    a, b, c = (scaled[o.metric] for o in run.objectives)
    names = [o.metric for o in run.objectives]
    groups, zs = [], []
    for kind in KINDS:
        pos = rows[kinds[rows] == kind.name]
        groups.append(_points(run, kind, a, b, pos, names))
        zs.append(c[pos].tolist())
    return scatter3d_chart(
        groups,
        zs,
        title="All three objectives (oblique view)",
        labels=labels,
        ends=ends,
        width=620,
        height=420,
    )


def _pareto_caption(run: RunData, names: list[str], kinds: np.ndarray, rows: np.ndarray) -> str:
    if len(names) == 2:
        marked = "Red discs with a dark rim are the Pareto front; the dashed line joins them. "
    else:
        marked = (
            f"Red discs with a dark rim are the Pareto front of all {len(names)} objectives, "
            "marked in every pair: in a two-objective projection a front member can look "
            "dominated, because it is better than the points that seem to beat it in an "
            "objective the pair does not show. The dashed line joins the feasible trials "
            "that no feasible trial beats in that pair alone. "
        )
        if len(names) == 3:
            marked += (
                "The last chart draws the three objectives at once, each scaled from its best "
                "value (the corner nearest the viewer, bottom left) to its worst over the drawn "
                "trials, with a line from each front member down to the floor, where its first "
                "two objectives place it. "
            )
    shown = np.zeros(len(run.trials), dtype=bool)
    shown[rows] = True
    counts = []
    for kind, text in (
        ("infeasible", "finished but break a constraint (orange hollow squares)"),
        ("pruned", "were pruned by screening (purple hollow triangles)"),
        ("failed", "failed (black crosses)"),
        ("incomplete", "finished without reporting every objective (not drawn)"),
    ):
        total = int((kinds == kind).sum())
        if total:
            missing = int(((kinds == kind) & ~shown).sum())
            if missing and kind != "incomplete":
                text += f", {missing:,} of which report too few objectives to be drawn"
            counts.append(f"{total:,} {text}")
    if counts:
        kinds_text = "Of the trials, " + "; ".join(counts) + "."
    else:
        kinds_text = "No trial is infeasible, pruned or failed."
    return escape(marked + kinds_text)


def _pair_front(run: RunData, ia: int, ib: int) -> tuple[list[float], list[float]] | None:
    """The feasible trials no feasible trial beats in objectives ``ia`` and ``ib`` alone, sorted
    along the first (the whole front when there are two objectives)."""
    rows = np.flatnonzero(run.eligible)
    if len(run.objectives) == 2:
        rows = np.flatnonzero(run.on_front)
    else:
        rows = rows[nondominated(run.losses[rows][:, [ia, ib]])]
    if rows.size < 2:
        return None
    t = run.trials
    xs = t.metric(run.objectives[ia].metric)[rows]
    ys = t.metric(run.objectives[ib].metric)[rows]
    order = np.lexsort((ys, xs))
    return xs[order].tolist(), ys[order].tolist()


def _wide(values: np.ndarray) -> bool:
    """Log scale for positive metrics spanning more than two decades (params, MACs)."""
    positive = values[values > 0]
    return positive.size > 1 and float(positive.max() / positive.min()) > 100


def single_objective(run: RunData, curve_points: int) -> str:
    o = run.objectives[0]
    ok = reporting(run, [o.metric])
    if not ok.size:
        return "<p>No finished trial reports the objective yet.</p>"
    xs = run.trials.trial_id[ok].astype(float)
    ys = run.trials.metric(o.metric)[ok]
    running = (np.maximum if o.direction == "maximize" else np.minimum).accumulate(ys)
    shown = sample_positions(ok.size, curve_points)
    note = ""
    if shown.size < ok.size:
        note = (
            f"{shown.size:,} of {ok.size:,} trials drawn (evenly spaced); "
            "trials.csv lists every trial."
        )
    chart = line_chart(
        {
            o.metric: (xs[shown].tolist(), ys[shown].tolist()),
            f"best {o.metric}": (xs[shown].tolist(), running[shown].tolist()),
        },
        title=f"{o.metric} per trial",
        xlabel="trial",
        ylabel=o.metric,
        width=900,
        height=380,
    )
    return figure(chart, note, wide=True)


# -- hypervolume from a fixed reference -----------------------------------------------------------


def hypervolume_section(
    run: RunData, curve_points: int, reference: Sequence[float] | None = None
) -> str:
    objectives = list(run.objectives)
    if len(objectives) < 2:
        return "<p>One objective: see the best-so-far curve above.</p>"
    names = [o.metric for o in objectives]
    directions = [o.direction for o in objectives]
    eligible = np.flatnonzero(run.eligible)
    if not eligible.size:
        return "<p>No eligible trial yet.</p>"
    if reference is None:
        values = np.column_stack([run.trials.metric(m)[eligible] for m in names])
        ref = default_reference(values, directions) or [0.0] * len(names)
        # rounded as printed, so that the printed --hv-ref gives this very hypervolume
        ref = [float(f"{v:.6g}") for v in ref]
        origin = (
            "the default: this run's worst feasible value of each objective moved 10% of its "
            "range further out; it differs from run to run, so to compare two runs give both "
            "reports the same point with <code>--hv-ref</code>"
        )
    else:
        ref = list(reference)
        origin = "set with <code>--hv-ref</code>"
    try:
        positions, hv = prefix_hypervolumes(
            run.losses, run.eligible, to_loss_reference(ref, directions), max_points=curve_points
        )
    except ValueError as err:  # four or more objectives and too large a front for exact volume
        return f"<p>No hypervolume curve: {escape(str(err))}</p>"
    n = len(run.trials)
    when = (
        "after every trial"
        if positions.size == n
        else f"after {positions.size:,} evenly spaced trials of {n:,}"
    )
    text = escape(format_reference(objectives, ref))
    units = " \u00d7 ".join(names)
    note = (
        f"<p class='reference'>Reference point <code>{text}</code> ({origin}). "
        f"The hypervolume is in the objectives' own units ({escape(units)}), not scaled to "
        "this run, so two runs measured from the same reference point compare directly; only "
        "feasible trials better than the reference in every objective add volume. "
        f"Final hypervolume: <b>{hv[-1] if hv else 0.0:.6g}</b>. Computed {when}. "
        f"Reproduce: <code>mixnas report RUN --hv-ref {text}</code>.</p>"
    )
    chart = line_chart(
        {"hypervolume": (run.trials.trial_id[positions].astype(float).tolist(), hv)},
        title="Hypervolume of the front after each trial",
        xlabel="trial",
        ylabel=f"hypervolume ({units})",
        width=700,
        height=360,
    )
    return note + f"<div class='charts'>{figure(chart)}</div>"


# -- parallel coordinates over objectives and decisions -------------------------------------------


def parallel_section(run: RunData, max_points: int) -> str:
    """Two charts with the objectives as the first axes: the mixers per stage, then the depths,
    widths and bits per stage (one chart of all of them is too wide to read)."""
    names = [o.metric for o in run.objectives]
    rows = reporting(run, names)
    if not rows.size:
        return "<p>No finished trial yet.</p>"
    on, rest = drawn(run, rows, max_points)
    ordered = np.concatenate([rest, on])  # front drawn last, on top
    decisions, merged = collapse(decisions_of(run.specs_of(ordered)), AXIS_CATEGORIES)
    kinds = kinds_of(run)[ordered]
    color = {"front": FRONT_COLOR, "feasible": OTHER_COLOR, "infeasible": INFEASIBLE_COLOR}
    legend = [("Pareto front", FRONT_COLOR), ("other feasible", OTHER_COLOR)]
    if (kinds == "infeasible").any():
        legend.append(("infeasible", INFEASIBLE_COLOR))
    tips = [tip(run, i, names, k) for i, k in zip(ordered, kinds, strict=True)]
    objective_columns = [run.trials.metric(m)[ordered] for m in names]
    mixers = [d for d in decisions.names if d.endswith("mixer")]
    shapes = [d for d in decisions.names if not d.endswith("mixer")]
    charts: list[str] = []
    for title, chosen in (
        ("objectives and token mixers per stage", mixers),
        ("objectives and depths, widths, bits per stage", shapes),
    ):
        if not chosen and charts:
            continue
        axes = names + chosen
        columns = objective_columns + [decisions.column(d) for d in chosen]
        categories = {
            len(names) + k: decisions.categories[d]
            for k, d in enumerate(chosen)
            if d in decisions.categories
        }
        most = max((len(c) for c in categories.values()), default=0)
        charts.append(
            parallel_coordinates(
                axes,
                np.column_stack(columns).tolist(),
                [color[k] for k in kinds],
                title=f"Finished trials: {title}",
                tips=tips,
                legend=legend,
                categories=categories,
                width=max(1000, 100 * len(axes) + 214),
                height=max(420, 13 * most + 90),
            )
        )
    fixed = ", ".join(f"{k} = {v}" for k, v in decisions.fixed.items())
    caption = (
        "Objectives first, then the decisions read from each spec, per stage (s1 is the first): "
        "the token mixer (several joined by +), the depth in blocks, the width in channels and "
        "the bit widths (w = weights, a = activations). Red lines are the Pareto front, grey "
        "the other feasible trials, orange the infeasible ones. Categorical axes spread their "
        "lines a little within each category so the share through each shows. "
        + (f"The same in every drawn trial (not drawn): {escape(fixed)}. " if fixed else "")
        + (
            f"An axis shows at most {AXIS_CATEGORIES} categories: the most frequent, and "
            f"{OTHER} for the rest ("
            + escape(", ".join(f"{v} in {k}" for k, v in merged.items()))
            + "). "
            if merged
            else ""
        )
        + drawn_note(on, rest, rows.size, "trials that report the objectives")
    )
    return "".join(figure(c, wide=True) for c in charts) + f"<p class='drawn'>{caption}</p>"


# -- importance of the decisions ------------------------------------------------------------------


def importance_section(run: RunData) -> str:
    names = [o.metric for o in run.objectives]
    rows = reporting(run, [], (OK,))
    rows = rows[np.isfinite(np.column_stack([run.trials.metric(m)[rows] for m in names])).any(1)]
    if not rows.size:
        return "<p>No finished trial yet.</p>"
    chosen = sample(rows, IMPORTANCE_TRIALS, SEED)
    decisions = decisions_of(run.specs_of(chosen))
    if not decisions.names:
        return "<p>No architecture decision varies between the finished trials.</p>"
    charts, sentences = [], []
    for k, name in enumerate(names):
        imp = importances(decisions, name, run.trials.metric(name)[chosen])
        sentences.append(escape(describe_importance(imp)))
        if imp.values:
            charts.append(
                figure(
                    bar_chart(
                        imp.values[:MAX_BARS],
                        title=f"Importance for {name}" + (" (log10)" if imp.log else ""),
                        xlabel="share of the variance explained (fANOVA)",
                        color=PALETTE[(k + 2) % len(PALETTE)],
                        width=620,
                    )
                )
            )
    if chosen.size < rows.size:
        based = (
            f"a random sample (seed {SEED}) of {chosen.size:,} of the {rows.size:,} finished "
            f"trials (at most {IMPORTANCE_TRIALS:,} are used, so the report stays quick at any "
            "size)"
        )
    else:
        based = f"all {rows.size:,} finished trials"
    caption = (
        "How much of each objective's variance each decision explains: Optuna's fANOVA "
        f"(FanovaImportanceEvaluator, {N_TREES} trees of depth at most {MAX_DEPTH}, seed "
        f"{SEED}) on an in-memory study built from {based}; pruned and failed trials left out, "
        f"infeasible ones kept; a decision's categories past its {IMPORTANCE_CATEGORIES - 1} "
        f"most frequent count as one, {OTHER}. Importances sum to 1 per objective; they "
        "describe this run's trials, not the whole space. " + " ".join(sentences)
    )
    return f"<div class='charts'>{''.join(charts)}</div><p class='drawn'>{caption}</p>"
