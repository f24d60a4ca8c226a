"""The report answers questions (issue 25, item 4), checked on the HTML it writes.

The run here is synthetic (`bench.make_big_run`: real hybrid-space specs, jittered analytic costs,
some failed and pruned trials) with three objectives and a constraint that about a third of the
finished trials break, so every kind of point is present. The same run is opened in a real
browser by tests/test_report_browser.py.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.make_big_run import make_big_run, sample_specs
from mixnas.cli import main
from mixnas.manifest import CONFIG
from mixnas.records import FAILED, OK, PRUNED
from mixnas.report import figures as report_figures
from mixnas.report import write_report
from mixnas.report.data import RunData
from mixnas.report.decisions import Decisions, decisions_of, importances, stage_decisions
from mixnas.report.reference import ReportOptionError, parse_hv_reference
from strategies.multiobjective import hypervolume, to_losses

TRIALS = 160
OBJECTIVES = ["macs", "params", "bitops"]


def small_run(root: Path, name: str = "small", trials: int = TRIALS) -> Path:
    """A three-objective run with infeasible (activation_bytes above 1.3e6: about a third of
    them), pruned and failed trials; its report is not written."""
    run = make_big_run(root, name, trials, objectives=3, specs=sample_specs(30, seed=3))
    config = json.loads((run / CONFIG).read_text())
    config["constraints"] = {"activation_bytes": {"max": 1.3e6}}
    (run / CONFIG).write_text(json.dumps(config))
    return run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_run(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def html(run_dir: Path) -> str:
    return write_report(run_dir).read_text()


def _section(html: str, heading: str) -> str:
    return html.split(f"<h2>{heading}</h2>")[1].split("<h2>")[0]


def _svgs(text: str) -> list[str]:
    return re.findall(r"<svg.*?</svg>", text, flags=re.S)


def test_the_run_has_every_kind_of_trial(run_dir: Path) -> None:
    run = RunData.load(run_dir)
    kinds = report_figures.kinds_of(run)
    for kind in ("front", "feasible", "infeasible", "pruned", "failed"):
        assert (kinds == kind).sum() > 0, kind


def test_charts_scale_to_the_page_and_nothing_is_fetched(html: str) -> None:
    svgs = re.findall(r"<svg[^>]*>", html)
    assert len(svgs) >= 3 + 1 + 2 + 3  # pairs, hypervolume, parallel coordinates, importances
    assert all('class="chart"' in s and "viewBox=" in s for s in svgs)
    assert "svg.chart { display: block; width: 100%; height: auto; }" in html
    assert "grid-template-columns: repeat(auto-fill" in html  # several columns when wide
    assert "@media (max-width: 700px)" in html  # larger text in the charts when narrow
    assert "<meta name='viewport'" in html
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)


def test_front_members_are_marked_in_every_pair(run_dir: Path, html: str) -> None:
    run = RunData.load(run_dir)
    on_front = int(run.on_front.sum())
    section = _section(html, "Pareto front")
    *pairs, three_d = _svgs(section)
    assert len(pairs) == 3  # three objectives: three pairs, then the three at once
    for svg in pairs:
        assert svg.count('class="pt front"') == on_front
        assert ">Pareto front</text>" in svg  # the legend
    assert 'aria-label="All three objectives (oblique view)"' in three_d
    assert three_d.count('class="pt3 front"') == on_front
    ok = run.trials.status == OK
    assert three_d.count('class="pt3 ') == int(ok.sum())  # every trial reporting all three
    assert "The last chart draws the three objectives at once" in section
    assert "Pareto front of all 3 objectives, marked in every pair" in section
    assert "can look dominated" in section
    # in at least one pair some front member is beaten in both of that pair's objectives
    losses = run.losses[run.on_front]
    beaten = [
        any(((pair <= row).all(1) & (pair < row).any(1)).any() for row in pair)
        for pair in (losses[:, [a, b]] for a, b in ((0, 1), (0, 2), (1, 2)))
    ]
    assert any(beaten)


def test_infeasible_pruned_and_failed_trials_are_drawn_apart(run_dir: Path, html: str) -> None:
    run = RunData.load(run_dir)
    t = run.trials
    infeasible = (t.status == OK) & ~run.eligible
    section = _section(html, "Pareto front")
    pairs = _svgs(section)[:3]
    for (a, b), svg in zip(((0, 1), (0, 2), (1, 2)), pairs, strict=True):
        both = np.isfinite(t.metric(OBJECTIVES[a])) & np.isfinite(t.metric(OBJECTIVES[b]))
        assert svg.count('class="pt infeasible"') == int((infeasible & both).sum())
        assert svg.count('class="pt pruned"') == int(((t.status == PRUNED) & both).sum())
        assert svg.count('class="pt feasible"') == int((run.eligible & ~run.on_front).sum())
        assert ">infeasible</text>" in svg
        # shapes of their own: hollow squares and triangles, not discs
        assert re.search(r'<path class="pt infeasible" d="M[^"]*h[^"]*v', svg)
    pruned_pairs = [s for s in pairs if 'class="pt pruned"' in s]
    assert pruned_pairs and all(">pruned</text>" in s for s in pruned_pairs)
    failed = int((t.status == FAILED).sum())
    assert f"{failed:,} failed (black crosses), {failed:,} of which report too few" in section
    assert "infeasible (ok, breaking a constraint)" in html
    assert f"<b>{int(infeasible.sum())}</b> infeasible" in html


def test_parallel_coordinates_have_architecture_axes(run_dir: Path, html: str) -> None:
    section = _section(html, "Parallel coordinates")
    mixers, shapes = _svgs(section)
    for name in ("macs", "params", "bitops", "s1 mixer", "s2 mixer"):
        assert f'font-weight="bold">{name}</text>' in mixers
    for name in ("s1 depth", "s1 width", "s1 bits", "s3 bits"):
        assert f'font-weight="bold">{name}</text>' in shapes
    # the categorical axes name their categories: the mixers the trials use
    run = RunData.load(run_dir)
    ok = np.flatnonzero(run.trials.status == OK)
    used = {stage_decisions(s)["s1 mixer"] for s in run.specs_of(ok)}
    for mixer in used:
        short = mixer if len(mixer) <= 14 else mixer[:13] + "\u2026"
        assert f"<title>{mixer}</title>{short}</text>" in mixers
    assert mixers.count('class="line"') == len(ok)  # under the cap: every ok trial
    assert "bit widths (w = weights, a = activations)" in section


def test_decisions_read_from_specs() -> None:
    def block(mixer: str, bits: int | None) -> dict[str, object]:
        quant = {"weight_bits": bits, "act_bits": 8} if bits else None
        return {"token_mixer": {"name": mixer}, "quant": quant}

    a = {"stages": [{"width": 32, "blocks": [block("conv", 8), block("attention", 4)]}]}
    b = {"stages": [{"width": 64, "blocks": [block("conv", None)]}, {"width": 8, "blocks": []}]}
    assert stage_decisions(a) == {
        "s1 mixer": "conv+attention", "s1 depth": 2, "s1 width": 32, "s1 bits": "w8a8+w4a8",
    }  # fmt: skip
    assert stage_decisions({"stages": [{"blocks": [{}]}]}) == {}  # damaged: no decisions
    d = decisions_of([a, b])
    assert d.names == ["s1 mixer", "s1 depth", "s1 width", "s2 width", "s1 bits"]
    # a has no stage 2: "-" and 0; b's stage 2 has no blocks, so the same mixer, depth and bits
    assert d.fixed == {"s2 mixer": "-", "s2 depth": 0, "s2 bits": "-"}
    assert d.categories["s1 bits"] == ["fp32", "w8a8+w4a8"]
    assert d.column("s1 bits").tolist() == [1.0, 0.0]


def test_importance_finds_the_decision_that_matters() -> None:
    rng = np.random.default_rng(0)
    n = 120
    mixers = rng.choice(["attention", "conv", "pool"], n).tolist()
    depths = rng.integers(1, 5, n).tolist()
    widths = rng.choice([32, 64, 96], n).tolist()
    d = Decisions(
        ["s1 mixer", "s1 depth", "s1 width"],
        {"s1 mixer": mixers, "s1 depth": depths, "s1 width": widths},
        {"s1 mixer": ["attention", "conv", "pool"]},
        {},
    )
    target = np.array([10.0 * (m == "attention") for m in mixers]) + rng.normal(0, 0.1, n)
    imp = importances(d, "latency", target)
    assert imp.values[0][0] == "s1 mixer" and imp.values[0][1] > 0.8
    assert sum(v for _, v in imp.values) == pytest.approx(1.0)
    wide = 10.0 ** (np.array(depths, dtype=float) * 1.5)  # spans decades: log10 used
    imp = importances(d, "params", wide)
    assert imp.log and imp.values[0][0] == "s1 depth"
    few = importances(d, "top1", np.where(np.arange(n) < 5, 1.0, np.nan))
    assert not few.values and "too few" in few.note


def test_importance_charts_one_per_objective(run_dir: Path, html: str) -> None:
    section = _section(html, "Importance of the decisions")
    charts = _svgs(section)
    labels = [re.search(r'aria-label="([^"]*)"', c).group(1) for c in charts]  # type: ignore[union-attr]
    assert [label.removesuffix(" (log10)") for label in labels] == [
        f"Importance for {m}" for m in OBJECTIVES
    ]
    assert all(c.count('class="bar"') >= 3 for c in charts)
    assert "FanovaImportanceEvaluator" in section
    ok = int((RunData.load(run_dir).trials.status == OK).sum())
    assert f"built from all {ok:,} finished trials" in section  # under the cap: every one


def test_importance_rests_on_a_bounded_sample(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    read: list[int] = []
    original = RunData.specs_of

    def counting(self: RunData, positions: object) -> list[dict[str, object]]:
        out = original(self, positions)  # type: ignore[arg-type]
        read.append(len(out))
        return out

    monkeypatch.setattr(report_figures, "IMPORTANCE_TRIALS", 40)
    monkeypatch.setattr(RunData, "specs_of", counting)
    html = write_report(copy, max_points=30).read_text()
    run = RunData.load(copy)
    ok = int((run.trials.status == OK).sum())
    assert f"a random sample (seed 0) of 40 of the {ok:,} finished trials" in html
    assert max(read) <= 40 + 30 + int(run.on_front.sum())  # never every spec


def test_hypervolume_from_a_reference_the_user_sets(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    html = write_report(copy).read_text()
    section = _section(html, "Hypervolume over trials")
    assert "(the default: this run's worst feasible value" in section
    default = re.search(r"--hv-ref ([^<]+)</code>", section).group(1)  # type: ignore[union-attr]
    assert default.startswith("macs=") and "params=" in default and "bitops=" in default
    final_default = re.search(r"Final hypervolume: <b>([^<]+)</b>", section).group(1)  # type: ignore[union-attr]
    again = _section(
        write_report(copy, hv_reference=default).read_text(), "Hypervolume over trials"
    )
    assert f"Final hypervolume: <b>{final_default}</b>" in again  # the printed point reproduces

    run = RunData.load(copy)
    ref = [3e7, 2e6, 5e9]
    text = "bitops=5e9, macs=3e7,params=2e6"  # any order, spaces allowed
    assert main(["report", str(copy), "--hv-ref", text]) == 0
    section = _section((copy / "report.html").read_text(), "Hypervolume over trials")
    assert "macs=3e+07,params=2e+06,bitops=5e+09</code> (set with <code>--hv-ref</code>)" in section
    final = float(re.search(r"Final hypervolume: <b>([^<]+)</b>", section).group(1))  # type: ignore[union-attr]
    eligible = run.losses[run.eligible]
    assert final == pytest.approx(hypervolume(eligible, ref), rel=1e-5)
    assert "hypervolume (macs \u00d7 params \u00d7 bitops)" in section

    # comparable: the first half of the same run, from the same point, has no more volume
    half = small_run(tmp_path / "half", "small", TRIALS // 2)
    assert main(["report", str(half), "--hv-ref", text]) == 0
    half_html = (half / "report.html").read_text()
    half_final = float(re.search(r"Final hypervolume: <b>([^<]+)</b>", half_html).group(1))  # type: ignore[union-attr]
    assert 0 < half_final <= final
    capsys.readouterr()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("macs=1,params=2", "no value for bitops"),
        ("macs=1,params=2,bitops=3,top1=4", "'top1=4' is not METRIC=VALUE"),
        ("macs=1,params=x,bitops=3", "params='x' is not a finite number"),
        ("macs=1,macs=2,params=2,bitops=3", "macs is given twice"),
        ("macs=1,params=nan,bitops=3", "is not a finite number"),
    ],
)
def test_bad_hv_reference_is_one_line(
    run_dir: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    objectives = RunData.load(run_dir).objectives
    with pytest.raises(ReportOptionError, match=re.escape(message)):
        parse_hv_reference(text, objectives)
    before = (
        (run_dir / "report.html").stat().st_mtime_ns if (run_dir / "report.html").exists() else None
    )
    assert main(["report", str(run_dir), "--hv-ref", text]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "--hv-ref" in err
    after = (
        (run_dir / "report.html").stat().st_mtime_ns if (run_dir / "report.html").exists() else None
    )
    assert before == after  # nothing written


def test_two_objective_report_uses_a_loss_reference(tmp_path: Path) -> None:
    run_dir = make_big_run(tmp_path, "two", 80, specs=sample_specs(10, seed=4))
    html = write_report(run_dir, hv_reference=[1e9, 1e8]).read_text()
    run = RunData.load(run_dir)
    final = float(re.search(r"Final hypervolume: <b>([^<]+)</b>", html).group(1))  # type: ignore[union-attr]
    losses = to_losses(
        np.column_stack([run.trials.metric("macs"), run.trials.metric("params")])[run.eligible],
        ["minimize", "minimize"],
    )
    assert final == pytest.approx(hypervolume(losses, [1e9, 1e8]), rel=1e-5)
    for bad in ([1.0], [1.0, float("inf")]):
        with pytest.raises(ReportOptionError, match="one finite value for each of the 2"):
            write_report(run_dir, hv_reference=bad)


def test_manifest_is_a_summary_table_with_the_raw_json_folded(html: str) -> None:
    section = _section(html, "Manifest")
    table, details = section.split("<details>")
    for label in ("created", "command", "space hash", "space", "strategy", "versions", "host"):
        assert f"<th class='text'>{label}</th>" in table
    assert "<pre>" not in table and "optuna" in table  # versions listed in words
    assert details.startswith("<summary>manifest.json as written</summary><pre>")
    assert "&quot;space_hash&quot;" in details


def test_one_objective_and_no_eligible_trial_still_report(tmp_path: Path) -> None:
    import sqlite3

    one = make_big_run(tmp_path, "one", 60, specs=sample_specs(10, seed=5))
    config = json.loads((one / CONFIG).read_text())
    config["objectives"] = [{"metric": "params", "direction": "minimize"}]
    (one / CONFIG).write_text(json.dumps(config))
    html = write_report(one).read_text()
    assert "params per trial" in html and "One objective: see the best-so-far curve" in html
    assert 'aria-label="Importance for params' in html
    assert ">s1 mixer</text>" in _section(html, "Parallel coordinates")

    none = make_big_run(tmp_path, "none", 30, specs=sample_specs(10, seed=6))
    with sqlite3.connect(none / "trials.sqlite") as conn:
        conn.execute("UPDATE trials SET status = 'failed', metrics = '{}', error = 'boom'")
    html = write_report(none).read_text()
    assert "No eligible trial yet." in _section(html, "Hypervolume over trials")
    assert "No finished trial yet." in _section(html, "Parallel coordinates")
    assert "No finished trial yet." in _section(html, "Importance of the decisions")
    assert "<b>30</b> failed" in html and "The front is empty." in html


def test_many_categories_collapse_into_other() -> None:
    from mixnas.report.decisions import OTHER, collapse

    names = [f"m{i:02d}" for i in range(30)]
    values = names + ["m05"] * 5 + ["m07"] * 3  # m05 and m07 the most frequent
    d = Decisions(["s1 mixer"], {"s1 mixer": values}, {"s1 mixer": sorted(names)}, {})
    short, merged = collapse(d, 4)
    assert short.categories["s1 mixer"] == ["m00", "m05", "m07", OTHER]
    assert merged == {"s1 mixer": 27}
    assert short.values["s1 mixer"].count(OTHER) == 27
    assert collapse(d, 40)[0].categories == d.categories  # few enough: unchanged


def test_an_ok_trial_missing_an_objective_is_counted_not_drawn(tmp_path: Path) -> None:
    import sqlite3

    run_dir = make_big_run(tmp_path, "gap", 40, specs=sample_specs(8, seed=7))
    with sqlite3.connect(run_dir / "trials.sqlite") as conn:
        (trial,) = conn.execute("SELECT MIN(trial_id) FROM trials WHERE status = 'ok'").fetchone()
        conn.execute("UPDATE trials SET metrics = '{\"macs\": 1.0}' WHERE trial_id = ?", (trial,))
    html = write_report(run_dir).read_text()
    section = _section(html, "Pareto front")
    assert "1 finished without reporting every objective (not drawn)" in section
    assert f"trial {trial} (" not in section


def test_damaged_specs_do_not_stop_the_charts(tmp_path: Path) -> None:
    import sqlite3

    run_dir = make_big_run(tmp_path, "odd", 60, specs=sample_specs(8, seed=8))
    odd = ["[1, 2]", '{"stages": "abc"}', '{"stages": [{"width": "x", "blocks": []}]}', "1e999"]
    with sqlite3.connect(run_dir / "trials.sqlite") as conn:
        rows = conn.execute("SELECT trial_id FROM trials WHERE status = 'ok' LIMIT 4").fetchall()
        for (trial,), text in zip(rows, odd, strict=True):
            conn.execute("UPDATE trials SET spec = ? WHERE trial_id = ?", (text, trial))
    html = write_report(run_dir).read_text()
    assert ">s1 mixer</text>" in _section(html, "Parallel coordinates")
    assert 'aria-label="Importance for macs' in html
