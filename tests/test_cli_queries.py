"""The questions a user asks of finished runs (issue 25): ``mixnas trials``, ``mixnas runs diff``,
``export --pick topK``, `load_trials`' architecture columns and front flag, ONNX with a dynamic
batch, ``mixnas space list`` / ``space describe nb201``, the generated proxy docs, the LICENSE."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mixnas import load_trials
from mixnas.cli import main
from mixnas.config import parse_config
from mixnas.driver import run_search
from mixnas.report.data import RunData
from tests.run_helpers import small_config

ROOT = Path(__file__).resolve().parents[1]


def _run(root: Path, name: str, **changes: object) -> Path:
    settings: dict[str, object] = {
        "budget": {"trials": 10},
        "backend": {"name": "local", "workers": 0},
        "evaluators": [{"name": "tests.run_helpers:SlowScore", "options": {"delay": 0.0}}],
    }
    config = small_config(name, str(root), **{**settings, **changes})
    return run_search(parse_config(config), quiet=True).run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny runs that differ in seed and budget (read only: tests copy before writing)."""
    root = tmp_path_factory.mktemp("runs")
    return {"a": _run(root, "a"), "b": _run(root, "b", seed=5, budget={"trials": 8})}


def _out(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# -- load_trials ----------------------------------------------------------------------------------


def test_load_trials_has_the_architecture_columns_and_the_front(runs: dict[str, Path]) -> None:
    frame = load_trials(runs["a"])
    for column in ("mixers", "depths", "widths", "bits", "front"):
        assert column in frame.columns
    trials_csv = __import__("mixnas.report.tables", fromlist=["x"]).trials_table(
        RunData.load(runs["a"])
    )
    for column in ("mixers", "depths", "widths", "bits"):
        assert list(frame[column]) == list(trials_csv[column])
    run = RunData.load(runs["a"])
    assert list(frame["front"]) == [bool(f) for f in run.on_front]
    assert frame["front"].any() and not frame["front"].all()
    assert frame["depths"].str.fullmatch(r"\d+(-\d+)*").all()


def test_load_trials_without_architecture_and_with_a_damaged_spec(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    import shutil
    import sqlite3

    copy = tmp_path / "a"
    shutil.copytree(runs["a"], copy)
    fast = load_trials(copy, architecture=False)
    assert "mixers" not in fast.columns and "front" in fast.columns
    conn = sqlite3.connect(copy / "trials.sqlite")
    with conn:
        conn.execute("UPDATE trials SET spec = '{not json' WHERE trial_id = 1")
    conn.close()
    frame = load_trials(copy).set_index("trial_id")  # the damaged one says so, the rest read
    assert frame.loc[1, "mixers"] == "(damaged spec)"
    assert frame.loc[2, "mixers"] != "(damaged spec)"


# -- mixnas trials --------------------------------------------------------------------------------


def test_trials_lists_the_top_k_by_a_metric_in_its_direction(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    frame = load_trials(runs["a"])
    status, out, _ = _out(capsys, ["trials", str(runs["a"]), "--top", "3", "--json"])
    assert status == 0
    rows = json.loads(out)
    assert [r["trial_id"] for r in rows] == list(frame.nlargest(3, "score")["trial_id"])  # max
    status, out, _ = _out(capsys, ["trials", str(runs["a"]), "--top", "2", "--by", "params"])
    table = out.splitlines()
    assert status == 0 and table[1].split()[:2] == ["trial", "status"]
    smallest = frame.sort_values(["params", "trial_id"])["trial_id"].head(2).tolist()
    assert [int(line.split()[0]) for line in table[2:4]] == smallest and len(table) == 4
    assert "\x1b" not in out  # plain text when piped: no colour codes
    status, out, _ = _out(capsys, ["trials", str(runs["a"]), "--top", "1", "--by", "macs:max"])
    assert int(out.splitlines()[2].split()[0]) == int(frame.loc[frame["macs"].idxmax(), "trial_id"])


def test_trials_default_listing_front_and_all(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    frame = load_trials(runs["a"])
    status, out, _ = _out(capsys, ["trials", str(runs["a"]), "--front", "--json"])
    assert status == 0
    assert sorted(r["trial_id"] for r in json.loads(out)) == sorted(
        frame.loc[frame["front"], "trial_id"]
    )
    status, out, _ = _out(capsys, ["trials", str(runs["a"]), "--all", "--json"])
    assert [r["trial_id"] for r in json.loads(out)] == list(frame["trial_id"])
    status, out, _ = _out(capsys, ["trials", str(runs["a"])])  # the default: a short table
    assert status == 0 and "by score (maximize)" in out.splitlines()[0]
    assert len(out.splitlines()) <= 2 + 10 + 1


def test_trials_id_shows_one_trial_in_full(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    frame = load_trials(runs["a"]).set_index("trial_id")
    status, out, _ = _out(capsys, ["trials", str(runs["a"]), "4", "--json"])
    assert status == 0
    d = json.loads(out)
    assert d["trial_id"] == 4 and d["status"] == frame.loc[4, "status"]
    assert d["metrics"]["score"] == pytest.approx(frame.loc[4, "score"])
    assert d["architecture"]["mixers"] == frame.loc[4, "mixers"]
    assert d["costs"]["params"] == frame.loc[4, "params"] and d["front"] == frame.loc[4, "front"]
    assert d["spec"]["stages"] and set(d["ranks"]) == {"score", "params"}
    assert "trials.sqlite" in d["spec_in"] and "timings" in d and "error" in d
    status, out, _ = _out(capsys, ["trials", str(runs["a"]), "4"])
    assert "trial 4 of" in out and "architecture: mixers" in out and "metrics:" in out
    assert f"mixnas export {runs['a']} --pick 4" in out


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["trials", "{a}", "999"], "trial 999: no finished trial of"),
        (["trials", "{root}/nowhere"], "'{root}/nowhere': not a mixnas run folder; runs in"),
        (["trials", "{a}", "--by", "nope"], "'nope'; known: activation_bytes"),
        (["trials", "{a}", "--by", "macs"], "say macs:max or macs:min"),
        (["trials", "{a}", "--all", "--top", "3"], "--all lists every trial"),
        (["runs", "diff", "{a}", "{root}/nowhere"], "B '{root}/nowhere': not a mixnas run"),
        (["runs", "diff", "{a}"], "expected two runs"),
        (["export", "{a}", "--pick", "top5", "--by", "nope"], "'nope'; known:"),
        (["export", "{a}", "--pick", "topx"], "topK"),
        (["export", "{a}", "--pick", "best", "--by", "score"], "--by ranks a topK pick"),
    ],
)
def test_bad_queries_are_one_line_and_exit_2(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    values = {"a": str(runs["a"]), "root": str(runs["a"].parent)}
    status, _, err = _out(capsys, [arg.format(**values) for arg in argv])
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("mixnas: error: ")
    assert named.format(**values) in err
    assert "runs in" not in named or "a, b" in err  # what is allowed: the runs beside it


# -- mixnas runs diff -----------------------------------------------------------------------------


def test_runs_diff_compares_config_counts_best_and_hypervolume(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _out(capsys, ["runs", "diff", str(runs["a"]), str(runs["b"]), "--json"])
    assert status == 0
    diff = json.loads(out)
    changed = {c["key"]: (c["a"], c["b"]) for c in diff["config"]}
    assert changed["seed"] == (3, 5) and changed["budget.trials"] == (10, 8)
    assert "strategy.name" not in changed  # only what differs
    for side, run_dir in (("a", runs["a"]), ("b", runs["b"])):
        run, frame = RunData.load(run_dir), load_trials(run_dir)
        got = diff[side]
        assert got["trials"] == len(frame) and got["ok"] == (frame["status"] == "ok").sum()
        assert got["front"] == int(run.on_front.sum())
        best = frame.loc[frame["score"].idxmax()]
        assert got["best"]["score"] == {"value": best["score"], "trial_id": best["trial_id"]}
        assert got["best"]["params"]["value"] == frame["params"].min()
        assert 0.0 < got["hypervolume"] <= 1.1**2
    ref = diff["reference"]
    assert set(ref) == {"score", "params"}
    status, out, _ = _out(capsys, ["runs", "diff", str(runs["a"]), str(runs["a"]), "--json"])
    same = json.loads(out)
    assert same["config"] == [] and same["a"]["hypervolume"] == same["b"]["hypervolume"]
    status, out, _ = _out(capsys, ["runs", "diff", str(runs["a"]), str(runs["b"])])
    assert status == 0 and "seed: 3 -> 5" in out and "hypervolume" in out


def test_common_hypervolumes_share_one_reference() -> None:
    from mixnas.front import common_hypervolumes

    worse = np.array([[1.0, 1.0]])
    better = np.array([[0.0, 0.0]])
    (hv_worse, hv_better), ref = common_hypervolumes([worse, better])
    # scaled by the union's range [0, 1]: the reference is (1.1, 1.1) in both
    assert hv_better == pytest.approx(1.21) and hv_worse == pytest.approx(0.01)
    assert list(ref) == pytest.approx([1.1, 1.1])
    assert common_hypervolumes([better[:0], better])[0][0] == 0.0


# -- export --pick topK ---------------------------------------------------------------------------


def test_export_pick_top_k_by_the_first_objective_or_by(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = load_trials(runs["a"])
    out = tmp_path / "top"
    status, _, _ = _out(capsys, ["export", str(runs["a"]), "--pick", "top3", "--out", str(out)])
    assert status == 0
    exported = {json.loads(p.read_text())["provenance"]["trial_id"] for p in out.glob("*.json")}
    assert exported == set(frame.nlargest(3, "score")["trial_id"])
    out2 = tmp_path / "top_params"
    argv = ["export", str(runs["a"]), "--pick", "top2", "--by", "params", "--out", str(out2)]
    assert _out(capsys, argv)[0] == 0
    exported = {json.loads(p.read_text())["provenance"]["trial_id"] for p in out2.glob("*.json")}
    assert exported == set(frame.nsmallest(2, "params")["trial_id"])
    # the existing picks still work beside it
    for pick in ("front", "best", "3,7"):
        folder = tmp_path / pick.replace(",", "_")
        assert (
            _out(capsys, ["export", str(runs["a"]), "--pick", pick, "--out", str(folder)])[0] == 0
        )
        assert list(folder.glob("*.json"))


# -- ONNX with a dynamic batch --------------------------------------------------------------------


def test_onnx_export_has_a_dynamic_batch_axis(tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    import torch

    from mixnas.export import write_models
    from mixnas.records import OK, TrialRecord
    from search_space import build_model, example_input
    from search_space.declare.space import SearchSpace

    space = SearchSpace.from_dict(
        {
            "name": "tiny",
            "input": {"kind": "image", "channels": 3, "resolution": 16, "num_classes": 4},
            "stem": [{"name": "patch_embed", "patch_size": 4}],
            "num_stages": [1],
            "token_mixers": {"pooling": {}},
            "channel_mixers": {"mlp": {"ratio": [2.0]}},
            "stages": [{"depth": [1], "width": [16], "token_mixers": ["pooling"]}],
            "head": {"name": "classifier", "pool": "gap"},
        },
        source="tiny",
    )
    spec = space.sample(np.random.default_rng(0))
    record = TrialRecord(0, spec.id, "random", OK, spec.to_dict())
    (path,) = write_models(record, tmp_path / "tiny", torchscript=False, onnx=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] not in (1, 2, 5)  # a named axis, not a number
    model = build_model(spec, seed=0).eval()
    for batch in (1, 5):
        x = example_input(spec, batch_size=batch, seed=11)
        (got,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            want = model(x).numpy()
        assert got.shape == (batch, 4)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)


# -- mixnas space list, space describe nb201 ------------------------------------------------------


def test_space_list_names_every_built_in_space_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from search_space.spaces import names

    status, out, _ = _out(capsys, ["space", "list", "--json"])
    assert status == 0
    listed = {s["name"]: s["description"] for s in json.loads(out)}
    assert set(listed) == {*names(), "nb201"}
    assert all(d and "\n" not in d for d in listed.values())
    status, out, _ = _out(capsys, ["space", "list"])
    assert status == 0 and len(out.splitlines()) == len(listed)
    assert all(line.split()[0] in listed for line in out.splitlines())


def test_space_describe_and_sample_nb201(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _out(capsys, ["space", "describe", "nb201", "--json"])
    assert status == 0
    info = json.loads(out)
    assert info["cardinality"] == 15625 and info["dataset"] == "cifar10"
    status, out, _ = _out(capsys, ["space", "describe", "nb201:cifar100"])
    assert status == 0 and "cifar100" in out and "15,625" in out
    status, out, _ = _out(capsys, ["space", "sample", "nb201", "-n", "2", "--json"])
    assert status == 0 and len(json.loads(out)) == 2
    status, _, err = _out(capsys, ["space", "describe", "nb201:mnist"])
    assert status == 2 and "cifar10, cifar100, ImageNet16-120" in err and "'mnist'" in err
    status, _, err = _out(capsys, ["space", "describe", "nosuch"])
    builtin = "built-in: causal_lm, hybrid, hybrid_cpu, isotropic, nb201, sequence"
    assert status == 2 and builtin in err


# -- docs and LICENSE -----------------------------------------------------------------------------


def test_evaluators_doc_is_current_and_names_every_proxy_and_train_option() -> None:
    import importlib.util

    docs = ROOT / "docs"
    spec = importlib.util.spec_from_file_location(
        "make_evaluators_doc", docs / "make_evaluators_doc.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (docs / "evaluators.md").read_text()
    assert text == module.render(), (
        "docs/evaluators.md is stale: run .venv/bin/python docs/make_evaluators_doc.py"
    )
    from evaluators.data import BUILTIN, GENERATED
    from evaluators.proxies import PROXIES
    from evaluators.training import ShortTraining

    for name in PROXIES.names():
        assert f"| `{name}` |" in text
    for option in ShortTraining.defaults:
        assert f"| `{option}` |" in text
    assert "(undocumented)" not in text  # every option has its line in the docstring
    for source in (*BUILTIN, *GENERATED, ".npz", "folder"):
        assert source in text


def test_license_is_the_apache_2_text_pyproject_names() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert 'license = { text = "Apache-2.0" }' in (ROOT / "pyproject.toml").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) == 202
