"""Data-parallel supernet training on torch.distributed: every rank trains the same subnets on its
own rows of each step's batch, and the gradients are summed across ranks before every update.

Who calls what, when: a launcher starts one process per rank and joins them in a process group:
``torchrun`` (`torch.distributed.run`; `mixnas supernet train CONFIG --nproc N` starts it, and each
process calls `init_from_env`), or Ray Train's ``TorchTrainer`` (``--ray-address``, `run_on_ray`),
which sets up the group itself. `evaluators.supernet.train.train_supernet` then sees the group
(`current`) and, on every step:

1. draws the step's subnets from ``(seed, step)`` alone, so every rank draws the same ones;
2. takes its rows of the step's global batch (`parts`): the batch of step ``t`` is a function of
   ``(seed, t)`` and the global ``batch_size``, never of the number of ranks;
3. scales its loss by its share of the rows, runs backward, and before each optimizer update sums
   the gradients over the ranks (`all_reduce_grads`); every rank then makes the same update from
   the same weights, so the shared weights stay identical without being broadcast;
4. rank 0 alone writes the checkpoint, which holds the whole state (weights, optimizer, step), so
   a run resumes on any number of ranks.

Unused branches: a step's subnets touch a fraction of the shared tensors, and the rest have no
gradient. DDP must be told to look for such parameters (``find_unused_parameters``) or it waits
for their gradients forever; here the ranks first agree on which parameters have a gradient on
any rank (a small all-reduce of one flag per parameter), then sum those in flat buckets, with
zeros from a rank that has none. A parameter no rank used keeps no gradient, as in one process,
so AdamW leaves it alone (a zero gradient would still decay it and move it by momentum).

Backends: NCCL when the ranks train on GPUs, gloo on CPUs. One process is the plain path, with no
collective calls at all: its results are bit-identical to training without this module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

BUCKET = 1 << 23  # gradient elements per all-reduce (32 MiB of float32, DDP's order of size)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def many(self) -> bool:
        return self.world > 1


def current() -> Ranks:
    """The ranks of the default process group, if one is initialised (by `init_from_env`,
    torchrun's caller or Ray Train), else a single process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    world = dist.get_world_size()
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    return Ranks(
        rank=dist.get_rank(),
        world=world,
        local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank() % local_world)),
        local_world=local_world,
    )


def rank_device(name: str, ranks: Ranks, gpus: int | None = None) -> str:
    """The device this rank trains on, for the configured ``name`` (``auto | cpu | cuda |
    cuda:N``). One process: `evaluators.devices.resolve_device`. Several: ``cuda`` gives local
    rank i the GPU ``cuda:i`` of its node; ``auto`` is that when the node has a GPU for each of
    its ranks and the CPU otherwise (all ranks must agree on one backend); ``cuda:N`` would put
    every rank on one GPU, which NCCL refuses, so it is an error. Raises `DeviceError`."""
    from evaluators.devices import DeviceError, check_device, device_index, gpu_count

    index = device_index(name)  # checks the grammar
    if not ranks.many:
        if name == "auto":
            return "cuda" if (gpu_count() if gpus is None else gpus) > 0 else "cpu"
        check_device(name, gpus)
        return name
    gpus = gpu_count() if gpus is None else gpus
    if name == "auto":
        name = "cuda" if gpus >= ranks.local_world else "cpu"
    if name == "cpu":
        return "cpu"
    if index is not None and ":" in name:
        raise DeviceError(
            f"{name} would put all {ranks.world} ranks on one GPU; use device: cuda "
            "(local rank i trains on cuda:i)"
        )
    if gpus < ranks.local_world:
        raise DeviceError(
            f"cuda asked for {ranks.local_world} ranks on this node but it has {gpus} CUDA "
            f"device(s); start at most {gpus} processes per node, or use device: cpu"
        )
    return f"cuda:{ranks.local_rank}"


def backend_for(device: str) -> str:
    return "nccl" if device.startswith("cuda") else "gloo"


def init_from_env(device: str) -> Ranks:
    """In a process started by torchrun (``WORLD_SIZE`` > 1 in the environment): joins the
    process group, with NCCL when this rank trains on a GPU and gloo otherwise; returns the
    ranks. A plain process: nothing to join, one rank."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or dist.is_initialized():
        return current()
    ranks = Ranks(
        rank=int(os.environ["RANK"]),
        world=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world=int(os.environ.get("LOCAL_WORLD_SIZE", world)),
    )
    resolved = rank_device(device, ranks)
    if resolved.startswith("cuda"):
        torch.cuda.set_device(torch.device(resolved))
    dist.init_process_group(backend=backend_for(resolved))
    return current()


def close() -> None:
    """Leaves the process group `init_from_env` joined (no-op otherwise)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@dataclass(frozen=True)
class Part:
    """One subnet's rows in a step: ``size`` rows of the global batch, of which this rank holds
    ``lo:hi`` of its local batch; ``weight`` scales the subnet's loss in the step's sum."""

    size: int
    lo: int
    hi: int
    weight: float

    @property
    def share(self) -> float:
        """This rank's fraction of the subnet's rows (its mean loss times this, summed over
        the ranks, is the subnet's mean loss over all its rows)."""
        return (self.hi - self.lo) / self.size


def parts(size: int, chunks: int, ranks: Ranks, split_weight: bool) -> list[Part]:
    """How a global batch of ``size`` rows is shared: ``chunks`` consecutive chunks (one per
    subnet for multi-architecture sampling, else one chunk that every subnet trains on), and
    each chunk's rows split among the ranks in rank order. ``split_weight``: a chunk's loss
    weighs its share of the batch (the sum is then the batch mean), else 1."""
    out, local = [], 0
    for k in range(chunks):
        lo, hi = k * size // chunks, (k + 1) * size // chunks
        n = hi - lo
        mine = (ranks.rank + 1) * n // ranks.world - ranks.rank * n // ranks.world
        out.append(Part(n, local, local + mine, n / size if split_weight else 1.0))
        local += mine
    return out


def local_rows(size: int, chunks: int, ranks: Ranks) -> torch.Tensor | None:
    """The positions in the global batch this rank holds, in the order of `parts`; None when it
    holds the whole batch in order (one rank)."""
    if not ranks.many:
        return None
    rows = []
    for k in range(chunks):
        lo, hi = k * size // chunks, (k + 1) * size // chunks
        n = hi - lo
        start = lo + ranks.rank * n // ranks.world
        rows.append(torch.arange(start, lo + (ranks.rank + 1) * n // ranks.world))
    return torch.cat(rows)


def sum_over_ranks(values: Sequence[float], device: torch.device | str) -> list[float]:
    """``values`` summed element-wise over the ranks (every rank gets the sums)."""
    import torch.distributed as dist

    total = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return [float(v) for v in total.tolist()]


@torch.no_grad()
def all_reduce_grads(params: Sequence[nn.Parameter]) -> None:
    """Sums the gradients of ``params`` over the ranks (in place). The ranks first agree which
    parameters have a gradient anywhere; those are summed in flat buckets (zeros from a rank
    without one), the others keep none. Every rank must pass the same parameters in the same
    order (the supernet's, which are sorted by key)."""
    import torch.distributed as dist

    if not params:
        return
    device = params[0].device
    flags = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    dist.all_reduce(flags)
    chosen = [p for p, flag in zip(params, flags.tolist(), strict=True) if flag > 0]
    bucket: list[nn.Parameter] = []
    filled = 0
    for p in chosen:
        bucket.append(p)
        filled += p.numel()
        if filled >= BUCKET:
            _reduce_bucket(bucket)
            bucket, filled = [], 0
    if bucket:
        _reduce_bucket(bucket)


def _reduce_bucket(bucket: list[nn.Parameter]) -> None:
    import torch.distributed as dist

    flat = torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in bucket]
    )
    dist.all_reduce(flat)
    offset = 0
    for p in bucket:
        summed = flat[offset : offset + p.numel()].view_as(p)
        if p.grad is None:
            p.grad = summed.clone()
        else:
            p.grad.copy_(summed)
        offset += p.numel()


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The command that runs ``python -m mixnas ARGV`` as ``nproc`` ranks on this machine
    (`torch.distributed.run` with a standalone rendezvous on a free local port)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "mixnas",
        *argv,
    ]


def run_torchrun(nproc: int, argv: Sequence[str]) -> int:
    """Runs `torchrun_command` and returns its exit status (its ranks print their own lines)."""
    env = dict(os.environ)
    # torchrun sets one thread per rank when it starts several; say so to avoid its warning
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run(torchrun_command(nproc, argv), env=env, check=False).returncode


def ray_train_available() -> bool:
    try:
        import ray.train.torch  # noqa: F401
    except ImportError:
        return False
    return True


def run_on_ray(
    address: str,
    nproc: int,
    use_gpu: bool,
    loop: Callable[[dict[str, Any]], None],
    payload: dict[str, Any],
    storage: str,
) -> None:
    """Runs ``loop(payload)`` as ``nproc`` Ray Train workers (`ray.train.torch.TorchTrainer`)
    joined in a torch process group (NCCL with ``use_gpu``, gloo otherwise) on the Ray cluster
    at ``address`` (``local``: a Ray started here for this run). ``storage`` is where Ray Train
    keeps its own run state; the supernet's checkpoint is the loop's business."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    started = False
    if not ray.is_initialized():
        ray.init(
            address=None if address == "local" else address,
            include_dashboard=False,
            log_to_driver=True,
            configure_logging=False,
        )
        started = True
    try:
        trainer = TorchTrainer(
            loop,
            train_loop_config=payload,
            scaling_config=ScalingConfig(
                num_workers=nproc, use_gpu=use_gpu, resources_per_worker={"CPU": 1}
            ),
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
            run_config=RunConfig(name="supernet", storage_path=storage),
        )
        trainer.fit()
    finally:
        if started:
            ray.shutdown()


__all__ = [
    "Part",
    "Ranks",
    "all_reduce_grads",
    "backend_for",
    "close",
    "current",
    "init_from_env",
    "local_rows",
    "parts",
    "rank_device",
    "ray_train_available",
    "run_on_ray",
    "run_torchrun",
    "sum_over_ranks",
    "torchrun_command",
]
