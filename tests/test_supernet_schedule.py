"""Progressive shrinking, augmented batches and loader processes of the supernet recipe."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluators.supernet.batches import batch_of_step, step_batches
from evaluators.supernet.schedule import PHASES, dim_kind, shrink_phase, subnets_of_step
from evaluators.supernet.train import RecipeConfig, SupernetError, load_checkpoint, train_supernet
from tests.test_supernet_train import CFG, _setup, _weights


def test_phases_split_the_progressive_fraction_equally() -> None:
    # 40 steps, the first 30 shrinking: 10 steps per phase, then the rest in the last
    phases = [shrink_phase(0.75, 40, t) for t in range(40)]
    assert phases[:10] == [0] * 10 and phases[10:20] == [1] * 10 and phases[20:30] == [2] * 10
    assert set(phases[30:]) == {len(PHASES) - 1}
    assert {shrink_phase(0.0, 40, t) for t in range(40)} == {len(PHASES) - 1}


def test_dimension_kinds() -> None:
    supernet, _ = _setup()
    kinds = {d.name: dim_kind(d.name, d.choices, d.ordinal) for d in supernet.space.dims}
    assert kinds["stages[0].depth"] == "depth" and kinds["stages[0].width"] == "width"
    assert kinds["stages[0].channel_mixer"] == "variant"  # mlp ratio 1 or 2
    assert kinds["stages[0].norm"] == "type" and kinds["stages[0].pattern"] == "type"


def test_progressive_shrinking_releases_one_kind_of_dimension_per_phase() -> None:
    supernet, _ = _setup()
    cfg = replace(CFG, steps=80, progressive=0.75, num_random=2)  # phases of 20 steps

    def seen(first: int, last: int) -> tuple[set[int], set[int], set[float], set[int]]:
        depths, widths, ratios, kernels = set(), set(), set(), set()
        for t in range(first, last):
            for spec in subnets_of_step(supernet, cfg, t):
                depths.add(spec.depths[0])
                widths.add(spec.widths[0])
                for b in spec.blocks:
                    ratios.add(b.channel_mixer["ratio"])
                    if b.token_mixer.name == "dwconv":
                        kernels.add(b.token_mixer["kernel"])
        return depths, widths, ratios, kernels

    full, variants, depth, rest = seen(0, 20), seen(20, 40), seen(40, 60), seen(60, 80)
    assert full == ({2}, {16}, {2.0}, {5})  # the largest of every elastic dimension
    assert variants[:2] == ({2}, {16}) and variants[2] == {1.0, 2.0} and variants[3] == {3, 5}
    assert depth[0] == {1, 2} and depth[1] == {16}
    assert rest[0] == {1, 2} and rest[1] == {8, 16}
    # the first phase trains the full-size subnet once, not twice
    assert len(subnets_of_step(supernet, cfg, 0)) == 1 + cfg.num_random
    mixers = {
        b.token_mixer.name
        for t in range(20)
        for s in subnets_of_step(supernet, cfg, t)
        for b in s.blocks
    }
    assert mixers == {"dwconv", "identity", "attention"}  # op types are free from the start


def test_progressive_training_runs_and_resumes_exactly(tmp_path: Path) -> None:
    cfg = replace(CFG, steps=12, progressive=0.5)
    supernet, data = _setup()
    whole = train_supernet(supernet, data, cfg)
    ckpt = tmp_path / "sn.pt"
    first, _ = _setup()
    train_supernet(first, data, cfg, checkpoint=ckpt, stop_after=5)
    resumed, _ = _setup()
    assert train_supernet(resumed, data, cfg, checkpoint=ckpt)["history"] == whole["history"]


def test_crop_augmentation_is_seeded_by_the_step_and_keeps_shapes() -> None:
    _, data = _setup()
    plain = batch_of_step(data, 16, 0, 3)
    a = batch_of_step(data, 16, 0, 3, "crop")
    b = batch_of_step(data, 16, 0, 3, "crop")
    other = batch_of_step(data, 16, 0, 4, "crop_flip")
    assert a[0].shape == plain[0].shape and torch.equal(a[1], plain[1])
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], plain[0])
    assert other[0].shape == plain[0].shape
    # a crop moves the image: every cropped sample is a window of its reflected-padded source
    pad = max(1, plain[0].shape[-1] // 8)
    padded = torch.nn.functional.pad(plain[0], (pad,) * 4, mode="reflect")
    side = plain[0].shape[-1]
    for src, out in zip(padded, a[0], strict=True):
        windows = src.unfold(1, side, 1).unfold(2, side, 1)  # (c, 2p+1, 2p+1, side, side)
        assert any(
            torch.equal(windows[:, i, j], out)
            for i in range(2 * pad + 1)
            for j in range(2 * pad + 1)
        )


def test_loader_processes_yield_the_same_batches_in_order() -> None:
    _, data = _setup()
    inline = list(step_batches(data, batch_size=16, seed=0, first=2, last=9, augment="crop"))
    loaded = list(
        step_batches(data, batch_size=16, seed=0, first=2, last=9, augment="crop", workers=2)
    )
    assert len(inline) == len(loaded) == 7
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(inline, loaded, strict=True)
    )


def test_loader_workers_change_speed_not_weights_and_may_change_on_resume(tmp_path: Path) -> None:
    cfg = replace(CFG, augment="crop")
    supernet, data = _setup()
    train_supernet(supernet, data, cfg)
    ckpt = tmp_path / "sn.pt"
    first, _ = _setup()
    train_supernet(first, data, replace(cfg, loader_workers=2), checkpoint=ckpt, stop_after=4)
    assert load_checkpoint(ckpt)["step"] == 4
    resumed, _ = _setup()  # resumed with another number of loader processes
    train_supernet(resumed, data, cfg, checkpoint=ckpt)
    reference = _weights(supernet)
    assert all(torch.equal(reference[k], v) for k, v in _weights(resumed).items())


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"progressive": 1.5}, "progressive"),
        ({"augment": "mixup"}, "augment"),
        ({"loader_workers": -1}, "loader_workers"),
        ({"updates": "some"}, "updates"),
    ],
)
def test_bad_schedule_options_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(SupernetError, match=f"supernet.{field}"):
        RecipeConfig.from_dict(data)


def test_each_subnet_can_update_the_weights_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = replace(CFG, steps=3)
    supernet, data = _setup()
    accumulated = train_supernet(supernet, data, cfg)
    each, _ = _setup()
    optimizer_steps: list[int] = []
    original = torch.optim.AdamW.step

    def counting(self: torch.optim.AdamW, *args: object, **kwargs: object) -> object:
        optimizer_steps.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", counting)
    out = train_supernet(each, data, replace(cfg, updates="each"))
    per_step = 2 + cfg.num_random  # largest, smallest, random
    assert len(optimizer_steps) == cfg.steps * per_step
    # the step's first subnet sees the same weights; the later ones see weights it moved
    assert out["history"][0] != accumulated["history"][0]
    assert all(np.isfinite(out["history"]))
