"""Predictors beyond the contract: features, tables, rooflines, transfer, the latency resolver."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

import predictors
import strategies
from predictors.features import FeatureMap, live_edge_ops, spec_features
from predictors.resolve import ConstrainedSpace, LatencyResolver
from predictors.roofline import DEVICES, roofline_ms
from predictors.table import FORMAT, LatencyTable
from predictors.timing import Timing
from search_space import InfeasibleError, SearchSpace, SpaceError, spec_cost
from search_space.spaces.nb201 import NB201Space, from_ops
from tests.conftest import small_space_dict


def _nb201(n: int, seed: int = 0) -> list:
    space, rng = NB201Space(), np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def test_live_edges_drop_ops_that_reach_no_output() -> None:
    # node 3 takes only 'none' edges: nothing reaches the output
    assert live_edge_ops((3, 3, 3, 0, 0, 0)) == []
    # node 1 feeds nothing that reaches the output (3<-1 is none, 2<-1 is none)
    assert live_edge_ops((2, 1, 0, 0, 0, 3)) == ["skip_connect", "nor_conv_3x3"]
    spec = from_ops(["nor_conv_3x3"] * 3 + ["none"] * 3)
    features = spec_features(spec)
    assert not any(k.startswith("live:") for k in features)
    assert features["count:token_mixer:nb201_cell"] == 15


def test_feature_map_keeps_its_columns() -> None:
    specs = _nb201(6)
    fmap = FeatureMap().fit(specs[:3])
    x = fmap.transform(specs[3:])
    assert x.shape == (3, 2 * len(fmap.names))  # log1p and raw halves
    # a feature unseen at fit time is dropped, never shifts the columns
    assert fmap.column(specs[:1], "total:macs")[0] == spec_cost(specs[0]).macs


def _timing(ms: float) -> Timing:
    return Timing(ms, 0.1 * ms, 0.95 * ms, 1.05 * ms, 0.9 * ms, 5, 1, 1, False)


def test_tables_are_per_settings_and_reject_other_formats(tmp_path: Path) -> None:
    settings = {"hardware": "x", "torch": "2", "threads": 1, "batch_size": 1, "dtype": "auto"}
    table = LatencyTable.open(tmp_path, "host", settings)
    table.add("op-a", _timing(1.5))
    table.save()
    again = LatencyTable.open(tmp_path, "host", settings)
    assert again.get("op-a")["median_ms"] == 1.5
    other = LatencyTable.open(tmp_path, "host", {**settings, "threads": 2})
    assert len(other) == 0 and other.path != again.path
    assert table.path is not None
    data = json.loads(table.path.read_text())
    data["format"] = FORMAT + 1
    table.path.write_text(json.dumps(data))
    assert len(LatencyTable.open(tmp_path, "host", settings)) == 0  # never silently reused
    table.path.write_text("{not json")
    assert len(LatencyTable.open(tmp_path, "host", settings)) == 0


def test_roofline_follows_compute_and_bandwidth() -> None:
    spec = _nb201(1)[0]
    pi = DEVICES["raspi4"]
    base, ops = roofline_ms(spec, pi)
    faster = type(pi)(**{**pi.__dict__, "peak_gflops": 10 * pi.peak_gflops})
    wider = type(pi)(**{**pi.__dict__, "bandwidth_gbs": 10 * pi.bandwidth_gbs})
    assert ops > 0 and base > 0
    assert roofline_ms(spec, faster)[0] < base and roofline_ms(spec, wider)[0] < base
    assert roofline_ms(spec, pi, batch_size=8)[0] > base
    with pytest.raises(SpaceError, match=r"known: .*raspi4"):
        predictors.create("roofline", device="my_phone")
    custom = predictors.create("roofline", device="my_phone", peak_gflops=5, bandwidth_gbs=2)
    assert custom.predict([spec])[0] > base  # a slower device than the Pi


def test_roofline_calibration_recovers_a_scaled_device() -> None:
    specs = _nb201(40)
    model = predictors.create("roofline", device="pixel3")
    raw, ops = model.estimates(specs)
    y = 3.0 * raw + 0.01 * ops + 0.5
    model.fit(specs[:20], y[:20])
    np.testing.assert_allclose(model.predict(specs[20:]), y[20:], rtol=1e-6)


def _device(specs: list, macs_w: float, traffic_w: float) -> np.ndarray:
    feats = [spec_features(s) for s in specs]
    return np.array(
        [1 + macs_w * f["total:macs"] / 1e7 + traffic_w * f["total:traffic"] / 1e7 for f in feats]
    )


def test_few_shot_transfer_beats_learning_from_the_few_samples_alone() -> None:
    specs = _nb201(300, seed=1)
    sources = {"compute": _device(specs, 1.0, 0.0), "memory": _device(specs, 0.0, 1.0)}
    sources["mixed"] = _device(specs, 0.5, 0.2)
    target = _device(specs, 0.3, 0.7)  # a device between the sources
    pre, few, test = slice(0, 200), slice(200, 210), slice(210, 300)
    model = predictors.create("transfer", device="new")
    model.pretrain(specs[pre], {d: v[pre] for d, v in sources.items()})
    model.fit(specs[few], target[few])
    transfer = spearmanr(model.predict(specs[test]), target[test])[0]
    alone = predictors.create("gbt").fit(specs[few], target[few]).predict(specs[test])
    assert transfer > 0.95 and transfer > spearmanr(alone, target[test])[0]
    assert set(model.describe()["embedding"]) == set(sources)


def _latency_space(bound: float) -> SearchSpace:
    data = small_space_dict()
    data["constraints"] = {"latency_ms@host": {"max": bound}}
    return SearchSpace.from_dict(data, source="small")


def _macs_ms(specs: list) -> np.ndarray:
    return np.array([0.1 + spec_cost(s).macs / 1e6 for s in specs])


def _resolver_with_macs_model(space: SearchSpace) -> LatencyResolver:
    resolver = LatencyResolver(calibration=0)
    plain = SearchSpace.from_dict(small_space_dict())
    specs = [plain.sample(i) for i in range(30)]
    resolver.add("host", predictors.create("macs_linear").fit(specs, _macs_ms(specs)))
    return resolver


def test_a_latency_bound_is_enforced_in_sampling_and_search() -> None:
    plain = SearchSpace.from_dict(small_space_dict())
    values = np.sort(_macs_ms([plain.sample(i) for i in range(60)]))
    bound = float(values[20])  # about a third of the space meets it
    space = _latency_space(bound)
    with pytest.raises(SpaceError, match="latency_ms@host"):
        space.sample(0)  # the space alone cannot check it
    resolver = _resolver_with_macs_model(space)
    metrics = resolver.for_space(space)
    fn = metrics["latency_ms@host"]
    rng = np.random.default_rng(0)
    assert all(fn(space.sample(rng, metrics=metrics)) <= bound for _ in range(20))
    constrained = resolver.constrain(space)
    assert isinstance(constrained, ConstrainedSpace)
    strategy = strategies.create(
        "evolution", constrained, [("params", "maximize")], seed=0, population_size=6, sample_size=3
    )
    for _ in range(4):
        asked = strategy.ask(4)
        assert asked and all(fn(c.spec) <= bound for c in asked)
        strategy.tell([(c, {"params": float(spec_cost(c.spec).params)}) for c in asked])
    assert not constrained.contains(max(_nb201(1)))  # another space's spec
    with pytest.raises(InfeasibleError, match="latency_ms@host"):
        _resolver_with_macs_model(space).constrain(_latency_space(1e-6)).sample(0, max_tries=20)


def test_resolver_names_what_it_cannot_resolve() -> None:
    resolver = LatencyResolver(calibration=0)
    with pytest.raises(SpaceError, match=r"known: .*host.*raspi4"):
        resolver.metric("latency_ms@toaster")
    with pytest.raises(SpaceError, match="latency_ms@<device>"):
        resolver.metric("params")
    with pytest.raises(SpaceError, match="calibration"):
        LatencyResolver(calibration=-1)
    with pytest.raises(SpaceError, match="quantile"):
        LatencyResolver(quantile=1.0)
    assert resolver.metric("latency_ms@raspi4")(_nb201(1)[0]) > 0  # roofline library


def test_host_resolver_profiles_and_calibrates(tmp_path: Path) -> None:
    plain = SearchSpace.from_dict(small_space_dict())
    bound = float(np.median(_macs_ms([plain.sample(i) for i in range(5)])))
    space = _latency_space(bound)
    resolver = LatencyResolver(cache_dir=tmp_path, calibration=3)
    fn = resolver.for_space(space)["latency_ms@host"]
    lut = resolver.predictor("host")
    assert lut.measured > 0 and not np.allclose(lut.coef, [1.0, 0.0, 0.0])  # calibrated
    spec = plain.sample(7)
    assert fn(spec) > 0 and fn(spec) == fn(spec)
    # constraints see the 90% quantile of the prediction, objectives the prediction itself
    median = resolver.metric("latency_ms@host")(spec)
    assert fn(spec) > median == pytest.approx(float(lut.predict([spec])[0]))
    assert space.constraints[0].metric == "latency_ms@host"  # calibration left the space as it was


def test_ensembles_report_uncertainty_in_the_targets_unit() -> None:
    specs = _nb201(60, seed=2)
    y = _macs_ms(specs) * (1 + 0.05 * np.random.default_rng(0).standard_normal(60))
    for name in ("gbt", "mlp", "ridge", "rf", "gp"):
        model = predictors.create(name).fit(specs[:40], y[:40])
        mean, std = model.predict_with_std(specs[40:])
        assert np.all(std > 0), name
        assert np.median(std / mean) < 1.0, name  # a spread in ms, not in log units
