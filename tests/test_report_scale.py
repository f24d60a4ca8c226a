"""Reading runs at scale: the report samples what it draws and says so, the curves and the front
computed the fast way equal the exact ones, and `load_trials` keeps its columns.

The run here has a few thousand synthetic trials (`bench.make_big_run`: real hybrid-space specs,
jittered analytic costs, some failed and pruned trials); the caps are lowered so that sampling
happens. Timings live in the benchmarks, not here.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.make_big_run import make_big_run, sample_specs
from mixnas import load_trials
from mixnas.cli import main
from mixnas.config import ObjectiveConfig
from mixnas.front import best, front, hypervolume_curve, nondominated
from mixnas.records import FAILED, OK, PRUNED, RunStore, TrialRecord
from mixnas.report import write_report
from mixnas.report.data import RunData, describe_spec
from strategies.multiobjective import hypervolume, pareto_mask, to_losses

TRIALS = 3000


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    return make_big_run(root, "big", TRIALS, specs=sample_specs(12, seed=1))


@pytest.fixture()
def run_copy(big_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "runs" / big_run.name
    shutil.copytree(big_run, copy)
    return copy


def _records(run_dir: Path) -> list[TrialRecord]:
    with RunStore(run_dir) as store:
        return store.records()


# -- the report -----------------------------------------------------------------------------------


def test_report_draws_every_front_point_and_at_most_the_cap_of_the_others(run_copy: Path) -> None:
    cap = 150
    path = write_report(run_copy, max_points=cap, curve_points=40)
    html = path.read_text()
    run = RunData.load(run_copy)
    on_front = int(run.on_front.sum())
    # every ok trial reports both objectives here, and so does every pruned one (analytic costs)
    reporting = int(
        (np.isfinite(run.trials.metric("macs")) & np.isfinite(run.trials.metric("params"))).sum()
    )
    assert reporting == int((run.trials.status != FAILED).sum())
    assert 0 < on_front < cap < reporting
    notice = f"{on_front + cap:,} of {reporting:,} trials that report the objectives drawn"
    assert notice in html
    assert f"all {on_front:,} on the Pareto front" in html
    assert "trials.csv lists every trial" in html

    scatter = html.split("<h2>Pareto front</h2>")[1].split("<h2>")[0]
    assert scatter.count('class="pt front"') == on_front
    others = sum(scatter.count(f'class="pt {k}"') for k in ("feasible", "pruned", "infeasible"))
    assert others == cap and scatter.count('class="pt failed"') == 0  # failed: no metrics
    parallel = html.split("<h2>Parallel coordinates</h2>")[1].split("<h2>")[0]
    ok_drawn = int((run.trials.status == OK).sum())  # pruned trials have no bitops: not drawn
    charts = parallel.count("<svg")
    assert charts == 2 and parallel.count("<polyline") == charts * min(ok_drawn, on_front + cap)
    assert "Computed after 40 evenly spaced trials of 3,000" in html

    failed = int((run.trials.status == FAILED).sum())
    assert failed > 0 and f"{failed} failed" in html.replace("</b>", "")

    # the tables: the front in pareto.csv and the report; every trial in trials.csv
    trials = pd.read_csv(run_copy / "trials.csv")
    assert len(trials) == TRIALS and list(trials["trial_id"]) == list(range(TRIALS))
    assert {"mixers", "depths", "widths", "bits", "macs", "params", "error"} <= set(trials)
    pareto = pd.read_csv(run_copy / "pareto.csv")
    assert sorted(pareto["trial_id"]) == [r.trial_id for r in run.front()]
    table = html.split("<h2>Front members</h2>")[1].split("<h2>")[0]
    assert table.count("<tr>") == on_front + 1

    # seeded: the same records give the same report
    assert write_report(run_copy, max_points=cap, curve_points=40).read_text() == html


def test_report_under_the_cap_draws_everything_and_says_so(run_copy: Path) -> None:
    html = write_report(run_copy, max_points=10 * TRIALS).read_text()
    run = RunData.load(run_copy)
    reporting = int((run.trials.status != FAILED).sum())  # ok and pruned report macs, params
    assert f"All {reporting:,} trials that report the objectives are drawn." in html
    assert "Computed after every trial" not in html  # 3000 trials > 500 curve points
    scatter = html.split("<h2>Pareto front</h2>")[1].split("<h2>")[0]
    assert scatter.count('class="pt ') == reporting


def test_trials_table_is_the_loaded_trials_while_a_driver_writes(run_copy: Path) -> None:
    from mixnas.report.tables import trials_table

    run = RunData.load(run_copy)
    spec = dict(run.by_id(0).spec)  # type: ignore[union-attr]
    with RunStore(run_copy) as store:  # a trial finishes after the report read the columns
        store.start(TRIALS, "late", "random", spec)
        store.finish(TrialRecord(TRIALS, "late", "random", OK, spec, {"macs": 1.0, "params": 1.0}))
    table = trials_table(run)
    assert len(table) == TRIALS and table["trial_id"].max() == TRIALS - 1
    assert table["mixers"].notna().all()


def test_report_cli_takes_the_caps(run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(run_copy), "--max-points", "20", "--curve-points", "10"]) == 0
    html = (run_copy / "report.html").read_text()
    assert re.search(r"[\d,]+ of [\d,]+ trials that report the objectives drawn", html)
    assert "after 10 evenly spaced trials" in html
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(run_copy), "--max-points", "0"])
    assert exit_info.value.code == 2
    capsys.readouterr()


# -- the front and the best trial from columns equal the record forms -----------------------------


def test_run_data_front_best_and_counts_equal_the_record_forms(big_run: Path) -> None:
    run = RunData.load(big_run)
    records = _records(big_run)
    objectives, constraints = run.config.objectives, run.config.constraints
    assert [r.trial_id for r in run.front()] == [
        r.trial_id for r in front(records, objectives, constraints)
    ]
    assert run.front() == front(records, objectives, constraints)
    expected_best = best(records, objectives, constraints)
    assert expected_best is not None and run.best() == expected_best
    assert run.counts() == {s: sum(r.status == s for r in records) for s in (OK, FAILED, PRUNED)}
    assert run.by_id(17) == next(r for r in records if r.trial_id == 17)
    assert run.by_id(TRIALS + 5) is None


def test_runs_lists_the_big_run_with_its_front_best_and_in_flight_trials(
    run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with RunStore(run_copy) as store:
        store.start(TRIALS, "inflight", "random", {"stages": []})  # cut off by a kill
    records = _records(run_copy)
    run = RunData.load(run_copy)
    capsys.readouterr()
    assert main(["runs", str(run_copy.parent), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["trials"] == TRIALS and row["running"] == 1
    assert row["front"] == len(front(records, run.config.objectives, run.config.constraints))
    top = best(records, run.config.objectives, run.config.constraints)
    assert top is not None
    assert row["best"] == {"macs": top.metrics["macs"], "trial_id": top.trial_id}


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_nondominated_is_pareto_mask(m: int) -> None:
    rng = np.random.default_rng(m)
    for trial in range(60):
        n = int(rng.integers(0, 400))
        F = rng.integers(0, 5, (n, m)).astype(float) if trial % 2 else rng.normal(size=(n, m))
        if n and trial % 3 == 0:  # failures: NaN and infinities are never on the front
            F[rng.integers(0, n, 4), rng.integers(0, m)] = math.nan
            F[rng.integers(0, n, 2), 0] = math.inf
            F[rng.integers(0, n, 2), m - 1] = -math.inf
        np.testing.assert_array_equal(nondominated(F), pareto_mask(F))


# -- the hypervolume curve ------------------------------------------------------------------------


def _exact_curve(
    records: list[TrialRecord],
    objectives: list[ObjectiveConfig],
    constraints: dict[str, dict[str, float]],
) -> tuple[list[int], list[float]]:
    """The first version's curve: the hypervolume of every eligible trial so far, recomputed
    from scratch after each trial."""
    from mixnas.front import eligible, objective_matrix

    ok = [r for r in records if eligible(r, objectives, constraints)]
    losses = to_losses(objective_matrix(ok, objectives), [o.direction for o in objectives])
    low, high = losses.min(axis=0), losses.max(axis=0)
    scaled = (losses - low) / np.where(high > low, high - low, 1.0)
    ref = np.full(len(objectives), 1.1)
    done = {r.trial_id: i for i, r in enumerate(ok)}
    trials, values, rows = [], [], []
    for r in sorted(records, key=lambda r: r.trial_id):
        if r.trial_id in done:
            rows.append(done[r.trial_id])
        trials.append(r.trial_id)
        values.append(hypervolume(scaled[rows], ref) if rows else 0.0)
    return trials, values


def _small_run(m: int, n: int = 240) -> list[TrialRecord]:
    rng = np.random.default_rng(10 + m)
    names = ["score", "params", "macs"][:m]
    records = []
    for i in rng.permutation(n):  # records in any order: the curve follows trial numbers
        status = FAILED if i % 17 == 3 else OK
        values = rng.integers(1, 40, m).astype(float)  # ties and duplicates on purpose
        metrics = {} if status == FAILED else dict(zip(names, values.tolist(), strict=True))
        if i % 23 == 5:
            metrics.pop(names[-1], None)  # an objective missing
        records.append(TrialRecord(int(i), f"s{i}", "random", status, {}, metrics))
    return records


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_curve_equals_the_exact_recomputation(m: int) -> None:
    directions = ["maximize", "minimize", "minimize"]
    names = ["score", "params", "macs"][:m]
    objectives = [ObjectiveConfig(n, d) for n, d in zip(names, directions[:m], strict=True)]
    constraints = {"params": {"max": 35.0}}
    records = _small_run(m)
    trials, values = _exact_curve(records, objectives, constraints)

    every, got, ref = hypervolume_curve(records, objectives, constraints)
    assert every == trials and ref == [1.1] * m
    assert got == pytest.approx(values, rel=1e-12, abs=1e-12)

    sampled, got, _ = hypervolume_curve(records, objectives, constraints, max_points=25)
    assert 20 <= len(sampled) <= 25 and sampled[-1] == trials[-1]
    exact = dict(zip(trials, values, strict=True))
    assert got == pytest.approx([exact[t] for t in sampled], rel=1e-12, abs=1e-12)
    assert values[-1] > 0


def test_hypervolume_curve_of_no_eligible_trial_is_empty() -> None:
    objectives = [ObjectiveConfig("score", "maximize"), ObjectiveConfig("params", "minimize")]
    records = [TrialRecord(0, "a", "random", FAILED, {}), TrialRecord(1, "b", "random", OK, {})]
    assert hypervolume_curve(records, objectives, {}) == ([], [], [])


# -- load_trials ----------------------------------------------------------------------------------


def _frame_from_records(run_dir: Path) -> pd.DataFrame:
    """`load_trials` as the first version built it: one TrialRecord per row."""
    rows = []
    on_front = RunData.load(run_dir).on_front
    with RunStore(run_dir) as store:
        for r, front in zip(store.iter_records(), on_front, strict=True):
            row = {
                "trial_id": r.trial_id,
                "spec_id": r.spec_id,
                "origin": r.origin,
                "status": r.status,
                "error": r.error,
                "started": r.started,
                "finished": r.finished,
                "seconds": (r.finished or 0.0) - (r.started or 0.0),
                **describe_spec(dict(r.spec)),
                "front": bool(front),
                "spec": json.dumps(r.spec, sort_keys=True),
            }
            row.update(r.metrics)
            rows.append(row)
    base = ["trial_id", "spec_id", "origin", "status", "error", "started", "finished", "seconds"]
    described = ["mixers", "depths", "widths", "bits", "front"]
    frame = pd.DataFrame(rows).astype({"front": "boolean"})
    metric_cols = sorted(c for c in frame.columns if c not in (*base, *described, "spec"))
    return frame[[*base, *described, *metric_cols, "spec"]]


def test_load_trials_keeps_its_columns_and_values(run_copy: Path) -> None:
    with RunStore(run_copy) as store:
        store.start(TRIALS, "inflight", "random", {"stages": []})  # not finished: not loaded
    frame = load_trials(run_copy)
    base = ["trial_id", "spec_id", "origin", "status", "error", "started", "finished", "seconds"]
    metrics = ["activation_bytes", "bitops", "bytes", "macs", "params"]
    described = ["mixers", "depths", "widths", "bits", "front"]
    assert list(frame.columns) == [*base, *described, *metrics, "spec"]
    assert len(frame) == TRIALS and list(frame["trial_id"]) == list(range(TRIALS))
    assert frame.loc[frame["status"] == FAILED, "macs"].isna().all()
    assert frame.loc[frame["status"] == PRUNED, "bitops"].isna().all()
    pd.testing.assert_frame_equal(frame, _frame_from_records(run_copy))


def test_load_trials_of_an_empty_run_has_the_base_columns(tmp_path: Path) -> None:
    with RunStore(tmp_path):
        pass
    frame = load_trials(tmp_path)
    assert len(frame) == 0
    assert list(frame.columns) == [
        "trial_id", "spec_id", "origin", "status", "error", "started", "finished", "seconds",
        "mixers", "depths", "widths", "bits", "front", "spec",
    ]  # fmt: skip
