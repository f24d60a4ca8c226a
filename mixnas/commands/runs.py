"""``mixnas report RUN_DIR`` and ``mixnas export RUN_DIR``: read a run folder back."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def cmd_report(args: argparse.Namespace) -> int:
    from mixnas.report import PARETO_CSV, TRIALS_CSV, write_report

    path = write_report(Path(args.run_dir))
    print(f"wrote {path}, {path.with_name(PARETO_CSV)}, {path.with_name(TRIALS_CSV)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mixnas.export import export_run, rebuild_check

    paths = export_run(
        Path(args.run_dir),
        pick=args.pick,
        out=args.out,
        torchscript=args.torchscript,
        onnx=args.onnx,
    )
    if not paths:
        print(f"nothing to export: the pick {args.pick!r} is empty (no finished ok trial?)")
        return 1
    for path in paths:
        print(path)
    problems = rebuild_check(paths)
    for problem in problems:
        print(f"mixnas: error: {problem}")
    return 1 if problems else 0


def add_to(sub: Any) -> None:
    report = sub.add_parser("report", help="write report.html, pareto.csv, trials.csv of a run")
    report.add_argument("run_dir", help="a run folder, e.g. runs/default")
    report.set_defaults(func=cmd_report)

    export = sub.add_parser("export", help="export the specs (and models) a run found")
    export.add_argument("run_dir", help="a run folder, e.g. runs/default")
    export.add_argument(
        "--pick", default="front", help="front, best, or trial ids like 3 or 3,7 (default front)"
    )
    export.add_argument("--out", help="output folder (default RUN_DIR/export)")
    export.add_argument("--torchscript", action="store_true", help="also write checked .pt files")
    export.add_argument("--onnx", action="store_true", help="also write checked .onnx files")
    export.set_defaults(func=cmd_export)
