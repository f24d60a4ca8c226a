"""Plug-ins: the example package in tests/plugin_example/, installed on a path entry (its
dist-info written from its pyproject.toml), registers a token mixer, a proxy and a strategy
through entry points; ``mixnas plugins`` lists them, ``mixnas space describe`` accepts a space
using the mixer, and mixnas.testing's suites pass on them in a fresh interpreter. Broken plug-ins
are one warning line each; the torch-free import of the op API works first in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from search_space.errors import RegistryError
from search_space.plugins import load_group
from search_space.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = Path(__file__).resolve().parent / "plugin_example"


def install(target: Path, name: str, version: str, entry_points: dict[str, dict[str, str]]) -> None:
    """What ``pip install`` leaves for entry points: a dist-info with METADATA and
    entry_points.txt, in ``target`` (a path entry)."""
    info = target / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, points in entry_points.items():
        lines += [f"[{group}]", *(f"{k} = {v}" for k, v in points.items()), ""]
    (info / "entry_points.txt").write_text("\n".join(lines))


def example_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a process in which the example plug-in is installed."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    site = tmp_path / "site"
    install(site, project["name"], project["version"], project["entry-points"])
    return _env(site, EXAMPLE)


def _env(*paths: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MIXNAS_NO_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([*(str(p) for p in paths), str(ROOT)])
    return env


def _run(args: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout
    )


# -- issue 21, item 1 -----------------------------------------------------------------------------


def test_the_op_api_imports_first_in_a_fresh_interpreter() -> None:
    code = (
        "from search_space.ops import OpDef, ParamDef, Sharing, register\n"
        "import sys\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = _run(["-c", code], _env())
    assert result.returncode == 0, result.stderr


def test_the_builder_has_no_per_kind_switch() -> None:
    import inspect

    from search_space.nn import builder

    source = inspect.getsource(builder.instantiate)
    assert "kind ==" not in source and "type: ignore" not in source


def test_a_module_reference_may_be_a_loader() -> None:
    import dataclasses

    import torch

    from search_space.ops import TOKEN_MIXERS, OpContext

    op = dataclasses.replace(TOKEN_MIXERS.get("pooling"), module=lambda: torch.nn.Tanh)
    ctx = OpContext(dim=8, grid=(4, 4))
    # the convention of a token mixer: (dim, *, grid, **params)
    assert op.arguments(ctx, {"pool_size": 3}) == ((8,), {"grid": (4, 4), "pool_size": 3})
    with pytest.raises(TypeError):  # nn.Tanh takes no width or grid: the call is the convention's
        op.build(ctx, {"pool_size": 3})
    wrapped = dataclasses.replace(op, call=lambda ctx, params: ((), {}))
    assert isinstance(wrapped.build(ctx, {"pool_size": 3}), torch.nn.Tanh)


def test_the_latency_signature_is_the_ops() -> None:
    from search_space import load_space, plan

    for item in plan(load_space("hybrid").sample(0)):
        if item.op is not None:
            own = item.op.signature(item.ctx, item.params, item.role.rstrip("12"))
            assert item.signature().startswith(own + ",w")


def test_a_module_reference_is_checked_when_the_op_is_defined() -> None:
    from search_space.ops import OpDef
    from search_space.ops.base import Cost

    for bad in ("my_pkg.mixers.MyMixer", "my_pkg.mixers:", 42):
        with pytest.raises(ValueError, match=r"package\.module:ClassName"):
            OpDef(name="x", kind="token_mixer", module=bad, params=(), cost=lambda c, p: Cost())


# -- the example plug-in --------------------------------------------------------------------------


def test_mixnas_plugins_lists_the_example(tmp_path: Path) -> None:
    env = example_env(tmp_path)
    result = _run(["-m", "mixnas", "plugins", "--json"], env)
    assert result.returncode == 0, result.stderr
    rows = {r["group"]: r for r in json.loads(result.stdout)}
    assert rows["mixnas.ops"]["registered"] == ["token mixer example_gate"]
    assert rows["mixnas.proxies"]["registered"] == ["proxy example_log_weight_mass"]
    assert rows["mixnas.strategies"]["registered"] == ["strategy example_greedy"]
    for row in rows.values():
        assert row["distribution"] == "mixnas-example-plugin 0.1.0" and not row["error"]
    text = _run(["-m", "mixnas", "plugins"], env)
    assert "mixnas.ops  example_ops  (mixnas-example-plugin 0.1.0: mixnas_example.ops)" in (
        text.stdout
    )
    assert not text.stderr


def test_space_describe_accepts_the_plugin_mixer(tmp_path: Path) -> None:
    env = example_env(tmp_path)
    space = str(EXAMPLE / "example_space.yaml")
    result = _run(["-m", "mixnas", "space", "describe", space, "--json"], env)
    assert result.returncode == 0, result.stderr
    assert "example_gate" in json.loads(result.stdout)["mixers"]
    # without the plug-in, the same file is bad input naming the mixer
    missing = _run(["-m", "mixnas", "space", "describe", space], _env())
    assert missing.returncode == 2 and "example_gate" in missing.stderr


def test_the_plugin_stays_torch_free_until_a_model_is_built(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from search_space import load_space, spec_cost\n"
        f"space = load_space({str(EXAMPLE / 'example_space.yaml')!r})\n"
        "specs = map(space.sample, range(50))\n"
        "spec = next(s for s in specs if 'example_gate' in s.mixer_names())\n"
        "spec_cost(spec)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "from search_space import build_model, example_input\n"
        "build_model(spec)(example_input(spec))\n"
    )
    result = _run(["-c", code], example_env(tmp_path))
    assert result.returncode == 0, result.stderr


def test_the_testing_suites_pass_on_the_plugin(tmp_path: Path) -> None:
    """The plug-in author's own tests (tests/plugin_example/plugin_contracts.py) run
    mixnas.testing's mixer, sharing, proxy and strategy suites on the plug-in's names."""
    env = example_env(tmp_path)
    result = _run(
        [
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            str(EXAMPLE / "plugin_contracts.py"),
        ],
        env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout.split("\n")[-2]


# -- broken plug-ins ------------------------------------------------------------------------------


def test_broken_plugins_are_one_warning_line_each(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "broken_raise.py").write_text("raise RuntimeError('the plug-in is broken')\n")
    (site / "broken_dupe.py").write_text(
        "from search_space.ops import OpDef, ParamDef, register\n"
        "from search_space.ops.base import Cost\n"
        "from search_space.ops.sharing import Sharing\n"
        "def make(name):\n"
        "    return OpDef(name=name, kind='token_mixer', module='x:Y', params=(),\n"
        "                 cost=lambda ctx, p: Cost(), sharing=Sharing())\n"
        "register(make('dupe_first'))  # taken back: the plug-in as a whole failed\n"
        "register(make('pooling'))\n"
    )
    install(
        site,
        "broken-plugins",
        "1.0",
        {
            "mixnas.ops": {
                "missing": "no_such_module.ops",
                "raises": "broken_raise",
                "dupe": "broken_dupe",
            },
            "mixnas.strategies": {"not_callable": "json:__name__"},
        },
    )
    env = _env(site)
    result = _run(["-m", "mixnas", "plugins", "--json"], env)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 4, result.stderr
    for name, why in (
        ("missing", "No module named 'no_such_module'"),
        ("raises", "the plug-in is broken"),
        ("dupe", "token mixer 'pooling' is already registered"),
        ("not_callable", "names a module"),
    ):
        (line,) = [w for w in warnings if f"plug-in {name!r}" in w]
        assert why in line and "broken-plugins 1.0" in line, line
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["dupe"]["registered"] == [] and rows["dupe"]["error"]
    # the rest of mixnas works: the built-ins, without the broken plug-ins' names
    describe = _run(["-m", "mixnas", "space", "describe", "hybrid", "--json"], env)
    assert describe.returncode == 0, describe.stderr
    assert "dupe_first" not in json.loads(describe.stdout)["mixers"]
    off = _run(["-m", "mixnas", "plugins"], {**env, "MIXNAS_NO_PLUGINS": "1"})
    assert off.returncode == 0 and not off.stderr and "off" in off.stdout


def test_a_registry_loads_its_group_once_after_its_builtins(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    calls = tmp_path / "calls.txt"
    (site / "counting_plugin.py").write_text(
        "from pathlib import Path\n"
        "from tests.test_plugins import TEST_REGISTRY\n"
        f"Path({str(calls)!r}).open('a').write('loaded\\n')\n"
        "TEST_REGISTRY.register('from_plugin', 2)\n"
    )
    (site / "clashing_plugin.py").write_text(
        "from tests.test_plugins import TEST_REGISTRY\n"
        "TEST_REGISTRY.register('clash_extra', 3)\n"
        "TEST_REGISTRY.register('builtin', 4)\n"
    )
    install(
        site,
        "counting",
        "0.1",
        {"mixnas.test_only": {"counting": "counting_plugin", "clashing": "clashing_plugin"}},
    )
    sys.path.insert(0, str(site))
    try:
        import importlib

        importlib.invalidate_caches()
        TEST_REGISTRY._ready = False
        assert "from_plugin" in TEST_REGISTRY and TEST_REGISTRY.get("builtin") == 1
        assert TEST_REGISTRY.names() == ["builtin", "from_plugin"]  # clashing one taken back
        assert TEST_REGISTRY.origin("from_plugin").startswith("mixnas.test_only:counting")
        assert TEST_REGISTRY.origin("builtin") == ""
        assert calls.read_text() == "loaded\n"  # once
        (failed,) = [p for p in load_group("mixnas.test_only") if p.error]
        assert failed.name == "clashing" and "already registered" in failed.error
        with pytest.raises(RegistryError, match="known: builtin, from_plugin"):
            TEST_REGISTRY.get("clash_extra")
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("counting_plugin", None)
        sys.modules.pop("clashing_plugin", None)


def test_what_a_plugin_adds_to_a_plain_dict_is_recorded(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "dict_plugin.py").write_text(
        "from tests.test_plugins import PLAIN\nPLAIN['from_plugin'] = 1\n"
    )
    install(site, "dicts", "0.1", {"mixnas.test_watch": {"adds": "dict_plugin"}})
    sys.path.insert(0, str(site))
    try:
        import importlib

        importlib.invalidate_caches()
        (plugin,) = load_group("mixnas.test_watch", watch=lambda: (("item", n) for n in PLAIN))
        assert plugin.ok and plugin.registered == [("item", "from_plugin")]
        assert plugin.distribution == "dicts 0.1"
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("dict_plugin", None)


PLAIN: dict[str, int] = {"builtin": 0}


def _test_builtins() -> None:
    if "builtin" not in TEST_REGISTRY._items:
        TEST_REGISTRY.register("builtin", 1)


TEST_REGISTRY: Registry[int] = Registry(
    "test item", group="mixnas.test_only", builtins=_test_builtins
)


def test_a_plugin_task_is_a_dataset_and_a_broken_ones_tasks_are_taken_back(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    task = (
        "import numpy as np\n"
        "from evaluators.tasks.base import Task, register, normalised_images\n"
        "def settings(spec, knobs):\n"
        "    return {'side': int(spec.resolution[0])}\n"
        "def generate(labels, rng, s):\n"
        "    side = s['side']\n"
        "    x = rng.integers(0, 50, (len(labels), 1, side, side)).astype(np.uint8)\n"
        "    x[labels == 1] += 100\n"
        "    return x\n"
        "def make(name):\n"
        "    return register(Task(name, 1, 2, {}, {d: {} for d in ('easy', 'medium', 'hard')},\n"
        "                         settings, generate, lambda raw, spec: normalised_images(raw)))\n"
    )
    (site / "bright_task.py").write_text(task + "make('bright')\n")
    (site / "broken_task.py").write_text(task + "make('half_done')\nraise RuntimeError('boom')\n")
    install(
        site,
        "tasks-plugin",
        "0.2",
        {"mixnas.datasets": {"bright": "bright_task", "broken": "broken_task"}},
    )
    script = (
        "from evaluators.data import load_dataset, GENERATED\n"
        "from search_space.spec import InputSpec\n"
        "spec = InputSpec('image', 2, channels=1, resolution=(8, 8))\n"
        "data = load_dataset({'name': 'bright', 'n_train': 10, 'n_val': 4}, spec, seed=0)\n"
        "print(tuple(data.x_train.shape), 'bright' in GENERATED, 'half_done' in GENERATED)\n"
    )
    env = {**_env(site), "MIXNAS_DATA_CACHE": str(tmp_path / "cache")}
    done = _run(["-c", script], env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "(10, 1, 8, 8) True False"
    warnings = [line for line in done.stderr.splitlines() if "broken" in line]
    assert len(warnings) == 1 and "boom" in warnings[0]
