"""Smoke test of `bench/space.py` at tiny sizes: result structure, agreement, markdown section."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import space as bench

COUNTER_NAMES = ("analytic", *bench.COUNTERS)


@pytest.fixture(scope="module")
def report() -> bench.Report:
    # Two mixers cover both blind spots the table exists to show (SDPA and FFTs) in a second or so.
    return bench.run(["hybrid"], n=5, models=2, seed=0, mixers=["attention", "global_filter"])


def test_space_result_structure(report: bench.Report) -> None:
    (result,) = report.spaces
    assert result.space == "hybrid" and result.samples == 5 and len(result.records) == 2
    for rate in (result.sample_per_s, result.validate_per_s, result.cost_per_s, result.build_per_s):
        assert rate > 0
    for record in result.records:
        assert set(record.macs) == set(bench.COUNTERS)
        assert set(record.ms) == {"build", *COUNTER_NAMES}
        assert record.params.keys() == {"thop"}
    summary = bench.summarize(result.records)
    assert [s.counter for s in summary] == list(COUNTER_NAMES)


def test_analytic_macs_match_counted(report: bench.Report) -> None:
    for record in report.spaces[0].records:
        counted = record.macs[bench.REFERENCE]
        assert math.isclose(record.analytic_macs, counted, rel_tol=0.02), record.spec_id
        assert record.analytic_params == record.exact_params


def test_mixer_table_shows_what_fvcore_skips(report: bench.Report) -> None:
    rows = {r.mixer: r for r in report.mixers}
    attention, spectral = rows["attention"], rows["global_filter"]
    assert attention.fvcore_skips == ["aten::scaled_dot_product_attention"]
    assert attention.macs["fvcore"] < attention.macs[bench.REFERENCE]
    assert math.isclose(attention.analytic_macs, attention.macs[bench.REFERENCE], rel_tol=0.02)
    assert "aten::fft_rfft2" in spectral.fvcore_skips
    assert spectral.macs["fvcore"] < spectral.macs[bench.REFERENCE]


def test_report_serializes(report: bench.Report) -> None:
    data = json.loads(json.dumps(report.to_dict()))
    assert data["command"].startswith("python bench/space.py --space hybrid --n 5 --models 2")
    assert {s["counter"] for s in data["spaces"][0]["summary"]} == set(COUNTER_NAMES)
    assert data["machine"]["cpu_count"]


def test_markdown_section_is_replaced_in_place(report: bench.Report, tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nIntro.\n\n## Other\n\nKept.\n", encoding="utf-8")
    section = bench.to_markdown(report)
    bench.write_section(doc, section)
    bench.write_section(doc, section)
    text = doc.read_text(encoding="utf-8")
    assert text.count(bench.SECTION_TITLE) == 1
    assert text.startswith("# Benchmarks\n\nIntro.") and "## Other\n\nKept." in text
    assert "| attention " in text and report.command in text


def test_space_option_accepts_repeats_and_commas() -> None:
    args = bench.parse_args(["--space", "hybrid,isotropic", "--space", "sequence"])
    assert bench._spaces(args.space) == ["hybrid", "isotropic", "sequence"]
    assert bench._spaces(bench.parse_args([]).space) == list(bench.DEFAULT_SPACES)
