"""The latency evaluator and the timing it rests on: statistics, noise handling, threads, int8."""

from __future__ import annotations

import time

import pytest
import torch

import evaluators
from evaluators import EvalContext
from predictors.quantize import prepare_model, wants_int8
from predictors.timing import TimingOptions, time_call
from search_space import ArchSpec, SpaceError, build_model, load_space
from search_space.spec import Quant

FAST = {"warmup": 1, "repeats": 5, "min_sample_ms": 0.2}


def _spec(bits: tuple[int, ...] = ()) -> ArchSpec:
    data = load_space("hybrid").sample(3).to_dict()
    data["input"]["resolution"] = [16, 16]
    for stage, b in zip(data["stages"], bits, strict=False):
        for block in stage["blocks"]:
            block["quant"] = {"weight_bits": b, "act_bits": b, "granularity": "per_tensor"}
    return ArchSpec.from_dict(data)


def test_measures_a_spec_with_device_named_metrics() -> None:
    result = evaluators.create("latency", **FAST).evaluate(_spec(), EvalContext())
    assert result.ok, result.error
    m = result.metrics
    assert m["latency_ms"] > 0 and m["latency_ms@host"] == m["latency_ms"]
    assert m["latency_min_ms"] <= m["latency_ms"]
    assert m["latency_iqr_ms"] >= 0 and m["latency_attempts"] >= 1
    assert result.timings["measure"] > 0


def test_the_headline_statistic_is_an_option() -> None:
    spec = _spec()
    median = evaluators.create("latency", **FAST).evaluate(spec).metrics
    assert median["latency_ms"] == median["latency_median_ms"]
    fastest = evaluators.create("latency", **FAST, statistic="min").evaluate(spec).metrics
    assert fastest["latency_ms"] == fastest["latency_min_ms"] <= fastest["latency_median_ms"]


def test_a_larger_batch_takes_longer() -> None:
    spec = _spec()
    # the minimum, and a batch large enough to dwarf the per-call overhead: batch 32 of this
    # small model costs about 1.3x batch 1, within a loaded 2-core machine's noise (the order
    # flipped there); batch 256 costs about 6x
    one = evaluators.create("latency", **FAST, batch_size=1, statistic="min").evaluate(spec)
    many = evaluators.create("latency", **FAST, batch_size=256, statistic="min").evaluate(spec)
    assert many.metrics["latency_ms"] > 2 * one.metrics["latency_ms"]


def test_timing_statistics_follow_the_work() -> None:
    opts = TimingOptions(warmup=0, repeats=5, min_sample_ms=0.1, max_remeasure=0)
    short = time_call(lambda: time.sleep(0.001), opts)
    long = time_call(lambda: time.sleep(0.004), opts)
    assert 1.0 <= short.median_ms < long.median_ms
    assert long.q1_ms <= long.median_ms <= long.q3_ms


def test_noisy_measurements_are_remeasured_then_flagged() -> None:
    calls = iter(range(10**6))

    def jittery() -> None:  # alternates 0.5 ms and 3 ms: a relative IQR far above 1%
        time.sleep(0.0005 if next(calls) % 2 else 0.003)

    opts = TimingOptions(warmup=0, repeats=6, min_sample_ms=0.01, max_rel_iqr=0.01)
    timing = time_call(jittery, opts)
    assert timing.noisy and timing.attempts == opts.max_remeasure + 1
    quiet = time_call(lambda: None, TimingOptions(repeats=5, max_rel_iqr=1e6))
    assert not quiet.noisy and quiet.attempts == 1


def test_threads_are_fixed_while_timing_and_restored() -> None:
    before = torch.get_num_threads()
    seen: list[int] = []
    time_call(lambda: seen.append(torch.get_num_threads()), TimingOptions(threads=1, repeats=2))
    assert set(seen) == {1} and torch.get_num_threads() == before


def _linear_kinds(module: torch.nn.Module) -> set[str]:
    from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

    kinds = set()
    for m in module.modules():
        if isinstance(m, Int8Linear):
            kinds.add("int8")
        elif type(m) is torch.nn.Linear:
            kinds.add("float")
    return kinds


def test_int8_where_the_policy_asks_for_it() -> None:
    spec = _spec(bits=(8, 32, 32, 32))
    assert _linear_kinds(build_model(spec, quantize=False).stages[0][1:]) == {"float"}
    model = prepare_model(build_model(spec), spec, "auto")
    assert _linear_kinds(model.stages[0][1:]) == {"int8"}
    assert "int8" not in _linear_kinds(model.stages[1][1:])
    assert _linear_kinds(prepare_model(build_model(spec), spec, "fp32")) == {"float"}
    assert wants_int8(Quant(4, 8), "auto") and not wants_int8(Quant(32, 8), "auto")
    assert not wants_int8(Quant(8, 8), "fp32") and wants_int8(Quant(32, 32), "int8")
    assert model.eval()(torch.randn(1, 3, 16, 16)).shape == (1, 10)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("repeats", 0),
        ("threads", -1),
        ("dtype", "fp8"),
        ("max_rel_iqr", 0),
        ("warmup", 1.5),
        ("statistic", "mean"),
    ],
)
def test_bad_options_name_the_field(option: str, value: object) -> None:
    with pytest.raises(SpaceError, match=f"latency.{option}"):
        evaluators.create("latency", **{option: value})


def test_missing_cuda_is_a_failed_result() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = evaluators.create("latency", **FAST).evaluate(_spec(), EvalContext(device="cuda"))
    assert result.status == "failed" and "CUDA" in result.error
