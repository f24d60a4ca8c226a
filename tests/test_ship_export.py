"""``mixnas ship``: a trained model exported with its own weights, int8 files, ship.json, the
report's section. One run and one shipped folder per module (shipping writes ONNX: seconds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_ship_helpers import latency_run, make_trained

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A run over an 8-bit space, trial 0 'trained' (perturbed weights) in
    ``<run>/trained/trial-0``, shipped through the command line on the run folder."""
    from mixnas.cli import main
    from mixnas.report.data import RunData
    from search_space import ArchSpec

    root = tmp_path_factory.mktemp("ship")
    summary = latency_run(root, weight_bits=8)
    record = RunData.load(summary.run_dir).by_id(0)
    assert record is not None
    spec = ArchSpec.from_dict(dict(record.spec))
    folder = make_trained(
        summary.run_dir / "trained" / "trial-0",
        spec,
        source={"run": str(summary.run_dir), "trial": 0},
    )
    status = main(["ship", str(summary.run_dir)])
    data = json.loads((folder / "export" / "ship.json").read_text())
    return {"run": summary.run_dir, "folder": folder, "spec": spec, "status": status, "data": data}


def _outputs(shipped: dict[str, Any], batch: int = 3) -> tuple[Any, Any, Any]:
    """(input, trained model's output, freshly initialised model's output)."""
    import torch

    from mixnas.shipping import read_trained
    from search_space import build_model, example_input

    x = example_input(shipped["spec"], batch_size=batch, seed=7)
    with torch.no_grad():
        trained = read_trained(shipped["folder"]).float_model()(x).numpy()
        fresh = build_model(shipped["spec"], seed=0, quantize=False).eval()(x).numpy()
    return x, trained, fresh


def test_onnx_is_the_trained_model_within_1e4(shipped: dict[str, Any]) -> None:
    import onnxruntime

    assert shipped["status"] == 0
    x, trained, fresh = _outputs(shipped)
    path = shipped["folder"] / "export" / shipped["data"]["files"]["onnx"]["path"]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x.numpy()})
    assert np.max(np.abs(got - trained)) <= 1e-4
    assert np.max(np.abs(got - fresh)) > 1e-2  # the trained weights, not a fresh init
    assert shipped["data"]["files"]["onnx"]["max_abs_diff"] <= 1e-4


def test_torchscript_is_the_trained_model_within_1e4(shipped: dict[str, Any]) -> None:
    import torch

    x, trained, fresh = _outputs(shipped)
    path = shipped["folder"] / "export" / shipped["data"]["files"]["torchscript"]["path"]
    with torch.no_grad():
        got = torch.jit.load(str(path))(x).numpy()
    assert np.max(np.abs(got - trained)) <= 1e-4
    assert np.max(np.abs(got - fresh)) > 1e-2


def test_ship_json_has_files_sizes_latency_and_the_record(shipped: dict[str, Any]) -> None:
    data, export = shipped["data"], shipped["folder"] / "export"
    for name in ("spec.json", "train_record.json", "model.onnx", "model.pt"):
        assert (export / name).is_file()
    assert data["files"]["onnx"]["bytes"] == (export / "model.onnx").stat().st_size
    assert data["test_top1"] == 61.5 and data["params"] > 0
    assert data["source"] == {"run": str(shipped["run"]), "trial": 0}
    assert data["latency"]["onnxruntime"]["cpu"]["ms"] > 0
    assert data["latency"]["torch"]["ms"] > 0
    assert data["search"]["metric"] == "latency_ms@host" and data["search"]["kind"] == "measured"
    comparison = data["comparison"]
    assert comparison["threshold"] == 0.25
    assert comparison["gap_torch"] == pytest.approx(
        comparison["torch_ms"] / comparison["searched_ms"] - 1
    )
    assert data["flagged"] == comparison["flagged"]


def test_int8_files_where_the_policy_asks_for_8_bits(shipped: dict[str, Any]) -> None:
    import onnxruntime

    int8, export = shipped["data"]["int8"], shipped["folder"] / "export"
    assert int8["status"] == "written" and int8["policy"]["min"] == 8
    assert (export / "model.int8.pt").is_file() and (export / "model.int8.onnx").is_file()
    assert int8["torchscript"]["int8_linear_layers"] > 0
    assert int8["torchscript"]["max_abs_diff"] <= 1e-4  # TorchScript of the eager int8 model
    session = onnxruntime.InferenceSession(
        str(export / "model.int8.onnx"), providers=["CPUExecutionProvider"]
    )
    assert any("Integer" in n.op_type or "Quant" in n.op_type for n in _nodes(session, export))
    accuracy = shipped["data"]["accuracy"]
    assert accuracy["split"] == "test" and accuracy["samples"] > 0
    for key in ("fp32_torch", "fp32_onnx", "int8_torch", "int8_onnx"):
        assert 0.0 <= accuracy[key] <= 100.0
    assert accuracy["fp32_onnx"] == accuracy["fp32_torch"]  # same model, within 1e-4
    assert "cpu_int8" in shipped["data"]["latency"]["onnxruntime"]


def _nodes(session: Any, export: Path) -> list[Any]:
    import onnx

    return list(onnx.load(str(export / "model.int8.onnx")).graph.node)


def test_report_of_the_run_shows_the_shipped_model(shipped: dict[str, Any]) -> None:
    from mixnas.cli import main

    assert main(["report", str(shipped["run"])]) == 0
    html = (shipped["run"] / "report.html").read_text()
    assert "<h2>Shipped models</h2>" in html
    section = html.split("<h2>Shipped models</h2>")[1].split("<h2>")[0]
    comparison = shipped["data"]["comparison"]
    assert "61.5" in section  # test top1
    assert f"{comparison['torch_ms']:.3g}" in section
    assert f"{comparison['onnxruntime_ms']:.3g}" in section
    assert f"{comparison['searched_ms']:.3g}" in section
    assert f"{comparison['gap_torch']:+.0%}" in section
    assert ("FLAGGED" in section) == comparison["flagged"]
    assert f"{shipped['data']['params']:,}" in section


def test_report_without_shipped_models_has_no_section(tmp_path: Path) -> None:
    from mixnas.config import parse_config
    from mixnas.driver import run_search
    from mixnas.report.data import RunData
    from mixnas.report.html import render_report
    from tests.run_helpers import small_config

    config = small_config("plain", str(tmp_path), budget={"trials": 2})
    config["backend"] = {"name": "local", "workers": 0}
    summary = run_search(parse_config(config), quiet=True)
    assert "Shipped models" not in render_report(RunData.load(summary.run_dir))
