"""The Ray backend on a two-node cluster started on this machine (Ray's `cluster_utils`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixnas import load_trials
from mixnas.config import parse_config
from mixnas.driver import run_search
from mixnas.records import RunStore
from tests.run_helpers import small_config

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def two_node_cluster():  # type: ignore[no-untyped-def]
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_ray_run_on_two_nodes_records_like_local(two_node_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from mixnas.ray_backend import run_search_ray

    trials = 8
    backend = {"name": "ray", "workers": 2, "address": two_node_cluster.address}
    data = small_config(
        "ray", str(tmp_path), backend=backend, budget={"trials": trials}, trial_timeout=60
    )
    summary = run_search_ray(parse_config(data), quiet=True)
    ray_frame = load_trials(summary.run_dir)

    local = run_search(
        parse_config({**data, "name": "local", "backend": {"name": "local", "workers": 1}}),
        quiet=True,
    )
    local_frame = load_trials(local.run_dir)
    assert len(ray_frame) == trials
    assert list(ray_frame.columns) == list(local_frame.columns), "same record format"
    assert (ray_frame["status"] == "ok").all()
    assert ray_frame["spec_id"].is_unique
    assert summary.front
    with RunStore(summary.run_dir) as store:
        nodes = {r.worker.split("@")[0] for r in store.records()}
    assert len(nodes) == 2, f"trials ran on both nodes of the cluster: {nodes}"
    # the searcher hands out the strategy's candidates: the first (random) ones are the
    # local run's first ones, since both strategies start from the same seed
    assert ray_frame.loc[0, "spec_id"] == local_frame.loc[0, "spec_id"]


def test_resumed_ray_run_hands_out_the_candidates_in_flight_at_the_stop(
    two_node_cluster, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Ray tells trials as they end, so a checkpoint can hold candidates still in flight; after
    a kill they are evaluated first, with their own trial numbers (nothing is lost)."""
    from mixnas.driver import open_run
    from mixnas.manifest import CHECKPOINT, write_json_atomic
    from mixnas.ray_backend import RayDriver

    data = small_config("flight", str(tmp_path), budget={"trials": 6})
    data["backend"] = {"name": "local", "workers": 0}
    config = parse_config(data)
    summary = run_search(config.with_overrides(trials=3), quiet=True)
    job, run_dir = open_run(config, resume=True)
    with RunStore(run_dir) as store:
        driver = RayDriver(job, run_dir, store, quiet=True)
        flying = driver.strategy.ask(2)  # as if two Ray trials were running at the kill
        write_json_atomic(run_dir / CHECKPOINT, {"strategy": driver.strategy.state_dict()})
        resumed = RayDriver(job, run_dir, store, quiet=True)
        ray.init(address=two_node_cluster.address)  # as RayDriver.run does: specs go to Ray
        try:
            handed = [resumed.suggest(f"t{i}") for i in range(3)]
            # the specs travel by reference in Ray's object store
            specs = [ray.get(h["specs"][0]) for h in handed[:2]]
        finally:
            ray.shutdown()
    assert summary.finished == 3
    # one candidate per Tune trial: this evaluator is not cheap
    assert [h["trial_numbers"] for h in handed[:2]] == [[c.number] for c in flying]
    assert specs == [[c.spec.to_dict()] for c in flying]
    assert handed[2]["trial_numbers"] == [max(c.number for c in flying) + 1]


def test_cheap_trials_go_to_ray_in_batches(two_node_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One Tune trial per analytic-cost candidate would cost more than the evaluation: each Tune
    trial takes a batch, and the records are the same as the local driver's batches."""
    from mixnas.ray_backend import run_search_ray

    trials, batch = 40, 8
    data = small_config("raybatch", str(tmp_path), budget={"trials": trials})
    data.update(
        objectives=[{"metric": "macs", "direction": "minimize"}],
        evaluators=["cost"],
        backend={
            "name": "ray",
            "workers": 1,
            "batch": batch,
            "address": two_node_cluster.address,
        },
        export=None,
    )
    summary = run_search_ray(parse_config(data), quiet=True)
    local = run_search(
        parse_config({**data, "name": "local", "backend": {"name": "local", "batch": batch}})
    )
    with RunStore(summary.run_dir) as store:
        records = store.records()
    with RunStore(local.run_dir) as store:
        expected = [(r.trial_id, r.spec_id, dict(r.metrics)) for r in store.records()]
    assert [(r.trial_id, r.spec_id, dict(r.metrics)) for r in records] == expected
    tune_trials = {r.started for r in records}  # a batch is handed out at one instant
    assert len(tune_trials) == trials // batch
