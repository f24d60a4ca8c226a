"""``mixnas report RUN_DIR``: a self-contained ``report.html``, ``pareto.csv`` and ``trials.csv``.

The report is one HTML file with inline SVG and CSS, no script and nothing fetched: it opens from a
mail attachment or an artifact store as well as from disk. It shows the run's counts, the Pareto
front for every pair of objectives, the hypervolume over trials, a parallel-coordinates view of
the finished trials, a table of the front's members (mixers per stage, depths, widths, bits), the
failed trials with their errors, and the manifest.
"""

from __future__ import annotations

from pathlib import Path

from mixnas.report.html import render_report
from mixnas.report.tables import front_table, trials_table

REPORT, PARETO_CSV, TRIALS_CSV = "report.html", "pareto.csv", "trials.csv"


def write_report(run_dir: str | Path) -> Path:
    """Writes the report files into ``run_dir`` and returns the path of ``report.html``."""
    from mixnas.report.data import RunData

    run = RunData.load(Path(run_dir))
    trials_table(run).to_csv(run.run_dir / TRIALS_CSV, index=False)
    front_table(run).to_csv(run.run_dir / PARETO_CSV, index=False)
    path = run.run_dir / REPORT
    tmp = path.with_name(f".{REPORT}.tmp")
    tmp.write_text(render_report(run), encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["PARETO_CSV", "REPORT", "TRIALS_CSV", "write_report"]
