"""`mixnas scale`: the JSON contract, reports, RUN_DIR:TRIAL_ID as a base, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mixnas.cli import main
from search_space import ArchSpec, load_space, spec_cost


@pytest.fixture(scope="module")
def base_file(tmp_path_factory) -> Path:
    spec = load_space("hybrid_cpu").sample(np.random.default_rng(0))
    path = tmp_path_factory.mktemp("base") / "base.json"
    path.write_text(spec.to_json())
    return path


def _rows(capsys) -> list[dict]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _check_contract(rows, metric, values):
    assert [r["budget"] for r in rows] == [{"metric": metric, "value": v} for v in values]
    for r in rows:
        spec = ArchSpec.from_dict(r["spec"])
        assert spec.id == r["id"]
        measured = spec_cost(spec).to_dict()
        assert {k: r["cost"][k] for k in measured} == measured  # the cost is the spec's own
        assert r["cost"][metric] <= r["budget"]["value"] and r["meets_budget"]
    costs = [r["cost"][metric] for r in rows]
    assert costs == sorted(costs)


@pytest.mark.parametrize("rule", ["compound", "width", "depth"])
def test_json_contract_macs(base_file, capsys, rule):
    values = [3e6, 6e6, 1.2e7]
    budget = "macs=" + ",".join(f"{v:g}" for v in values)
    assert main(["scale", str(base_file), "--budget", budget, "--rule", rule, "--json"]) == 0
    rows = _rows(capsys)
    _check_contract(rows, "macs", values)
    assert rows[-1]["cost"]["macs"] > 2 * spec_cost(ArchSpec.from_json(base_file.read_text())).macs


def test_json_contract_params_from_the_zoo(capsys):
    assert main(["scale", "deit_t", "--budget", "params=1e6,3e6,6e6", "--json"]) == 0
    _check_contract(_rows(capsys), "params", [1e6, 3e6, 6e6])


def test_json_contract_latency_on_a_roofline_device(base_file, capsys):
    # a roofline device needs no timing; the budget is checked on the predictor's 90% quantile
    assert main(["scale", str(base_file), "--budget", "latency_ms@raspi4=0.5,1", "--json"]) == 0
    rows = _rows(capsys)
    _check_contract(rows, "latency_ms@raspi4", [0.5, 1.0])
    for r in rows:
        assert r["cost"]["latency_ms@raspi4:predicted"] <= r["cost"]["latency_ms@raspi4"]


def test_proxy_rule_and_report(base_file, tmp_path, capsys):
    out = tmp_path / "family"
    args = ["scale", str(base_file), "--budget", "macs=3e6,4e6", "--rule", "proxy"]
    args += ["--proxy", "zen", "--latency-device", "raspi4", "--out", str(out), "--json"]
    assert main(args) == 0
    rows = _rows(capsys)
    _check_contract(rows, "macs", [3e6, 4e6])
    assert all(r["rule_note"].startswith("grow") for r in rows)
    assert all("zen" in r["proxies"] and "latency_ms@raspi4" in r["predicted"] for r in rows)
    members = sorted(out.glob("member-*.json"))
    assert len(members) == 2
    # an emitted member is itself a valid BASE (exported-record form: the spec under "spec")
    assert main(["scale", str(members[0]), "--budget", "macs=6e6", "--json"]) == 0
    assert _rows(capsys)[0]["cost"]["macs"] <= 6e6
    assert "zen" in (out / "family.md").read_text()
    assert "<svg" in (out / "report.html").read_text()


def test_base_from_a_run_trial(tmp_path, capsys):
    from mixnas import load_trials
    from mixnas.config import parse_config
    from mixnas.driver import run_search
    from tests.run_helpers import small_config

    cfg = small_config("scale", str(tmp_path), budget={"trials": 2})
    cfg["evaluators"][0]["options"]["delay"] = 0.0
    run_search(parse_config(cfg), quiet=True)
    run_dir = tmp_path / "scale"
    trial = load_trials(run_dir).iloc[0]
    base_params = spec_cost(ArchSpec.from_json(trial["spec"])).params
    budget = f"params={4 * base_params}"
    assert main(["scale", f"{run_dir}:{trial['trial_id']}", "--budget", budget, "--json"]) == 0
    row = _rows(capsys)[0]
    assert row["meets_budget"] and row["cost"]["params"] > base_params
    assert main(["scale", f"{run_dir}:999", "--budget", budget]) == 2
    assert "no trial 999" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["deit_t", "--budget", "flops=1e8"], "metric must be macs, params or latency_ms@DEVICE"),
        (["deit_t", "--budget", "macs=1e8,abc"], "values must be numbers"),
        (["deit_t", "--budget", "macs=-5"], "finite numbers > 0"),
        (["deit_t", "--budget", "macs"], "METRIC=V1,V2"),
        (["no_such_model", "--budget", "macs=1e8"], "not a zoo model"),
        (["deit_t", "--budget", "macs=10"], "smallest member"),
        (["deit_t", "--budget", "latency_ms@nowhere=1"], "no predictor for this device"),
        (["deit_t", "--budget", "macs=1e8", "--rule", "proxy", "--proxy", "nope"], "nope"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, needle, capsys):
    assert main(["scale", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_bad_input_exit_status_from_the_shell(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"stages": 3}')
    result = subprocess.run(
        [sys.executable, "-m", "mixnas", "scale", str(bad), "--budget", "macs=1e8"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stderr.startswith("mixnas: error:")
