"""Data-parallel supernet training (gloo on the CPU): two ranks with half the batch each train the
same shared weights as one process with the whole batch, a run resumes on another number of
ranks, and ``mixnas supernet train --nproc`` runs the ranks under torchrun.

The two ranks run in one `torch.multiprocessing.spawn` for the whole module (importing torch in a
process costs seconds on a small machine); each scenario's weights come back through files.
Tolerance: 1e-5 on every shared weight but one kind. The two runs compute the same sums in
another order (a rank's half-batch matrix products, then the gradient all-reduce, against one
whole-batch product), so they agree to float32 rounding, not bit for bit: after 20 AdamW steps
the largest difference is about 1e-7. The exception is attention's key bias (the middle third of
``qkv`` bias): softmax ignores a constant added to every key score, so its true gradient is
exactly zero and its float gradient is rounding noise of about 1e-10, which AdamW divides by its
own size and turns into steps of up to lr. Those entries differ by up to 6e-5 after 20 steps (on
one rank and two alike: they are noise either way) and are held to 20 x lr instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from evaluators.data import load_dataset
from evaluators.supernet import Supernet
from evaluators.supernet.distributed import Ranks, local_rows, parts, rank_device
from evaluators.supernet.train import RecipeConfig, load_checkpoint, train_supernet
from search_space import SearchSpace
from tests.test_supernet_train import MINI

ROOT = Path(__file__).resolve().parents[1]
# batch norm normalises each rank's rows by their own statistics (as DDP without SyncBatchNorm
# does), so only a LayerNorm space trains the very same function on one rank and on two
LN_ONLY: dict[str, Any] = {**MINI, "name": "mini_ln", "norms": ["layernorm"]}
DATA = {"size": 128}
BATCH = 32  # global: 16 rows per rank with two ranks
TOL = 1e-5
SCENARIOS: dict[str, dict[str, Any]] = {
    # name -> recipe fields; the 2-rank run and the 1-process reference use the same config
    "sandwich": {"recipe": "sandwich", "num_random": 1, "augment": "crop"},
    "multi_arch": {"recipe": "multi_arch", "num_archs": 2},
    "resume": {"recipe": "spos", "ema": 0.5},  # 10 steps on two ranks, then 20 on one
}


def _cfg(fields: dict[str, Any]) -> RecipeConfig:
    return RecipeConfig(steps=20, batch_size=BATCH, checkpoint_every=5, **fields)


def _setup() -> tuple[Supernet, Any]:
    space = SearchSpace.from_dict(LN_ONLY)
    return Supernet(space, seed=0), load_dataset("synthetic", space.decl.input, seed=0, **DATA)


def _weights(supernet: Supernet) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in supernet.state_dict().items()}


def _rank(rank: int, world: int, folder: str) -> None:
    """One rank of the spawned group: every scenario in turn, its weights saved per rank."""
    torch.set_num_threads(1)
    store = Path(folder) / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        for name, fields in SCENARIOS.items():
            supernet, data = _setup()
            ckpt = Path(folder) / f"{name}.pt"
            stop = 10 if name == "resume" else None
            out = train_supernet(supernet, data, _cfg(fields), checkpoint=ckpt, stop_after=stop)
            saved = {"weights": _weights(supernet), "history": out["history"], "out": out}
            torch.save(saved, Path(folder) / f"{name}.rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ranks")
    mp.spawn(_rank, args=(2, str(folder)), nprocs=2, join=True)
    return folder


def _load(folder: Path, name: str, rank: int) -> dict[str, Any]:
    return torch.load(folder / f"{name}.rank{rank}.pt", weights_only=False)  # our own file


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest difference of two sets of weights; attention's key bias (see the module
    docstring) must only be within 20 x lr, and is left out of the figure."""
    assert a.keys() == b.keys()
    largest = 0.0
    for k in a:
        diff = (a[k].double() - b[k].double()).abs()
        if k.endswith("qkv~bias"):
            q, key, v = diff.view(3, -1)
            assert float(key.max()) <= 20 * RecipeConfig().lr, k
            diff = torch.cat([q, v])
        largest = max(largest, float(diff.max()))
    return largest


@pytest.mark.parametrize("name", ["sandwich", "multi_arch"])
def test_two_ranks_train_the_weights_of_one_process_with_the_whole_batch(
    two_ranks: Path, name: str
) -> None:
    ranks = [_load(two_ranks, name, r) for r in range(2)]
    # the ranks never exchange weights, only gradients: they stay identical bit for bit
    assert _max_diff(ranks[0]["weights"], ranks[1]["weights"]) == 0.0
    assert ranks[0]["history"] == ranks[1]["history"] and ranks[0]["out"]["ranks"] == 2
    supernet, data = _setup()
    alone = train_supernet(supernet, data, _cfg(SCENARIOS[name]))
    diff = _max_diff(ranks[0]["weights"], _weights(supernet))
    assert diff < TOL, f"largest weight difference {diff:.3g}"
    assert ranks[0]["history"] == pytest.approx(alone["history"], abs=1e-5)
    # the checkpoint rank 0 wrote holds the same weights
    stored = load_checkpoint(two_ranks / f"{name}.pt")
    assert stored["step"] == 20
    assert _max_diff(stored["weights"], ranks[0]["weights"]) == 0.0


def test_a_run_of_two_ranks_resumes_on_one(two_ranks: Path) -> None:
    ckpt = two_ranks / "resume.pt"
    assert load_checkpoint(ckpt)["step"] == 10
    cfg = _cfg(SCENARIOS["resume"])
    resumed, data = _setup()
    out = train_supernet(resumed, data, cfg, checkpoint=ckpt)
    assert out["resumed"] and out["steps"] == 20 and out["ranks"] == 1
    whole, _ = _setup()
    reference = train_supernet(whole, data, cfg)
    diff = _max_diff(_weights(resumed), _weights(whole))
    assert diff < TOL, f"largest weight difference {diff:.3g}"
    assert out["history"] == pytest.approx(reference["history"], abs=1e-5)


def test_rows_of_each_rank_cover_the_batch_once() -> None:
    for world in (1, 2, 3):
        for chunks in (1, 2, 4):
            taken: list[int] = []
            for rank in range(world):
                ranks = Ranks(rank=rank, world=world, local_world=world)
                rows = local_rows(30, chunks, ranks)
                rows = torch.arange(30) if rows is None else rows
                mine = parts(30, chunks, ranks, split_weight=True)
                assert sum(p.hi - p.lo for p in mine) == len(rows)
                assert sum(p.weight for p in mine) == pytest.approx(1.0)
                taken += rows.tolist()
            assert sorted(taken) == list(range(30))


def test_rank_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    from evaluators.devices import DeviceError

    one = Ranks()
    two = [Ranks(rank=r, world=2, local_rank=r, local_world=2) for r in range(2)]
    assert rank_device("auto", one, gpus=0) == "cpu" and rank_device("auto", one, gpus=1) == "cuda"
    assert [rank_device("cuda", r, gpus=2) for r in two] == ["cuda:0", "cuda:1"]
    assert rank_device("auto", two[1], gpus=1) == "cpu"  # not a GPU for each rank: all on CPUs
    assert rank_device("auto", two[1], gpus=2) == "cuda:1"
    with pytest.raises(DeviceError, match="one GPU"):
        rank_device("cuda:1", two[0], gpus=2)
    with pytest.raises(DeviceError, match="1 CUDA device"):
        rank_device("cuda", two[0], gpus=1)
    with pytest.raises(DeviceError, match="no CUDA device"):
        rank_device("cuda", one, gpus=0)


def _config(tmp_path: Path, **supernet: Any) -> Path:
    config = {
        "name": "ddp",
        "space": LN_ONLY,
        "data": "synthetic",
        "data_options": DATA,
        "runs_dir": str(tmp_path / "runs"),
        "supernet": {"batch_size": BATCH, "checkpoint_every": 2, **supernet},
    }
    path = tmp_path / "sn.yaml"
    # key order kept: the order of the declared mixers orders the space's choices (and so the
    # initial weights and the subnets drawn), and the reference run uses LN_ONLY's order
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_cli_nproc_runs_the_ranks_under_torchrun(tmp_path: Path) -> None:
    """``--nproc 2`` starts two ranks with torchrun; their checkpoint is one process's run."""
    path = _config(tmp_path, steps=4)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "mixnas", "supernet", "train", str(path), "--quiet"]
    done = subprocess.run(
        [*command, "--nproc", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 ranks" in done.stdout
    state = load_checkpoint(tmp_path / "runs" / "ddp" / "supernet.pt")
    assert state["step"] == 4
    supernet, data = _setup()
    train_supernet(supernet, data, RecipeConfig.from_dict(state["config"]))
    assert _max_diff(state["weights"], _weights(supernet)) < TOL


def test_cli_refuses_more_gpu_ranks_than_gpus_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from evaluators import devices
    from mixnas.cli import main as cli

    monkeypatch.setattr(devices, "gpu_count", lambda: 1)
    path = _config(tmp_path, steps=2, device="cuda")
    assert cli(["supernet", "train", str(path), "--quiet", "--nproc", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "supernet.device" in err and "1 CUDA" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow  # starts a local Ray and two Ray Train workers (a minute on 2 cores)
def test_ray_train_workers_train_like_torchrun_ranks(tmp_path: Path) -> None:
    pytest.importorskip("ray.train.torch")
    path = _config(tmp_path, steps=4)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "mixnas", "supernet", "train", str(path), "--quiet"]
    done = subprocess.run(
        [*command, "--nproc", "2", "--ray-address", "local"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    ray_state = load_checkpoint(tmp_path / "runs" / "ddp" / "supernet.pt")
    assert ray_state["step"] == 4
    supernet, data = _setup()
    train_supernet(supernet, data, RecipeConfig.from_dict(ray_state["config"]))
    assert _max_diff(ray_state["weights"], _weights(supernet)) < TOL


def test_cli_without_ray_train_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from evaluators.supernet import distributed
    from mixnas.cli import main as cli

    monkeypatch.setattr(distributed, "ray_train_available", lambda: False)
    path = _config(tmp_path, steps=2)
    assert cli(["supernet", "train", str(path), "--quiet", "--ray-address", "local"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--ray-address" in err and "ray[train]" in err
    assert cli(["supernet", "train", str(path), "--quiet", "--nproc", "0"]) == 2
    assert "--nproc" in capsys.readouterr().err
