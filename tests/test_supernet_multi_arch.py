"""Multi-architecture sampling (ViT-ResNAS): each step splits its batch among ``num_archs`` random
subnets and accumulates their gradients into one update; seeded per step and resumable like the
other recipes. SPOS is the default recipe."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluators.supernet import Supernet
from evaluators.supernet.batches import batch_of_step
from evaluators.supernet.schedule import subnets_of_step
from evaluators.supernet.train import RecipeConfig, SupernetError, train_supernet
from tests.test_supernet_train import _setup, _weights

CFG = RecipeConfig(recipe="multi_arch", num_archs=3, steps=6, batch_size=24, checkpoint_every=2)


def test_spos_is_the_default_recipe() -> None:
    assert RecipeConfig().recipe == "spos" and RecipeConfig.from_dict({}).recipe == "spos"


def test_each_step_draws_num_archs_subnets_from_its_seed() -> None:
    supernet, _ = _setup()
    drawn = [subnets_of_step(supernet, CFG, t) for t in range(4)]
    assert all(len(specs) == 3 for specs in drawn)
    assert drawn[2] == subnets_of_step(supernet, CFG, 2)
    assert len({s.id for specs in drawn for s in specs}) > 4
    # one architecture per step is SPOS, draw for draw
    spos = replace(CFG, recipe="spos")
    one = replace(CFG, num_archs=1)
    assert all(
        subnets_of_step(supernet, one, t) == subnets_of_step(supernet, spos, t) for t in [0, 5]
    )


def test_each_subnet_trains_on_its_own_chunk_of_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    forward = Supernet.forward

    def counting(self: Supernet, x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return forward(self, x)

    monkeypatch.setattr(Supernet, "forward", counting)
    supernet, data = _setup()
    out = train_supernet(supernet, data, replace(CFG, steps=2))
    assert seen == [8, 8, 8] * 2 and all(np.isfinite(out["history"]))


def test_one_architecture_is_spos_bit_for_bit() -> None:
    spos, data = _setup()
    reference = train_supernet(spos, data, replace(CFG, recipe="spos"))
    multi, _ = _setup()
    out = train_supernet(multi, data, replace(CFG, num_archs=1))
    assert out["history"] == reference["history"]
    assert all(torch.equal(v, _weights(spos)[k]) for k, v in _weights(multi).items())


def test_one_update_is_the_gradient_of_the_whole_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the chunks' losses weighted by their share, the accumulated gradient is the mean
    over the batch of each sample's gradient through its own subnet."""
    supernet, data = _setup()
    cfg = replace(CFG, steps=1, grad_clip=0.0)
    specs = subnets_of_step(supernet, cfg, 0)
    x, y = batch_of_step(data, cfg.batch_size, cfg.seed, 0)
    total = torch.zeros(())
    for k, spec in enumerate(specs):
        part = slice(8 * k, 8 * (k + 1))
        logits = supernet.configure(spec)(x[part])
        loss = torch.nn.functional.cross_entropy(logits, y[part], label_smoothing=0.1)
        total = total + loss * 8 / 24
    total.backward()
    expected = {n: p.grad.clone() for n, p in supernet.named_parameters() if p.grad is not None}
    trained, _ = _setup()
    grads: dict[str, torch.Tensor] = {}

    def keep(self: torch.optim.AdamW, *args: object, **kwargs: object) -> None:
        grads.update(
            {n: p.grad.clone() for n, p in trained.named_parameters() if p.grad is not None}
        )

    monkeypatch.setattr(torch.optim.AdamW, "step", keep)
    train_supernet(trained, data, cfg)
    assert grads.keys() == expected.keys()
    assert all(torch.allclose(grads[n], g, atol=1e-7) for n, g in expected.items())


def test_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    whole, data = _setup()
    reference = train_supernet(whole, data, CFG)
    ckpt = tmp_path / "multi.pt"
    first, _ = _setup()
    train_supernet(first, data, CFG, checkpoint=ckpt, stop_after=3)
    resumed, _ = _setup()
    out = train_supernet(resumed, data, CFG, checkpoint=ckpt)
    assert out["resumed"] and out["history"] == reference["history"]
    assert all(torch.equal(v, _weights(whole)[k]) for k, v in _weights(resumed).items())


def test_more_architectures_than_rows_is_refused() -> None:
    with pytest.raises(SupernetError, match=r"supernet\.num_archs: .*at most batch_size \(4\)"):
        RecipeConfig.from_dict({"recipe": "multi_arch", "num_archs": 8, "batch_size": 4})
    with pytest.raises(SupernetError, match=r"supernet\.num_archs"):
        RecipeConfig.from_dict({"recipe": "multi_arch", "num_archs": 0})


def test_a_run_of_the_old_default_names_the_recipe_when_resumed_under_the_new(
    tmp_path: Path,
) -> None:
    supernet, data = _setup()
    ckpt = tmp_path / "old.pt"
    old = RecipeConfig(recipe="sandwich", steps=4, batch_size=16, num_random=1, checkpoint_every=1)
    train_supernet(supernet, data, old, checkpoint=ckpt, stop_after=1)
    with pytest.raises(SupernetError, match=r"recipe: 'sandwich' -> 'spos'"):
        train_supernet(supernet, data, replace(old, recipe="spos"), checkpoint=ckpt)
