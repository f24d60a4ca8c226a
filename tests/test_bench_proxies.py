"""The hybrid proxies benchmark: its report ranks proxies against accuracy honestly, and a tiny end
to end run writes its section and JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from bench import proxies_hybrid


def _records(n: int = 16) -> list[dict]:
    rng = np.random.default_rng(0)
    acc = rng.uniform(10, 90, n)
    groups = ["attention", "conv"] * (n // 2)
    return [
        {
            "group": groups[i],
            "top1": float(acc[i]),
            "scores": {
                "oracle": float(acc[i]),  # ranks exactly like accuracy
                "reversed": float(-acc[i]),
                "params": float(acc[i] + rng.normal(0, 30)),  # a noisy baseline
            },
            "seconds": {"oracle": 0.1, "reversed": 0.1, "params": 0.0},
        }
        for i in range(n)
    ]


def test_report_scores_an_oracle_perfectly_and_checks_reliability() -> None:
    args = argparse.Namespace(seed=0)
    table, summary = proxies_hybrid.report(_records(), ["oracle", "reversed", "params"], args)
    oracle, reverse = summary["proxies"]["oracle"], summary["proxies"]["reversed"]
    assert oracle["kendall"] == pytest.approx(1.0) and reverse["kendall"] == pytest.approx(-1.0)
    assert oracle["per_group_kendall"] == pytest.approx({"attention": 1.0, "conv": 1.0})
    assert oracle["beats_params"] == "yes" and reverse["beats_params"] == "no"
    assert summary["groups"] == {"attention": 8, "conv": 8}
    assert "| oracle | 1.000 | 1.000 | yes | 1.000 | 1.000 |" in table


@pytest.mark.slow  # a process pool, three trainings: ~15 s alone, longer on a shared machine
def test_tiny_run_writes_its_section_and_json(tmp_path: Path) -> None:
    out, js = tmp_path / "bench.md", tmp_path / "run.json"
    out.write_text("# Benchmarks\n\n## Other section\n\nkept\n")
    argv = ["--n", "3", "--steps", "2", "--workers", "1", "--data", "synthetic"]
    argv += ["--proxies", "params,synflow", "--out", str(out), "--json", str(js)]
    assert proxies_hybrid.main(argv) == 0
    text = out.read_text()
    assert "## Other section\n\nkept" in text and proxies_hybrid.TITLE in text
    data = json.loads(js.read_text())
    assert len(data["records"]) == 3
    assert all(np.isfinite(r["scores"]["params"]) for r in data["records"])
    assert set(data["summary"]["proxies"]) == {"params", "synflow"}
