"""Devices: one grammar (auto | cpu | cuda | cuda:N), resolved where trials run, and a GPU that is
not there is a one-line config error (exit 2) before any work.

The machine's GPU count is patched where a test needs one, so these tests mean the same on a
laptop, on CI and on a GPU machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from evaluators import OK, EvalContext, EvalResult, Evaluator
from evaluators import devices as devices_module
from evaluators.devices import DeviceError, check_device, resolve_device, worker_gpu
from mixnas.cli import main
from mixnas.config import ConfigError, EvaluatorConfig, parse_config
from mixnas.job import prepare
from mixnas.pipeline import TrialPipeline
from search_space import SearchSpace
from search_space.errors import MixnasError
from search_space.spec import ArchSpec
from tests.conftest import small_space_dict
from tests.run_helpers import small_config

ROOT = Path(__file__).resolve().parents[1]


class DeviceProbe(Evaluator):
    """Records the device each evaluation was given (the pipeline runs in this process here)."""

    name = "device_probe"
    metrics = ("score",)  # what `small_config` objectives name
    seen: ClassVar[list[str]] = []

    def _evaluate(self, spec: ArchSpec, context: EvalContext) -> EvalResult:
        DeviceProbe.seen.append(context.device)
        return EvalResult(OK, {"score": 1.0})


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``gpus(n)`` makes this machine look like it has ``n`` CUDA devices."""

    def set_count(n: int) -> None:
        monkeypatch.setattr(devices_module, "gpu_count", lambda: n)

    return set_count


def _probe(device: str = "auto") -> dict[str, Any]:
    return {"name": "tests.test_devices:DeviceProbe", "device": device}


def _search(tmp_path: Path, capsys: pytest.CaptureFixture[str], **changes: Any) -> tuple[int, str]:
    """Runs ``mixnas search`` on a small config; returns the exit code and stderr."""
    runs = tmp_path / "runs"
    path = tmp_path / "search.yaml"
    data = small_config("dev", str(runs), **changes)
    path.write_text(yaml.safe_dump(data))
    code = main(["search", str(path), "-q"])
    err = capsys.readouterr().err.strip()
    if code == 2:
        assert len(err.splitlines()) == 1, err
        assert str(path) in err, err
        assert not (runs / "dev").exists(), "no run folder before the checks pass"
    return code, err


# -- the grammar -------------------------------------------------------------------------------
def test_auto_falls_back_to_the_cpu_and_names_pass_through(gpus: Any) -> None:
    gpus(0)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    gpus(2)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"


def test_auto_is_the_cpu_on_this_machine_when_torch_sees_no_gpu() -> None:
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected


@pytest.mark.parametrize(
    ("name", "count", "fragment"),
    [
        ("cuda", 0, "cuda asked but there is no CUDA device here; use device: cpu or auto"),
        ("cuda:0", 0, "no CUDA device here"),
        ("cuda:1", 1, "cuda:1 asked but this machine has 1 CUDA device (cuda:0)"),
        ("cuda:4", 2, "cuda:4 asked but this machine has 2 CUDA devices (cuda:0 to cuda:1)"),
        ("gpu", 2, "must be auto, cpu, cuda or cuda:N"),
        ("cuda:x", 2, "must be auto, cpu, cuda or cuda:N"),
    ],
)
def test_a_missing_or_malformed_device_is_one_line(name: str, count: int, fragment: str) -> None:
    with pytest.raises(DeviceError) as info:
        check_device(name, count)
    assert fragment in str(info.value)
    assert len(str(info.value).splitlines()) == 1
    assert isinstance(info.value, MixnasError)


def test_a_present_gpu_passes() -> None:
    check_device("cpu", 0)
    check_device("auto", 0)
    check_device("cuda", 1)
    check_device("cuda:3", 4)


def test_local_workers_share_out_the_gpus_round_robin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert worker_gpu(0, 0) is None and worker_gpu(3, 0) is None
    assert [worker_gpu(i, 2) for i in range(5)] == ["0", "1", "0", "1", "0"]
    assert [worker_gpu(i, 1) for i in range(3)] == ["0", "0", "0"]
    # a driver started on some GPUs shares out those, not the machine's first ones
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert [worker_gpu(i, 2) for i in range(3)] == ["4", "6", "4"]


# -- config checks: one line, exit 2, no run folder ----------------------------------------------
def test_device_cuda_without_a_gpu_exits_2_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], gpus: Any
) -> None:
    gpus(0)
    code, err = _search(tmp_path, capsys, evaluators=[_probe("cpu"), _probe("cuda")])
    assert code == 2
    assert "evaluators[1].device" in err and "no CUDA device here" in err, err


def test_a_gpu_index_beyond_the_machine_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], gpus: Any
) -> None:
    gpus(1)
    code, err = _search(tmp_path, capsys, evaluators=[_probe("cuda:1")])
    assert code == 2
    assert "evaluators[0].device" in err and "has 1 CUDA device (cuda:0)" in err, err


def test_local_workers_see_one_pinned_gpu_and_the_driver_sees_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], gpus: Any
) -> None:
    gpus(2)
    code, err = _search(tmp_path, capsys, evaluators=[_probe("cuda:1")])
    assert code == 2 and "one pinned to each worker" in err, err
    config = parse_config(
        small_config("dev", str(tmp_path), evaluators=[_probe("cuda:1")], backend={"workers": 0})
    )
    assert prepare(config).config.evaluators[0].device == "cuda:1"


def test_gpus_per_trial_with_ray_and_no_gpu_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], gpus: Any
) -> None:
    gpus(0)
    code, err = _search(tmp_path, capsys, backend={"name": "ray", "gpus_per_trial": 1})
    assert code == 2
    assert "backend.gpus_per_trial" in err and "no CUDA device here" in err, err


def test_gpus_per_trial_is_refused_by_the_local_backend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], gpus: Any
) -> None:
    gpus(2)
    code, err = _search(tmp_path, capsys, backend={"name": "local", "gpus_per_trial": 1})
    assert code == 2
    assert "backend.gpus_per_trial" in err and "only the ray backend" in err, err


@pytest.mark.parametrize(
    ("backend", "device", "field", "fragment"),
    [
        ({"gpus_per_trial": 1.5}, "auto", "backend.gpus_per_trial", "whole number"),
        ({"gpus_per_trial": 2}, "auto", "backend.gpus_per_trial", "has 1 CUDA device"),
        ({}, "cuda", "evaluators[0].device", "set backend.gpus_per_trial"),
        ({"gpus_per_trial": 0.5}, "cuda:1", "evaluators[0].device", "a trial sees 1 GPU(s)"),
    ],
)
def test_ray_gpu_reservations_are_checked(
    gpus: Any, backend: dict[str, Any], device: str, field: str, fragment: str
) -> None:
    gpus(1)
    data = small_config(
        "dev", "runs", evaluators=[_probe(device)], backend={"name": "ray", **backend}
    )
    with pytest.raises(ConfigError, match=f"{re.escape(field)}: .*{re.escape(fragment)}"):
        prepare(parse_config(data))


def test_ray_on_a_cluster_accepts_gpus_this_machine_lacks(gpus: Any) -> None:
    gpus(0)  # the cluster's nodes have them; Ray schedules the trials there
    backend = {"name": "ray", "address": "head:6379", "gpus_per_trial": 0.5}
    data = small_config("dev", "runs", evaluators=[_probe("cuda")], backend=backend)
    job = prepare(parse_config(data))
    assert job.config.backend.gpus_per_trial == 0.5


# -- where trials run ---------------------------------------------------------------------------
def _spec() -> ArchSpec:
    return SearchSpace.from_dict(small_space_dict()).sample(0)


def test_each_evaluator_gets_its_own_resolved_device(gpus: Any) -> None:
    configs = [EvaluatorConfig(**_probe()), EvaluatorConfig(**_probe("cpu"))]
    gpus(0)
    DeviceProbe.seen.clear()
    outcome = TrialPipeline(configs, seed=0).run(_spec(), {})
    assert outcome.status == OK
    assert DeviceProbe.seen == ["cpu", "cpu"]
    gpus(2)  # resolved when the pipeline is built, in the process that evaluates
    DeviceProbe.seen.clear()
    configs.append(EvaluatorConfig(**_probe("cuda:1")))
    TrialPipeline(configs, seed=0).run(_spec(), {})
    assert DeviceProbe.seen == ["cuda", "cpu", "cuda:1"]


def test_the_latency_evaluator_measures_host_latency_on_the_cpu_where_a_gpu_is(
    gpus: Any,
) -> None:
    """``latency_ms@host`` is this host's CPU: with ``device: auto`` on a GPU machine the latency
    evaluator still measures on the CPU and names the metric it advertised (a run config
    checked against ``latency_ms@host`` got ``latency_ms@cuda`` before, and an empty front);
    ``device: cuda`` names ``latency_ms@cuda`` from the start."""
    from mixnas.pipeline import create_evaluators

    gpus(1)
    auto, cuda = EvaluatorConfig("latency"), EvaluatorConfig("latency", device="cuda")
    made = create_evaluators([auto, cuda])
    assert "latency_ms@host" in made[0].metrics and "latency_ms@cuda" in made[1].metrics
    pipeline = TrialPipeline([EvaluatorConfig(**_probe()), auto], seed=0)
    assert pipeline.devices[1:] == ["cuda", "cpu"]  # the probe gets the GPU, latency the CPU


def test_a_gpu_less_worker_cannot_build_a_cuda_pipeline(gpus: Any) -> None:
    gpus(0)
    with pytest.raises(DeviceError, match="no CUDA device here"):
        TrialPipeline([EvaluatorConfig(**_probe("cuda"))], seed=0)


def test_the_supernet_evaluators_device_path_scores_like_the_cpu_path() -> None:
    """On a GPU the supernet evaluator scores an extracted copy of the subnet; on the CPU the
    supernet itself: both give the same figures (checked here on the CPU)."""
    from evaluators.data import load_dataset
    from evaluators.supernet import Supernet
    from evaluators.supernet.train import evaluate_subnet, score_model
    from tests.test_supernet import TINY_HYBRID

    space = SearchSpace.from_dict(TINY_HYBRID)
    spec = next(s for s in (space.sample(k) for k in range(200)) if "batchnorm" in s.to_json())
    data = load_dataset("synthetic", spec.input, seed=0, size=96)
    supernet = Supernet(space, seed=0).eval()
    settings = {"recalibration_batches": 2, "batch_size": 16, "eval_batch_size": 32}
    inherited = evaluate_subnet(supernet, spec, data, **settings)
    model = supernet.extract(spec)
    copied = score_model(model, model, data, **settings)
    assert copied["top1"] == inherited["top1"]
    assert copied["loss"] == pytest.approx(inherited["loss"], rel=1e-4)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")
def test_gpu_check_skips_cleanly_without_a_gpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.md"
    result = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no CUDA device: skipped"
    assert not out.exists()
