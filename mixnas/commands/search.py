"""``mixnas search [CONFIG.yaml]``: run a search job into a run folder, then report and export.

With no config, runs the embedded default job (`mixnas/default_search.yaml`). ``--resume
RUN_DIR`` continues a run that was stopped or killed. ``--check`` runs every check a search
makes before its first trial and exits (0, or 2 with one line naming the field). When the
budget is spent, the run folder gets ``report.html``, ``pareto.csv``, ``trials.csv`` and the
exported specs of the config's pick. With a ``ship:`` block in the config (or ``--then-train N``,
which sets its ``top``), the best N front members are then trained into ``RUN/trained/trial-ID/``
and shipped (TorchScript, ONNX, int8, latency verified against the search's), and the report is
rewritten with them (docs/shipping.md); a resume continues unfinished trainings and leaves
shipped members as they are.

Ctrl-C stops the run cleanly: the finished trials are kept, the report is written from them, and
the command that continues the run is printed (exit status 130). A candidate that breaks an
analytic constraint of the config (params, MACs, ...) is recorded as pruned without being
evaluated. Exit status 1: every trial of this session failed (the distinct errors are counted on
stderr), an exported spec does not rebuild, or a member to ship failed (training or export) or
none met the ship block's constraint; 2: bad input, found before the run folder exists.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from mixnas.commands.common import positive_int

EXIT_ALL_FAILED = 1
EXIT_INTERRUPTED = 130  # as `mixnas.cli`: 128 + SIGINT
ERRORS_SHOWN = 5  # distinct error texts listed when every trial failed


def cmd_search(args: argparse.Namespace) -> int:
    from mixnas.config import load_config
    from mixnas.driver import resume_config

    overrides = {
        "trials": args.budget,
        "seconds": args.seconds,
        "seed": args.seed,
    }
    if args.resume:
        if args.config is not None:
            print("mixnas: error: give a config or --resume RUN_DIR, not both", file=sys.stderr)
            return 2
        config = resume_config(Path(args.resume), **overrides)
    else:
        config = load_config(args.config).with_overrides(
            name=args.name, runs_dir=args.runs_dir, **overrides
        )
    config = _backend_overrides(config, args)
    if args.then_train is not None:
        config = _then_train(config, args.then_train)
    if args.check:
        return check_only(config, resume=bool(args.resume))
    return run_and_finish(config, resume=bool(args.resume), quiet=args.quiet)


def check_only(config: Any, *, resume: bool) -> int:
    """``--check``: every check a run makes before its first trial (the config, the space, the
    strategy's and evaluators' options, the run folder), and nothing written."""
    from mixnas.driver import check_runs_dir
    from mixnas.integrity import check_store
    from mixnas.job import prepare

    if resume:
        check_store(config.run_dir)
    else:
        check_runs_dir(config)
    job = prepare(config)
    from mixnas.shipping.pipeline import check_ship

    check_ship(config, job)
    evaluators = ", ".join(["cost", *(e.name for e in config.evaluators if e.name != "cost")])
    decl = getattr(job.space, "decl", None)
    space = f"space {decl.name}, " if decl is not None else ""
    ship = f", then train and ship the best {config.ship.top}" if config.ship else ""
    print(
        f"{config.source or config.run_dir}: ok: {space}evaluators {evaluators}, "
        f"strategy {config.strategy}, run folder {config.run_dir}{ship}"
    )
    return 0


def _then_train(config: Any, top: int) -> Any:
    """``--then-train N``: the config's ship block (its defaults when it has none) with
    ``top: N``; a new run keeps it in its config.json, so a resume ships the same way."""
    from dataclasses import replace

    from mixnas.config import ShipConfig

    return replace(config, ship=replace(config.ship or ShipConfig(), top=top))


def _backend_overrides(config: Any, args: argparse.Namespace) -> Any:
    from dataclasses import replace

    backend = config.backend
    if args.backend is not None:
        backend = replace(backend, name=args.backend)
    if args.workers is not None:
        backend = replace(backend, workers=args.workers)
    if args.ray_address is not None:
        backend = replace(backend, name="ray", address=args.ray_address)
    return replace(config, backend=backend)


def run_and_finish(config: Any, *, resume: bool, quiet: bool) -> int:
    from mixnas.export import export_run, rebuild_check
    from mixnas.integrity import reading_records
    from mixnas.report import write_report

    if config.backend.name == "ray":
        from mixnas.ray_backend import run_search_ray as run
    else:
        from mixnas.driver import run_search as run
    if config.ship is not None:  # a bad ship block is refused before the first trial
        from mixnas.job import prepare
        from mixnas.shipping.pipeline import check_ship

        check_ship(config, prepare(config))
    try:
        summary = run(config, resume=resume, quiet=quiet)
    except KeyboardInterrupt:  # before the loop started (preparing, starting workers)
        if (config.run_dir / "config.json").is_file():
            print(f"interrupted; continue with: {resume_command(config.run_dir)}")
        return EXIT_INTERRUPTED
    if summary.interrupted:
        # said first: a second Ctrl-C while the report is written still leaves the hint
        print(
            f"run {summary.run_dir}: interrupted after {summary.finished} trial(s) this session "
            f"({summary.ok} ok, {summary.failed} failed, {summary.pruned} pruned); finished "
            "trials are kept"
        )
        print(f"  continue with: {resume_command(summary.run_dir)}")
        with reading_records(summary.run_dir):
            report = write_report(summary.run_dir)
        print(f"  report: {report}")
        return EXIT_INTERRUPTED
    exported: list[Path] = []
    problems: list[str] = []
    with reading_records(summary.run_dir):
        report = write_report(summary.run_dir)
        if config.export_pick is not None and summary.front:
            exported = export_run(
                summary.run_dir, pick=config.export_pick, out=summary.run_dir / config.export_dir
            )
            problems = rebuild_check(exported)
    print(
        f"run {summary.run_dir}: {summary.finished} trials this session "
        f"({summary.ok} ok, {summary.failed} failed, {summary.pruned} pruned"
        f"{f', {summary.reused} reused from before the stop' if summary.reused else ''}) "
        f"in {summary.seconds:.1f} s, stopped by {summary.stopped_by}"
    )
    if summary.infeasible:
        print(
            f"  {summary.infeasible} candidate(s) broke an analytic constraint of the config: "
            "recorded as pruned, not evaluated"
        )
    print(f"  front: {len(summary.front)} trial(s) {summary.front}")
    print(f"  report: {report}")
    if exported:
        verdict = "; ".join(problems) if problems else "each rebuilds with its recorded params"
        print(f"  exported {len(exported)} spec(s) to {exported[0].parent}: {verdict}")
    if summary.finished and summary.failed + summary.infeasible == summary.finished:
        print(error_summary(summary, config), file=sys.stderr)
        return EXIT_ALL_FAILED
    if summary.failed:
        top, count = summary.errors.most_common(1)[0]
        print(f"  {summary.failed} failed; most often ({count}x): {_short(top)}")
    status = 1 if problems else 0
    if config.ship is not None:
        status = max(status, then_ship(config, quiet=quiet))
    return status


def then_ship(config: Any, *, quiet: bool) -> int:
    """The ship block after the search (`mixnas.shipping.pipeline.ship_front`), holding the run
    folder's lock, and the report rewritten with what was shipped. Returns the exit status:
    0 all shipped, 1 a member failed or none could be chosen, 130 interrupted."""
    from mixnas.integrity import reading_records
    from mixnas.lock import RunLock
    from mixnas.report import write_report
    from mixnas.shipping.pipeline import ship_front
    from search_space.errors import MixnasError

    run_dir = config.run_dir
    try:
        with RunLock(run_dir), reading_records(run_dir):
            outcomes = ship_front(config, progress=not quiet, say=print)
    except MixnasError as err:  # the run folder in use, damaged records: the search stands
        print(f"mixnas: error: nothing shipped: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted while training or shipping; shipped models are kept, and an unfinished "
            f"training continues from its last epoch with: {resume_command(run_dir)}"
        )
        with reading_records(run_dir):
            write_report(run_dir)
        return EXIT_INTERRUPTED
    with reading_records(run_dir):
        report = write_report(run_dir)
    failed = [o for o in outcomes if not o.ok]
    if not outcomes:
        print(
            "mixnas: error: no front member to train (none meets the ship block's constraint, "
            "or the front is empty)",
            file=sys.stderr,
        )
        return 1
    done = len(outcomes) - len(failed)
    print(f"  shipped {done} of {len(outcomes)} model(s); report: {report}")
    if failed:
        print(
            f"mixnas: error: {len(failed)} of {len(outcomes)} model(s) failed (trial(s) "
            f"{', '.join(str(o.trial_id) for o in failed)}, said above); the others are kept; "
            f"after fixing the cause, run: {resume_command(run_dir)}",
            file=sys.stderr,
        )
        return 1
    return 0


def resume_command(run_dir: Path) -> str:
    """The command that continues the run in ``run_dir`` (its config is in the folder)."""
    return f"mixnas search --resume {shlex.quote(str(run_dir))}"


def error_summary(summary: Any, config: Any) -> str:
    """Every trial of the session failed (or broke an analytic constraint of the config): how
    many, and each distinct error with its count."""
    if not summary.infeasible:
        head = f"every trial failed ({summary.failed} this session, in {summary.run_dir})"
    else:
        from search_space.declare.schema import ANALYTIC_METRICS

        bounds = ", ".join(
            f"{metric} {' and '.join(f'{k} {v:,.0f}' for k, v in bound.items())}"
            for metric, bound in config.constraints.items()
            if metric in ANALYTIC_METRICS
        )
        head = (
            f"no trial of this session was evaluated: {summary.infeasible} candidate(s) broke "
            f"the config's constraints ({bounds}; widen them, or declare them in the space so "
            f"that only candidates meeting them are drawn), {summary.failed} failed"
        )
    if not summary.errors:
        return f"mixnas: error: {head}"
    lines = [f"mixnas: error: {head}; errors by count:"]
    for text, count in summary.errors.most_common(ERRORS_SHOWN):
        lines.append(f"  {count}x {_short(text)}")
    others = len(summary.errors) - ERRORS_SHOWN
    if others > 0:
        lines.append(f"  ... and {others} other error text(s); see trials.csv")
    return "\n".join(lines)


def _short(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else f"{line[: limit - 3]}..."


def add_to(sub: Any) -> None:
    search = sub.add_parser(
        "search",
        help="run a search job (the default job without a config)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    search.add_argument("config", nargs="?", help="search config (.yaml/.json)")
    search.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped or killed run")
    search.add_argument("--name", help="run name: the folder runs_dir/NAME")
    search.add_argument("--runs-dir", help="folder of run folders (default: runs)")
    search.add_argument("--budget", type=positive_int, help="number of trials (overrides config)")
    search.add_argument("--seconds", type=float, help="wall-time budget in seconds")
    search.add_argument("--seed", type=int)
    search.add_argument("--backend", choices=["local", "ray"])
    search.add_argument("--workers", type=int, help="parallel trials (local: processes)")
    search.add_argument("--ray-address", help="join an existing Ray cluster (implies ray)")
    search.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    search.add_argument(
        "--then-train",
        type=positive_int,
        metavar="N",
        help="after the search, train and ship the best N front members (sets the config's "
        "ship.top; its ship block, or the defaults, says how)",
    )
    search.add_argument(
        "--check",
        action="store_true",
        help="check the config (space, options, run folder) and exit; nothing is run or written",
    )
    search.set_defaults(func=cmd_search)
