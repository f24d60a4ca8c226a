"""bench/quant.py on one tiny spec: every policy is scored and the fronts are consistent."""

from __future__ import annotations

from bench.quant import JOINT, POLICIES, fronts, render, run_one
from search_space.spec import InputSpec
from tests.test_quant import tiny_spec


def test_bench_scores_every_policy_and_the_joint_front_contains_the_fixed_one() -> None:
    digits = InputSpec("image", num_classes=10, channels=3, resolution=(16, 16))
    spec = tiny_spec().replace(input=digits)
    row = run_one(spec, steps=5, repeats=1, latency=False)
    assert "error" not in row, row
    assert set(row["top1"]) == set(POLICIES)
    assert row["bytes"]["w4a8"] < row["bytes"]["int8"] < row["bytes"]["fp32"]
    other = {**row, "spec": "other", "top1": {p: v - 1.0 for p, v in row["top1"].items()}}
    summary = fronts([row, other])
    assert summary["hv_joint"] >= summary["hv_fixed8"] > 0
    assert len(summary["front_joint"]) >= 1 and set(JOINT) < set(POLICIES)
    text = render([row, other], summary, "python bench/quant.py")
    assert text.startswith("## Quantization") and f"`{row['spec']}`" in text


def test_resume_log_rows_are_read_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bench.quant import _logged_rows

    log = tmp_path / "err.log"
    log.write_text('noise\n[1/2] {"spec": "abc", "top1": {"fp32": 90.0}}\n[2/2] {"spec": "def"}\n')
    rows = _logged_rows(log)
    assert list(rows) == ["abc", "def"] and rows["abc"]["top1"]["fp32"] == 90.0
