"""Causal language modelling end to end (issue 24): the causal_lm space, the LM head, the refusal
of non-causal ops, the ``train`` evaluator's ``causal_lm`` task and its data, the proxies, and a
tiny ``mixnas search`` with perplexity as an objective. The per-mixer causality contract is in
tests/contracts/test_causal_mixers.py."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from evaluators.base import EvalContext
from evaluators.counting import count_macs
from evaluators.data import DatasetError
from evaluators.tasks import dyck, load_task
from evaluators.tasks.language import IGNORE, lm_dataset, next_tokens
from evaluators.training import ShortTraining
from mixnas.testing.ops import causal_spec
from search_space import (
    SearchSpace,
    build_model,
    example_input,
    load_space,
    spec_cost,
    validate_spec,
)
from search_space.errors import SpaceError
from search_space.nn.builder import MixNet
from search_space.ops import TOKEN_MIXERS
from search_space.spec import Block, InputSpec, Op, Stage

ROOT = Path(__file__).resolve().parents[1]
SMALL_DATA = {"n_train": 64, "n_val": 32, "n_test": 8}


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


# -- the space -----------------------------------------------------------------------------------


def test_causal_lm_space_samples_build_and_cost_exactly() -> None:
    space = load_space("causal_lm")
    rng = np.random.default_rng(0)
    mixers: set[str] = set()
    for _ in range(20):
        spec = space.sample(rng)
        mixers |= {b.token_mixer.name for b in spec.blocks}
        model = build_model(spec)
        x = example_input(spec, batch_size=2)
        out = model(x)
        inp = spec.input
        assert out.shape == (2, inp.seq_len, inp.vocab_size)
        out.square().mean().backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
        cost = spec_cost(spec)
        assert sum(p.numel() for p in model.parameters()) == cost.params
        counted = count_macs(model, example_input(spec, batch_size=1))
        assert math.isclose(counted, cost.macs, rel_tol=0.02), (counted, cost.macs)
    assert len(mixers) >= 6, mixers  # the draws cover most of the causal families


def test_a_whole_model_of_the_space_is_causal() -> None:
    space = load_space("causal_lm")
    spec = space.sample(np.random.default_rng(5))
    model = build_model(spec).eval()
    x = example_input(spec, batch_size=2)
    t = spec.input.seq_len // 2
    changed = x.clone()
    changed[:, t + 1 :] = torch.randint(0, spec.input.vocab_size, changed[:, t + 1 :].shape)
    with torch.no_grad():
        gap = (model(x)[:, : t + 1] - model(changed)[:, : t + 1]).abs().max()
    assert gap <= 1e-5


def test_a_space_with_a_non_causal_mixer_is_refused_in_one_line() -> None:
    text = (ROOT / "search_space" / "spaces" / "causal_lm.yaml").read_text()
    decl = yaml.safe_load(text)
    decl["token_mixers"]["global_filter"] = {}
    decl["token_mixers"]["attention"] = {"head_dim": 16}  # causal left off
    with pytest.raises(SpaceError) as err:
        SearchSpace.from_dict(decl)
    message = _one_line(err)
    assert "global_filter" in message and "attention(causal=False)" in message
    assert "selective_ssm (bidirectional: false)" in message  # what is allowed
    assert "dwconv (causal: true)" in message


@pytest.mark.parametrize(
    ("mixer", "named"),
    [
        (Op.of("token_mlp"), "token_mlp"),
        (Op.of("selective_ssm", {"bidirectional": True}), "selective_ssm(bidirectional=True)"),
        (Op.of("window_attention", {"window": 4}), "window_attention"),
        (Op.of("pooling"), "pooling(causal=False)"),
    ],
)
def test_a_spec_with_a_non_causal_mixer_is_refused_in_one_line(mixer: Op, named: str) -> None:
    with pytest.raises(SpaceError) as err:
        validate_spec(causal_spec(mixer))
    message = _one_line(err)
    assert named in message and "stages[0].blocks[0].token_mixer" in message


def test_other_non_causal_ops_are_refused_too() -> None:
    spec = causal_spec(Op.of("attention", {"causal": True}))
    block = Block(spec.blocks[0].token_mixer, Op.of("conv_ffn"), "batchnorm")
    stage = Stage(spec.stages[0].width, Op.of("none"), (block,))
    with pytest.raises(SpaceError) as err:
        validate_spec(spec.replace(stages=(stage,)))
    message = _one_line(err)
    assert "conv_ffn" in message and "batchnorm" in message


def test_causal_needs_a_sequence_grid() -> None:
    op = TOKEN_MIXERS.get("dwconv")
    from search_space.ops import OpContext

    with pytest.raises(SpaceError) as err:
        op.check_rules(OpContext(dim=32, grid=(4, 4)), op.complete({"causal": True}, "p"), "m")
    assert "1-D" in _one_line(err)


def test_the_causal_flag_is_implicit_so_existing_specs_keep_their_ids() -> None:
    op = TOKEN_MIXERS.get("attention")
    assert "causal" not in op.complete({}, "p")
    assert "causal" not in op.complete({"causal": False}, "p")
    assert op.complete({"causal": True}, "p")["causal"] is True
    spec = load_space("sequence").sample(np.random.default_rng(0))
    assert '"causal"' not in spec.to_json()


# -- the LM head ---------------------------------------------------------------------------------


def test_tied_head_reads_the_embedding_table() -> None:
    untied = causal_spec(Op.of("attention", {"causal": True}))
    tied = untied.replace(head=Op.of("lm_head", {"tie": True}))
    model = build_model(tied)
    vocab, width = tied.input.vocab_size, tied.stages[0].width
    assert spec_cost(untied).params - spec_cost(tied).params == vocab * width
    assert sum(p.numel() for p in model.parameters()) == spec_cost(tied).params
    x = example_input(tied)
    assert isinstance(model, MixNet)
    table = model.get_submodule("stem.embed").weight
    norm: torch.nn.Module = model.get_submodule("head.norm")
    assert isinstance(table, torch.Tensor)
    with torch.no_grad():
        table.mul_(2.0)  # the head follows the table
        features = model.forward_features(x)
        expected = norm(features) @ table.T / width**0.5  # T5's tied scaling
        assert torch.allclose(model(x), expected, atol=1e-5)


def test_tied_head_with_another_width_is_refused_in_one_line() -> None:
    spec = causal_spec(Op.of("identity"), vocab=40)
    bad = spec.replace(
        input=InputSpec("tokens", 20, seq_len=16, vocab_size=40),
        head=Op.of("lm_head", {"tie": True}),
    )
    with pytest.raises(SpaceError) as err:
        validate_spec(bad)
    assert "tie" in _one_line(err)


# -- data ----------------------------------------------------------------------------------------


def test_dyck_words_are_well_nested_and_deterministic_per_seed() -> None:
    spec = InputSpec("tokens", dyck.DEPTHS, seq_len=32, vocab_size=16)
    first = load_task("dyck", spec, seed=3, options={**SMALL_DATA, "cache": False})
    again = load_task("dyck", spec, seed=3, options={**SMALL_DATA, "cache": False})
    other = load_task("dyck", spec, seed=4, options={**SMALL_DATA, "cache": False})
    assert torch.equal(first.x_train, again.x_train)
    assert not torch.equal(first.x_train, other.x_train)
    kinds = dyck.PRESETS["medium"]["kinds"]
    for ids, label in zip(first.x_train, first.y_train, strict=True):
        assert dyck.depth_of(ids, kinds) == int(label) + 1


def test_lm_targets_are_the_next_tokens() -> None:
    x = torch.tensor([[3, 1, 4, 0, 0], [2, 7, 1, 8, 2]])
    assert next_tokens(x).tolist() == [
        [1, 4, IGNORE, IGNORE, IGNORE],
        [7, 1, 8, 2, IGNORE],
    ]
    spec = InputSpec("tokens", 32, seq_len=32, vocab_size=32)
    data = lm_dataset("dyck", spec, seed=0, options={**SMALL_DATA, "cache": False})
    assert data.y_train.shape == data.x_train.shape and data.num_classes == 32
    real = data.y_train != IGNORE
    assert torch.equal(data.y_train[:, :-1][real[:, :-1]], data.x_train[:, 1:][real[:, :-1]])


def test_lm_data_from_an_npz_of_sequences(tmp_path: Path) -> None:
    rows = np.arange(10 * 12).reshape(10, 12) % 9 + 1  # 12 ids a row, no padding
    path = tmp_path / "corpus.npz"
    np.savez(path, x=rows)
    spec = InputSpec("tokens", 16, seq_len=8, vocab_size=16)
    data = lm_dataset(str(path), spec, seed=0, options={"val_fraction": 0.3})
    assert data.sizes == (7, 3)
    # rows longer than L + 1: every position has a target, the next id of the row
    x = torch.cat([data.x_train, data.x_val])
    y = torch.cat([data.y_train, data.y_val])
    assert torch.equal(y[:, :-1], x[:, 1:]) and (y != IGNORE).all()
    short = tmp_path / "short.npz"
    np.savez(short, x=rows[:, :5])
    d2 = lm_dataset(str(short), spec, seed=0)
    assert ((d2.y_train != IGNORE).sum(dim=1) == 4).all()  # 5 ids: 4 next tokens
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=rows + 20)
    with pytest.raises(DatasetError) as err:
        lm_dataset(str(bad), spec)
    assert "0..15" in _one_line(err)


# -- training --------------------------------------------------------------------------------------


def test_train_causal_lm_reports_loss_perplexity_and_next_token_top1() -> None:
    spec = load_space("causal_lm").sample(np.random.default_rng(2))
    ev = ShortTraining(task="causal_lm", batch_size=16, data_options=SMALL_DATA)
    first = ev.evaluate(spec, EvalContext(budget={"steps": 1}))
    result = ev.evaluate(spec, EvalContext(budget={"steps": 20}))
    assert result.status == "ok", result.error
    m = result.metrics
    assert math.isclose(m["perplexity"], math.exp(m["loss"]), rel_tol=1e-9)
    assert 0.0 <= m["top1"] <= 100.0 and m["steps"] == 20
    # it learns the corpus: better than one step, and than a uniform guess over the vocabulary
    assert m["perplexity"] < first.metrics["perplexity"]
    assert m["perplexity"] < spec.input.vocab_size and m["top1"] > first.metrics["top1"]
    again = ev.evaluate(spec, EvalContext(budget={"steps": 20}))
    assert again.metrics["loss"] == m["loss"]


def test_the_task_must_match_the_head_in_one_line() -> None:
    lm = load_space("causal_lm").sample(np.random.default_rng(0))
    result = ShortTraining(batch_size=8).evaluate(lm, EvalContext(budget={"steps": 1}))
    assert result.status == "failed" and "causal_lm" in result.error
    assert "\n" not in result.error
    classifier = load_space("sequence").sample(np.random.default_rng(0))
    result = ShortTraining(task="causal_lm").evaluate(classifier, EvalContext(budget={"steps": 1}))
    assert result.status == "failed" and "lm_head" in result.error
    assert "\n" not in result.error


# -- proxies -------------------------------------------------------------------------------------


def test_label_proxies_are_refused_for_causal_lm_in_one_line_and_others_score() -> None:
    from evaluators.proxy_evaluator import ProxyEvaluator

    spec = load_space("causal_lm").sample(np.random.default_rng(1))
    result = ProxyEvaluator(names=["epe_nas"], batch_size=4).evaluate(spec, EvalContext())
    assert result.status == "failed"
    assert "\n" not in result.error and "epe_nas" in result.error and "causal_lm" in result.error
    scored = ProxyEvaluator(names=["snip", "synflow", "nwot"], batch_size=4).evaluate(
        spec, EvalContext()
    )
    assert scored.status == "ok", scored.error
    assert all(math.isfinite(v) for v in scored.metrics.values())


# -- search --------------------------------------------------------------------------------------


def test_search_on_causal_lm_with_perplexity_as_an_objective(tmp_path: Path) -> None:
    from mixnas.cli import main
    from mixnas.records import load_trials

    config = yaml.safe_load((ROOT / "docs" / "causal_lm_search.yaml").read_text())
    assert {"metric": "perplexity", "direction": "minimize"} in config["objectives"]
    train = config["evaluators"][0]
    train["budget"] = {"steps": 2}
    train["data"] = {"name": "dyck", **SMALL_DATA}
    train["options"]["batch_size"] = 8
    config["budget"] = {"trials": 2, "seconds": 300}
    path = tmp_path / "lm.yaml"
    path.write_text(yaml.safe_dump(config))
    runs = tmp_path / "runs"
    assert main(["search", str(path), "--runs-dir", str(runs), "-q"]) == 0
    frame = load_trials(runs / "causal_lm", architecture=False)
    assert len(frame) == 2 and set(frame["status"]) == {"ok"}
    assert all(math.isfinite(v) and v > 1.0 for v in frame["perplexity"])


def test_docs_name_every_token_mixer_in_the_causal_section() -> None:
    from search_space.ops.causal import causal_form

    text = (ROOT / "docs" / "spaces.md").read_text()
    section = text.split("## Causal spaces", 1)[1].split("\n## ", 1)[0]
    for name in TOKEN_MIXERS.names():
        op = TOKEN_MIXERS.get(name)
        form = causal_form(op) if op.causal and op.causal.when else name
        assert f"`{form}`" in section, f"docs/spaces.md's causal section does not name {form}"
