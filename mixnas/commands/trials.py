"""``mixnas trials RUN [ID]``: the trials of a run as a table, or one trial in full.

Without an ID: the best trials by a metric (``--top K --by METRIC``; default the top 10 by the
first objective), the Pareto front (``--front``) or every finished trial in trial order
(``--all``). Ranked listings hold the trials that count (finished ok, report the metric, meet the
run's constraints), best first in the metric's direction. With an ID: that trial's status,
metrics, architecture, costs, timings, error, and where its spec is stored or exported.

Output is plain text (no colour, whatever the terminal), ``--json`` for scripts. An unknown run,
trial or metric is one line naming it and what is allowed (exit 2).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_space.errors import MixnasError

DEFAULT_TOP = 10


class QueryError(MixnasError, ValueError):
    """A run, trial or metric the command line names that does not exist (one line)."""


def open_run(text: str, *, flag: str = "RUN") -> Any:
    """The `RunData` of a run folder given as a path, or as a name under ``runs/``; a folder
    that is not a run raises `QueryError` naming it and the runs beside it."""
    from mixnas.integrity import reading_records
    from mixnas.report.data import NotARunError, RunData

    path = Path(text)
    if not path.is_dir() and not path.is_absolute() and (Path("runs") / text).is_dir():
        path = Path("runs") / text
    try:
        with reading_records(path):
            return RunData.load(path)
    except NotARunError:
        parent = path.parent if path.parent != Path("") else Path(".")
        beside = _runs_in(parent) or _runs_in(Path("runs"))
        where = parent if _runs_in(parent) else Path("runs")
        allowed = (
            f"runs in {where}/: {', '.join(beside)}"
            if beside
            else "a path to a run folder (one holding config.json and trials.sqlite)"
        )
        raise QueryError(f"{flag} {text!r}: not a mixnas run folder; {allowed}") from None


def _runs_in(folder: Path, limit: int = 12) -> list[str]:
    if not folder.is_dir():
        return []
    try:
        found = sorted(
            p.name for p in folder.iterdir() if (p / "config.json").is_file() and p.is_dir()
        )
    except OSError:
        return []
    return found[:limit] + ([f"... ({len(found) - limit} more)"] if len(found) > limit else [])


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


def _rows(run: Any, positions: Sequence[int], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """The listed trials as plain data (what ``--json`` prints and the table shows)."""
    from mixnas.report.data import describe_spec

    t = run.trials
    records = run.records_of(positions)
    out = []
    for p, record in zip(positions, records, strict=True):
        out.append(
            {
                "trial_id": int(t.trial_id[p]),
                "spec_id": t.spec_id[p],
                "status": str(t.status[p]),
                "origin": t.origin[p],
                "front": bool(run.on_front[p]),
                **describe_spec(dict(record.spec)),
                "metrics": {m: _json_float(t.metric(m)[p]) for m in metrics},
                "error": t.error[p],
                "seconds": float(t.seconds()[p]),
            }
        )
    return out


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _table(rows: list[dict[str, Any]], metrics: Sequence[str], *, errors: bool) -> list[str]:
    header = ("trial", "status", "front", *metrics, "mixers", "depths", "widths", "bits")
    if errors:
        header = (*header, "error")
    lines = [header]
    for r in rows:
        values = [_fmt(math.nan if v is None else v) for v in r["metrics"].values()]
        error = " ".join(r["error"].split())
        lines.append(
            (
                str(r["trial_id"]),
                r["status"],
                "*" if r["front"] else "",
                *values,
                r["mixers"],
                r["depths"],
                r["widths"],
                r["bits"],
                *([error[:80] + ("..." if len(error) > 80 else "")] if errors else []),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]


def cmd_trials(args: argparse.Namespace) -> int:
    from mixnas.commands.common import emit
    from mixnas.export import ranking, top_positions

    run = open_run(args.run_dir)
    if args.trial_id is not None:
        return _one(run, args.trial_id, as_json=args.json)
    if args.all and (args.front or args.top is not None or args.by is not None):
        raise QueryError("--all lists every trial in trial order: without --front, --top or --by")
    objectives = [o.metric for o in run.objectives]
    metric, direction = ranking(run, args.by)
    shown = [*objectives, *([metric] if metric not in objectives else [])]
    if args.all:
        positions = list(range(len(run.trials)))
        what = f"all {len(positions)} finished trials, in trial order"
    else:
        positions = top_positions(run, None, metric, direction)
        if args.front:
            positions = [p for p in positions if run.on_front[p]]
        top = args.top if args.top is not None else (None if args.front else DEFAULT_TOP)
        total = len(positions)
        positions = positions[:top] if top is not None else positions
        scope = "front members" if args.front else "trials that count"
        what = (
            f"{len(positions)} of {total} {scope} (finished ok, within the constraints), by "
            f"{metric} ({direction})"
        )
    rows = _rows(run, positions, shown)
    if args.json:
        emit(rows)
        return 0
    counts = run.counts()
    print(
        f"{run.run_dir}: {sum(counts.values())} finished ({counts['ok']} ok, "
        f"{counts['failed']} failed, {counts['pruned']} pruned); {what}"
    )
    if not rows:
        print("no trial to list")
        return 0
    for line in _table(rows, shown, errors=args.all):
        print(line)
    if not args.all and not args.front and args.top is None and len(positions) < total:
        print(f"(the top {DEFAULT_TOP}; --top K for more, --front, --all, or ID for one trial)")
    return 0


def trial_details(run: Any, trial_id: int) -> dict[str, Any]:
    """One trial in full, as plain data (``mixnas trials RUN ID --json``)."""
    from mixnas.export import top_positions
    from mixnas.records import record_event
    from mixnas.report.data import describe_spec
    from search_space import ArchSpec, spec_cost

    record = run.by_id(trial_id)
    if record is None:
        ids = run.trials.trial_id
        allowed = (
            "the run has no finished trial"
            if not len(ids)
            else f"finished trials: {', '.join(map(str, ids))}"
            if len(ids) <= 20
            else f"finished trials are numbered {int(ids.min())}-{int(ids.max())} "
            f"({len(ids)} of them)"
        )
        raise QueryError(f"trial {trial_id}: no finished trial of {run.run_dir}; {allowed}")
    position = int(list(run.trials.trial_id).index(trial_id))
    details: dict[str, Any] = record_event(record)
    details["front"] = bool(run.on_front[position])
    details["seconds"] = (record.finished or 0.0) - (record.started or 0.0)
    details["architecture"] = describe_spec(dict(record.spec))
    try:
        details["costs"] = spec_cost(ArchSpec.from_dict(dict(record.spec))).to_dict()
    except Exception:  # a damaged spec: the rest of the trial still reads
        details["costs"] = {}
    ranks = {}
    for o in run.objectives:
        order = top_positions(run, None, o.metric, o.direction)
        if position in order:
            ranks[o.metric] = {"rank": order.index(position) + 1, "of": len(order)}
    details["ranks"] = ranks
    exported = sorted(run.run_dir.glob(f"**/trial-{trial_id}-{record.spec_id}.*"))
    details["exported"] = [str(p) for p in exported]
    details["spec_in"] = f"{run.run_dir / 'trials.sqlite'} (trial_id {trial_id})"
    return details


def _one(run: Any, trial_id: int, *, as_json: bool) -> int:
    from mixnas.commands.common import emit

    d = trial_details(run, trial_id)
    if as_json:
        emit(d)
        return 0
    print(f"trial {d['trial_id']} of {run.run_dir}")
    print(f"  spec id: {d['spec_id']} (origin {d['origin']})")
    print(f"  status: {d['status']}{'; on the Pareto front' if d['front'] else ''}")
    for metric, rank in d["ranks"].items():
        print(f"  rank by {metric}: {rank['rank']} of {rank['of']}")
    arch = d["architecture"]
    print(
        f"  architecture: mixers {arch['mixers']}; depths {arch['depths']}; "
        f"widths {arch['widths']}; bits {arch['bits']}"
    )
    if d["costs"]:
        print("  costs: " + ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(d["costs"].items())))
    print("  metrics:")
    width = max((len(k) for k in d["metrics"]), default=0)
    for name, value in sorted(d["metrics"].items()):
        print(f"    {name.ljust(width)}  {_fmt(math.nan if value is None else value)}")
    timings = {k: v for k, v in d["timings"].items() if v is not None}
    if timings:
        print("  timings (s): " + ", ".join(f"{k} {v:.3g}" for k, v in sorted(timings.items())))
    if d["started"] is not None:
        print(f"  ran {d['seconds']:.3g} s" + (f" on {d['worker']}" if d["worker"] else ""))
    if d["error"]:
        print(f"  error: {' '.join(d['error'].split())}")
    print(f"  spec: stored in {d['spec_in']}")
    if d["exported"]:
        for path in d["exported"]:
            print(f"  exported: {path}")
    else:
        print(f"  export it: mixnas export {run.run_dir} --pick {d['trial_id']}")
    return 0


def _trial_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a trial id is a whole number, got {text!r}") from None


def add_to(sub: Any) -> None:
    from mixnas.commands.common import positive_int

    trials = sub.add_parser(
        "trials",
        help="a run's trials: the top K by a metric, the front, all, or one trial in full",
        description="List a run's trials (default: the top 10 by the first objective among "
        "those that finished ok within the constraints), or show one trial in full (ID). "
        "Plain text, or --json.",
    )
    trials.add_argument("run_dir", help="a run folder (or a run's name under runs/)")
    trials.add_argument("trial_id", nargs="?", type=_trial_id, help="one trial's id: its details")
    trials.add_argument("--top", type=positive_int, metavar="K", help="the best K trials")
    trials.add_argument(
        "--by",
        metavar="METRIC",
        help="rank by this metric: an objective (its direction), or METRIC:max / METRIC:min "
        "(default the first objective)",
    )
    trials.add_argument("--front", action="store_true", help="only the Pareto front")
    trials.add_argument(
        "--all", action="store_true", help="every finished trial (failed and pruned too)"
    )
    trials.add_argument("--json", action="store_true", help="JSON for scripts")
    trials.set_defaults(func=cmd_trials)
