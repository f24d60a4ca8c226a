"""``mixnas runs [RUNS_DIR]``, ``mixnas runs diff A B``, ``mixnas report RUN_DIR``,
``mixnas export RUN_DIR`` and ``mixnas doctor RUN_DIR``: list run folders, compare two, read one
back, check (and repair) its records.

A run folder whose records are damaged is never read as if it were empty: ``report`` and
``export`` stop with one line naming the file (exit 2); ``runs`` lists the healthy runs and
names each damaged one on stderr (exit 2); ``doctor`` says what is wrong and what can be
recovered, ``--repair`` rebuilds the records into a new file (`mixnas.integrity`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def run_summary(run_dir: Path) -> dict[str, Any]:
    """One line's worth of a run folder: when, how far, how it went.

    Reads the records as columns without their specs (`RunData`), so a run of 100,000 trials
    costs a fraction of a second."""
    from mixnas.integrity import reading_records
    from mixnas.records import FAILED, OK, PRUNED
    from mixnas.report.data import RunData

    with reading_records(run_dir):
        run = RunData.load(run_dir)
    counts = run.counts()
    best = run.best_index()
    first = run.config.objectives[0].metric
    space = run.config.space if isinstance(run.config.space, str) else "(inline)"
    return {
        "name": run_dir.name,
        "path": str(run_dir),
        "created": run.manifest.get("created", ""),
        "space": space,
        "strategy": run.config.strategy,
        "backend": run.manifest.get("backend", ""),
        "trials": sum(counts.values()),  # finished ones
        "budget": run.config.trials,
        "ok": counts[OK],
        "failed": counts[FAILED],
        "pruned": counts[PRUNED],
        "running": run.running,  # in flight when the run stopped: a resume re-runs them
        "front": int(run.on_front.sum()),
        "best": None
        if best is None
        else {
            first: float(run.trials.metric(first)[best]),
            "trial_id": int(run.trials.trial_id[best]),
        },
        "report": (run_dir / "report.html").is_file(),
    }


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """A config as ``{"budget.trials": 10, "evaluators[0].name": ..., ...}``."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(data, list) and any(isinstance(v, dict | list) for v in data):
        out = {}
        for i, value in enumerate(data):
            out.update(_flat(value, f"{prefix}[{i}]"))
        return out
    return {prefix: data}


def runs_diff(a: Any, b: Any) -> dict[str, Any]:
    """Two runs (`RunData`) side by side: the config keys that differ, the counts, the front
    sizes, the best trial per objective, and each front's hypervolume against one reference
    (`mixnas.front.common_hypervolumes`) on the first run's objectives."""
    import numpy as np

    from mixnas.export import top_positions
    from mixnas.front import common_hypervolumes, eligible_mask, nondominated
    from mixnas.manifest import CONFIG, read_json
    from mixnas.records import FAILED, OK, PRUNED
    from strategies.multiobjective import to_losses

    flat_a, flat_b = _flat(read_json(a.run_dir / CONFIG)), _flat(read_json(b.run_dir / CONFIG))
    missing = object()
    config = [
        {
            "key": key,
            "a": flat_a.get(key),
            "b": flat_b.get(key),
            "in_a": key in flat_a,  # a missing key and a null differ
            "in_b": key in flat_b,
        }
        for key in sorted(set(flat_a) | set(flat_b))
        if flat_a.get(key, missing) != flat_b.get(key, missing)
    ]
    objectives = a.objectives
    directions = [o.direction for o in objectives]
    sides: dict[str, dict[str, Any]] = {}
    losses = []
    for side, run in (("a", a), ("b", b)):
        counts = run.counts()
        best: dict[str, Any] = {}
        for o in objectives:
            order = top_positions(run, 1, o.metric, o.direction)
            best[o.metric] = (
                None
                if not order
                else {
                    "value": float(run.trials.metric(o.metric)[order[0]]),
                    "trial_id": int(run.trials.trial_id[order[0]]),
                }
            )
        t = run.trials
        rows = np.flatnonzero(
            eligible_mask(t.status, t.metrics, objectives, run.config.constraints)
        )
        values = np.column_stack([t.metric(o.metric)[rows] for o in objectives])
        loss = to_losses(values.reshape(len(rows), len(objectives)), directions)
        losses.append(loss[nondominated(loss)] if len(rows) else loss)
        sides[side] = {
            "run": str(run.run_dir),
            "trials": sum(counts.values()),
            "ok": counts[OK],
            "failed": counts[FAILED],
            "pruned": counts[PRUNED],
            "running": run.running,
            "front": int(run.on_front.sum()),
            "best": best,
        }
    volumes, ref = common_hypervolumes(losses)
    for side, volume in zip(("a", "b"), volumes, strict=True):
        sides[side]["hypervolume"] = volume
    reference = {
        o.metric: (None if not np.isfinite(r) else float(-r if o.direction == "maximize" else r))
        for o, r in zip(objectives, ref, strict=True)
    }
    same = [o.metric for o in b.objectives] == [o.metric for o in objectives]
    return {
        "config": config,
        "objectives": [[o.metric, o.direction] for o in objectives],
        "same_objectives": same,
        "reference": reference,
        **sides,
    }


def cmd_runs_diff(args: argparse.Namespace, names: list[str]) -> int:
    from mixnas.commands.common import emit
    from mixnas.commands.trials import QueryError, open_run

    if len(names) != 2:
        raise QueryError(f"runs diff: expected two runs, A and B (got {len(names)}: {names})")
    a, b = open_run(names[0], flag="A"), open_run(names[1], flag="B")
    diff = runs_diff(a, b)
    if args.json:
        emit(diff)
        return 0
    print(f"A: {a.run_dir}")
    print(f"B: {b.run_dir}")
    if not diff["same_objectives"]:
        print("note: the runs' objectives differ; B is measured on A's objectives")
    print(f"config: {len(diff['config'])} difference(s)")
    for change in diff["config"]:
        a_value, b_value = (
            repr(change[side]) if change[f"in_{side}"] else "(absent)" for side in ("a", "b")
        )
        print(f"  {change['key']}: {a_value} -> {b_value}")
    rows: list[tuple[str, str, str]] = [("", "A", "B")]
    sa, sb = diff["a"], diff["b"]
    rows.append(("trials (finished)", str(sa["trials"]), str(sb["trials"])))
    for key in ("ok", "failed", "pruned", "front"):
        rows.append((key, str(sa[key]), str(sb[key])))
    for metric, direction in diff["objectives"]:
        cells = []
        for side in (sa, sb):
            best = side["best"][metric]
            cells.append("-" if best is None else f"{best['value']:.4g} (trial {best['trial_id']})")
        rows.append((f"best {metric} ({direction[:3]})", cells[0], cells[1]))
    rows.append(("hypervolume", f"{sa['hypervolume']:.4f}", f"{sb['hypervolume']:.4f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    ref = ", ".join(f"{m}={'-' if v is None else f'{v:.4g}'}" for m, v in diff["reference"].items())
    print(
        "hypervolume: of each front, objectives scaled to [0, 1] by the two fronts' range "
        f"together, reference 1.1 in each ({ref})"
    )
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from mixnas.commands.common import emit
    from mixnas.integrity import diagnose
    from mixnas.report.data import NotARunError
    from search_space.errors import MixnasError

    if args.runs_dir and args.runs_dir[0] == "diff" and not Path("diff").is_dir():
        return cmd_runs_diff(args, args.runs_dir[1:])
    if len(args.runs_dir) > 1:
        print(
            f"mixnas: error: runs: expected one RUNS_DIR or 'diff A B' (got {args.runs_dir})",
            file=sys.stderr,
        )
        return 2
    root = Path(args.runs_dir[0] if args.runs_dir else "runs")
    if not root.is_dir():
        print(f"mixnas: error: {root}: no such folder of runs", file=sys.stderr)
        return 2
    rows, damaged = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            rows.append(run_summary(folder))
        except NotARunError:
            continue  # other folders may sit beside the runs
        except MixnasError as err:  # damaged records or config: named, never listed as empty
            damaged.append(str(err))
            continue
        if args.check:
            found = diagnose(folder)
            rows[-1]["health"] = "healthy" if found.healthy else "; ".join(found.problems)
    rows.sort(key=lambda r: (r["created"], r["name"]))
    for problem in damaged:
        print(f"mixnas: error: {problem}", file=sys.stderr)
    status = 2 if damaged else 0
    if args.check and any(r["health"] != "healthy" for r in rows):
        status = max(status, 1)
    if args.json:
        emit(rows)
        return status
    if not rows:
        print(f"no runs in {root}")
        return status
    header: tuple[str, ...] = (
        "run", "created", "space", "strategy", "trials", "ok/failed/pruned", "front", "best",
    )  # fmt: skip
    if args.check:
        header = (*header, "health")
    lines = [header]
    for r in rows:
        budget = f"/{r['budget']}" if r["budget"] else ""
        best = "-"
        if r["best"]:
            (metric, value), trial = next(iter(r["best"].items())), r["best"]["trial_id"]
            best = f"{metric}={value:.4g} (trial {trial})"
        lines.append(
            (
                r["name"],
                r["created"][:19].replace("T", " "),
                str(r["space"]),
                r["strategy"],
                f"{r['trials']}{budget}" + (f" ({r['running']} in flight)" if r["running"] else ""),
                f"{r['ok']}/{r['failed']}/{r['pruned']}",
                str(r["front"]),
                best,
                *([r["health"]] if args.check else []),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return status


def cmd_doctor(args: argparse.Namespace) -> int:
    """Exit 0: healthy (or repaired); 1: damaged; 2: not a run folder."""
    from mixnas.commands.common import emit
    from mixnas.integrity import diagnose, is_run_folder, repair
    from mixnas.records import DB_NAME
    from search_space.errors import RunFolderError

    run_dir = Path(args.run_dir)
    if not is_run_folder(run_dir):
        raise RunFolderError(f"{run_dir}: not a mixnas run folder (no config, records or log)")
    found = diagnose(run_dir)
    if args.json and not args.repair:
        emit(found.to_dict())
        return 0 if found.healthy else 1
    if found.healthy:
        print(
            f"{run_dir}: healthy: {DB_NAME} holds {found.store_finished} finished trial(s)"
            f"{f' and {found.store_running} unfinished' if found.store_running else ''}, "
            f"SQLite's integrity check passes, events.jsonl logs {found.logged}"
        )
    else:
        print(f"{run_dir}: DAMAGED")
        for problem in found.problems:
            print(f"  damaged: {problem}")
    for note in found.notes:
        print(f"  note: {note}")
    if not args.repair:
        return 0 if found.healthy else 1
    if not found.store_damaged:
        state = "healthy" if found.healthy else "not damaged"
        print(f"  --repair: the records are {state}: nothing to rebuild")
        return 0 if found.healthy else 1
    done = repair(run_dir)
    told = ""
    if done.told is not None and done.told > done.written:
        told = (
            f" strategy.json has told {done.told} trials, more than were rebuilt: a resume "
            "will refuse the run (its strategy's history is lost); report and export work."
        )
    damaged = run_dir / DB_NAME
    print(
        f"repaired: wrote {done.written} finished trial(s) ({done.from_store} readable in "
        f"{DB_NAME}, {done.from_log} from events.jsonl) to {done.path}; {damaged} was not "
        f"touched.{told} To use the new file, stop any driver on the run, then: "
        f"mv {damaged} {damaged}.damaged; rm -f {damaged}-wal {damaged}-shm; "
        f"mv {done.path} {damaged}; mixnas doctor {run_dir}"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mixnas.integrity import reading_records
    from mixnas.report import PARETO_CSV, TRIALS_CSV, write_report
    from mixnas.report.html import CURVE_POINTS, MAX_POINTS

    with reading_records(Path(args.run_dir)):
        path = write_report(
            Path(args.run_dir),
            max_points=MAX_POINTS if args.max_points is None else args.max_points,
            curve_points=CURVE_POINTS if args.curve_points is None else args.curve_points,
            hv_reference=args.hv_ref,
        )
    print(f"wrote {path}, {path.with_name(PARETO_CSV)}, {path.with_name(TRIALS_CSV)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mixnas.export import export_run, rebuild_check
    from mixnas.integrity import reading_records

    with reading_records(Path(args.run_dir)):
        paths = export_run(
            Path(args.run_dir),
            pick=args.pick,
            out=args.out,
            torchscript=args.torchscript,
            onnx=args.onnx,
            by=args.by,
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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text}")
    return value


def add_to(sub: Any) -> None:
    runs = sub.add_parser(
        "runs",
        help="list the run folders of a runs directory; 'runs diff A B' compares two runs",
        usage="mixnas runs [-h] [--json] [--check] [RUNS_DIR | diff A B]",
        description="List the run folders of a runs directory. A run whose records are damaged "
        "is named on stderr (exit 2) instead of listed. 'mixnas runs diff A B' compares two "
        "runs: config differences, counts, front sizes, the best trial per objective, and the "
        "hypervolume of each front against one reference.",
    )
    runs.add_argument(
        "runs_dir",
        nargs="*",
        metavar="RUNS_DIR | diff A B",
        help="a folder of runs (default: runs), or 'diff' and two runs",
    )
    runs.add_argument("--json", action="store_true", help="JSON (a list of runs, or the diff)")
    runs.add_argument(
        "--check",
        action="store_true",
        help="also run 'mixnas doctor' on each run (a health column; exit 1 if one is damaged)",
    )
    runs.set_defaults(func=cmd_runs)

    doctor = sub.add_parser(
        "doctor",
        help="check a run folder's records against its event log; --repair rebuilds them",
        description="Check a run folder: SQLite's integrity check of trials.sqlite, the "
        "config, manifest and checkpoint, and every finished trial of events.jsonl against the "
        "store. Exit 0 healthy, 1 damaged (each problem named), 2 not a run folder. --repair "
        "writes every finished trial it can rebuild (readable rows first, then the event log) "
        "into a NEW file, trials.repaired.sqlite, beside the damaged one, which is never "
        "written, and says how to put it in place (docs/runs.md).",
    )
    doctor.add_argument("run_dir", help="a run folder, e.g. runs/default")
    doctor.add_argument(
        "--repair", action="store_true", help="rebuild the records into trials.repaired.sqlite"
    )
    doctor.add_argument("--json", action="store_true", help="the diagnosis as a JSON object")
    doctor.set_defaults(func=cmd_doctor)

    report = sub.add_parser("report", help="write report.html, pareto.csv, trials.csv of a run")
    report.add_argument("run_dir", help="a run folder, e.g. runs/default")
    report.add_argument(
        "--max-points",
        type=_positive,
        help="trials off the front drawn per chart; a seeded sample above it (default 2000)",
    )
    report.add_argument(
        "--curve-points",
        type=_positive,
        help="trial counts at which the hypervolume curve is computed (default 500)",
    )
    report.add_argument(
        "--hv-ref",
        metavar="METRIC=VALUE,...",
        help="the hypervolume's reference point, one value per objective in its units, e.g. "
        "params=2e6,macs=1e8; give two runs the same one to compare them (default: derived "
        "from the run and printed in the report)",
    )
    report.set_defaults(func=cmd_report)

    export = sub.add_parser("export", help="export the specs (and models) a run found")
    export.add_argument("run_dir", help="a run folder, e.g. runs/default")
    export.add_argument(
        "--pick",
        default="front",
        help="front, best, topK (the best K by the first objective or --by, e.g. top5), or "
        "trial ids like 3 or 3,7 (default front)",
    )
    export.add_argument(
        "--by",
        metavar="METRIC",
        help="the metric a topK pick ranks by: an objective (its direction), or METRIC:max / "
        "METRIC:min",
    )
    export.add_argument("--out", help="output folder (default RUN_DIR/export)")
    export.add_argument("--torchscript", action="store_true", help="also write checked .pt files")
    export.add_argument("--onnx", action="store_true", help="also write checked .onnx files")
    export.set_defaults(func=cmd_export)
