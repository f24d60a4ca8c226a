"""Dense heads and spaces (issue 24): segmentation and super-resolution outputs, exact costs,
the structural rules in one line, and the zoo's dense models at their published size."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from evaluators.counting import count_macs
from search_space import (
    SearchSpace,
    SpaceError,
    build_model,
    example_input,
    load_space,
    output_shape,
    spec_cost,
    validate_spec,
    zoo,
)
from search_space.spec import Op


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(("name", "shape"), [("unet_seg", (2, 4, 32, 32)), ("sr", (2, 3, 32, 32))])
def test_dense_space_samples_build_and_cost_exactly(name: str, shape: tuple[int, ...]) -> None:
    space = load_space(name)
    rng = np.random.default_rng(0)
    mixers: set[str] = set()
    heads: set[str] = set()
    for _ in range(20):
        spec = space.sample(rng)
        mixers |= {b.token_mixer.name for b in spec.blocks}
        heads.add(spec.head.label())
        model = build_model(spec)
        out = model(example_input(spec, batch_size=2))
        assert tuple(out.shape) == output_shape(spec, 2) == shape
        out.square().mean().backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
        cost = spec_cost(spec)
        assert sum(p.numel() for p in model.parameters()) == cost.params
        counted = count_macs(model, example_input(spec, batch_size=1))
        assert math.isclose(counted, cost.macs, rel_tol=0.02), (counted, cost.macs)
        assert space.contains(spec)  # skips on searchable stages encode and decode
    assert len(mixers) >= 5 and len(heads) >= 2, (mixers, heads)


def test_pan_x4_has_its_published_parameter_count() -> None:
    spec = zoo.get("pan_x4")
    assert spec_cost(spec).params == 272_419  # the official PAN(nf=40, unf=24, nb=16, scale=4)
    assert output_shape(spec, 1) == (1, 3, 256, 256)
    assert abs(spec_cost(spec).params / 272_000 - 1) < 0.005


def test_unet_template_segments_at_the_input_resolution() -> None:
    spec = zoo.get("unet_template")
    assert output_shape(spec, 1) == (1, 2, 256, 256)
    small = spec.replace(input=spec.input.__class__("image", 2, channels=3, resolution=(64, 64)))
    out = build_model(small)(example_input(small, batch_size=2))
    assert out.shape == (2, 2, 64, 64)


def test_fused_head_reads_every_stage() -> None:
    spec = zoo.get("daformer_template")
    assert spec.head.kwargs["fuse"] == "all"
    small = spec.replace(input=spec.input.__class__("image", 19, channels=3, resolution=(64, 64)))
    model = build_model(small)
    # one projection per stage, each as wide as that stage
    assert [p.in_features for p in model.head.proj] == [s.width for s in small.stages]
    counted = count_macs(model, example_input(small, batch_size=1))
    assert math.isclose(counted, spec_cost(small).macs, rel_tol=0.02)


def test_sr_head_refuses_a_body_that_downsamples_in_one_line() -> None:
    spec = zoo.get("pan_x4")
    strided = spec.replace(stem=Op.of("patch_embed", {"patch_size": 2}))
    with pytest.raises(SpaceError) as err:
        validate_spec(strided)
    message = _one_line(err)
    assert "head" in message and "resolution" in message and "stride-1 stem" in message


def test_sr_head_body_conv_needs_the_stem_width() -> None:
    spec = load_space("sr").sample(np.random.default_rng(1))
    stage = spec.stages[0]
    wider = spec.replace(
        stages=(
            stage,
            stage.__class__(
                stage.width + 8, Op.of("conv", {"kernel": 1, "stride": 1}), stage.blocks
            ),
        )
    )
    with pytest.raises(SpaceError) as err:
        validate_spec(wider.replace(head=Op.of("sr_head", {"body_conv": True})))
    assert "body_conv" in _one_line(err)
    # without the global residual the same body is fine
    validate_spec(wider.replace(head=Op.of("sr_head", {"body_conv": False})))


def test_seg_head_fuse_all_needs_a_width() -> None:
    decl = {
        "name": "bad",
        "input": {"kind": "image", "channels": 3, "resolution": 16, "num_classes": 3},
        "stem": [{"name": "patch_embed", "patch_size": 2}],
        "token_mixers": {"dwconv": {}},
        "stages": [{"depth": [1], "width": [16]}],
        "head": [{"name": "seg_head", "fuse": "all"}],
    }
    with pytest.raises(SpaceError) as err:
        SearchSpace.from_dict(decl)
    assert "hidden" in _one_line(err)


def test_a_skip_from_a_grid_of_another_size_is_refused_in_one_line() -> None:
    decl = {
        "name": "bad_unet",
        "input": {"kind": "image", "channels": 3, "resolution": 16, "num_classes": 3},
        "stem": [{"name": "patch_embed", "patch_size": 2}],
        "token_mixers": {"dwconv": {}},
        "stages": [
            {"depth": [1], "width": [16]},
            {"depth": [1], "width": [16], "downsample": {"name": "conv", "kernel": 2}},
            {"depth": [1], "width": [16], "skip": {"source": 0}},
        ],
        "head": [{"name": "seg_head"}],
    }
    space = SearchSpace.from_dict(decl)
    with pytest.raises(SpaceError) as err:
        validate_spec(space.sample(0))
    assert "skip" in _one_line(err)


@pytest.mark.parametrize("name", ["unet_seg", "sr"])
def test_proxies_score_dense_specs_or_refuse_in_one_line(name: str) -> None:
    from evaluators.proxies import PROXIES, compute_detailed

    rng = np.random.default_rng(0)
    spec = min((load_space(name).sample(rng) for _ in range(6)), key=lambda s: spec_cost(s).macs)
    scores = compute_detailed(spec, PROXIES.names(), batch_size=4)
    task = "segmentation" if name == "unet_seg" else "super_resolution"
    assert "\n" not in scores["epe_nas"].error and task in scores["epe_nas"].error
    failed = {p: s.error for p, s in scores.items() if not s.ok and p != "epe_nas"}
    # a proxy may refuse a model it cannot score (ProxyError: no ReLU-like activation, ...)
    # but never crashes on the dense head's output or targets
    assert all(e.startswith("evaluators.proxies.registry.ProxyError") for e in failed.values())
    assert len(failed) <= 2, failed


def test_search_refuses_a_proxy_that_cannot_score_the_heads_before_any_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mixnas.cli import main

    config = {
        "name": "upfront",
        "space": "unet_seg",
        "objectives": [{"metric": "proxy:synflow", "direction": "maximize"}],
        "evaluators": [{"name": "proxy", "options": {"names": ["epe_nas", "synflow"]}}],
        "budget": {"trials": 2},
    }
    path = tmp_path / "upfront.yaml"
    path.write_text(yaml.safe_dump(config))
    runs = tmp_path / "runs"
    assert main(["search", str(path), "--runs-dir", str(runs), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "epe_nas" in err and "segmentation" in err and "evaluators[0]" in err
    assert not (runs / "upfront").exists()  # refused before the run started


@pytest.mark.parametrize("name", ["unet_seg", "sr"])
def test_the_op_lookup_table_times_skips_and_dense_heads(name: str, tmp_path: Path) -> None:
    """Ops with a second input (a U-Net skip merge, a dense head's sources) are profiled as the
    network runs them, so predicted latency covers the dense spaces."""
    from predictors.lut import profile_op
    from predictors.timing import TimingOptions
    from search_space import plan

    spec = load_space(name).sample(np.random.default_rng(0))
    items = [i for i in plan(spec) if i.role == "merge" or i.role == "head"]
    assert items[-1].role == "head" and (name == "sr" or items[0].role == "merge")
    options = TimingOptions(warmup=1, repeats=3, min_sample_ms=0.1, max_remeasure=0)
    for item in items:
        timing = profile_op(item, spec, options)
        assert timing.median_ms > 0
