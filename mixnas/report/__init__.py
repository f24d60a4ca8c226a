"""``mixnas report RUN_DIR``: a self-contained ``report.html``, ``pareto.csv`` and ``trials.csv``.

The report is one HTML file with inline SVG and CSS, no script and nothing fetched: it opens from a
mail attachment or an artifact store as well as from disk. It shows the run's counts, the Pareto
front for every pair of objectives, the hypervolume over trials, a parallel-coordinates view of
the finished trials, a table of the front's members (mixers per stage, depths, widths, bits), the
failed trials with their errors, and the manifest.

At scale (100,000 trials) the charts draw every front point and a seeded sample of the others,
saying so under each figure, and the curves are computed at a few hundred trial counts; the
tables list the front; ``trials.csv`` has every trial (see `mixnas.report.html`).
"""

from __future__ import annotations

from pathlib import Path

from mixnas.report.html import CURVE_POINTS, MAX_POINTS, render_report
from mixnas.report.tables import front_table, trials_table

REPORT, PARETO_CSV, TRIALS_CSV = "report.html", "pareto.csv", "trials.csv"


def write_report(
    run_dir: str | Path, *, max_points: int = MAX_POINTS, curve_points: int = CURVE_POINTS
) -> Path:
    """Writes the report files into ``run_dir`` and returns the path of ``report.html``.

    ``max_points``: trials off the front drawn per chart (a seeded sample above it);
    ``curve_points``: trial counts at which the hypervolume and best-so-far curves are computed.
    """
    from mixnas.report.data import RunData

    run = RunData.load(Path(run_dir))
    trials_table(run).to_csv(run.run_dir / TRIALS_CSV, index=False)
    front_table(run).to_csv(run.run_dir / PARETO_CSV, index=False)
    path = run.run_dir / REPORT
    tmp = path.with_name(f".{REPORT}.tmp")
    html = render_report(run, max_points=max_points, curve_points=curve_points)
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["PARETO_CSV", "REPORT", "TRIALS_CSV", "write_report"]
