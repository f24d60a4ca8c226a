"""``mixnas report RUN_DIR``: a self-contained ``report.html``, ``pareto.csv`` and ``trials.csv``.

The report is one HTML file with inline SVG and CSS, no script and nothing fetched: it opens from a
mail attachment or an artifact store as well as from disk, and its charts scale to the window. It
shows the run's counts; the Pareto front for every pair of objectives, with the front's members
marked in every pair and infeasible, pruned and failed trials drawn in shapes of their own; the
hypervolume over trials from a fixed reference point (``hv_reference``, ``mixnas report
--hv-ref``; the default is printed so another run can use it); parallel coordinates over the
objectives and the architecture decisions (mixer, depth, width, bits per stage); the decisions'
importance for each objective (Optuna's fANOVA on the records); a table of the front's members;
the failed trials with their errors; and a summary of the manifest (the raw JSON folded below).

At scale (100,000 trials) the charts draw every front point and a seeded sample of the others,
saying so under each figure, the curves are computed at a few hundred trial counts and the
importances on a sample of at most 500 trials; the tables list the front; ``trials.csv`` has
every trial (see `mixnas.report.html`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from mixnas.report.html import CURVE_POINTS, MAX_POINTS, render_report
from mixnas.report.tables import front_table, trials_table

REPORT, PARETO_CSV, TRIALS_CSV = "report.html", "pareto.csv", "trials.csv"


def write_report(
    run_dir: str | Path,
    *,
    max_points: int = MAX_POINTS,
    curve_points: int = CURVE_POINTS,
    hv_reference: str | Sequence[float] | None = None,
) -> Path:
    """Writes the report files into ``run_dir`` and returns the path of ``report.html``.

    ``max_points``: trials off the front drawn per chart (a seeded sample above it);
    ``curve_points``: trial counts at which the hypervolume and best-so-far curves are computed;
    ``hv_reference``: the hypervolume's reference point, as ``--hv-ref`` text
    (``"params=2e6,macs=1e8"``) or values in objective order (default: derived from the run and
    printed in the report). Bad text raises `ReportOptionError` before anything is written.
    """
    from mixnas.report.data import RunData
    from mixnas.report.reference import ReportOptionError, parse_hv_reference

    run = RunData.load(Path(run_dir))
    if isinstance(hv_reference, str):
        hv_reference = parse_hv_reference(hv_reference, run.objectives)
    elif hv_reference is not None:
        values = [float(v) for v in hv_reference]
        if len(values) != len(run.objectives) or not all(map(math.isfinite, values)):
            raise ReportOptionError(
                f"hv_reference: {values} is not one finite value for each of the "
                f"{len(run.objectives)} objectives"
            )
        hv_reference = values
    trials_table(run).to_csv(run.run_dir / TRIALS_CSV, index=False)
    front_table(run).to_csv(run.run_dir / PARETO_CSV, index=False)
    path = run.run_dir / REPORT
    tmp = path.with_name(f".{REPORT}.tmp")
    html = render_report(
        run, max_points=max_points, curve_points=curve_points, hv_reference=hv_reference
    )
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["PARETO_CSV", "REPORT", "TRIALS_CSV", "write_report"]
