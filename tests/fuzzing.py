"""Seeded mutation fuzzing of mixnas's loaders, through the CLI's own entry point.

Who uses it: tests/test_fuzz.py draws a seeded subset with hypothesis (a minute at most of
``make test``); bench/fuzz.py runs the same targets on thousands of inputs and writes the counts
to docs/benchmarks.md.

A target is a loader reached through ``mixnas.cli.main`` called in-process: ``space`` (``mixnas
space describe FILE``), ``config`` (``mixnas search FILE --check``: every check a run makes before
its first trial), ``spec`` (``mixnas build FILE``) and ``run`` (a run folder with one file
mutated, then ``mixnas doctor``, ``mixnas report`` and ``mixnas search --resume`` with no trial
left to run). Each input is a seed file mutated by a few random operations, on its parsed tree
(a value replaced by one that is hostile: null, -1, 10^30, a 5,000-character string, a deep
list, a type swapped; a key deleted, added or renamed) or on its bytes (bytes flipped, inserted
or deleted, undecodable bytes, a span repeated, the file cut, deep nesting spliced in, a line
repeated so that a key is given twice).

The verdict of one run: ``accepted`` (exit 0), ``refused`` (exit 2 with exactly one
``mixnas: error:`` line on stderr and no traceback; warnings may precede it), or a failure:
``traceback`` (an exception escaped ``main``), ``internal`` (the CLI caught an exception it did
not expect: exit 70), ``not one line`` (exit 2 with more or less than one error line), ``hang``
(past the time limit). A spec that loads and whose analytic costs exceed `BUILD_LIMIT` is not
built (a model of 10^12 MACs is a valid request that takes hours, not a hang of the loader): its
verdict is the loader's and `search_space.spec_cost`'s.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import random
import shutil
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("space", "config", "spec", "run")
FAILURES = ("traceback", "internal", "not one line", "hang")
BUILD_LIMIT = {"macs": 2e8, "params": 2e7}  # a spec above this is checked, not built

# a small space: its models build in a fraction of a second, so valid mutants are cheap
TINY_SPACE: dict[str, Any] = {
    "name": "tiny",
    "input": {"kind": "image", "channels": 3, "resolution": 16, "num_classes": 5},
    "stem": [{"name": "patch_embed", "patch_size": [2, 4]}],
    "token_mixers": {"attention": {"head_dim": 8}, "pooling": {}, "dwconv": {"kernel": [3, 5]}},
    "channel_mixers": {"mlp": {"ratio": [1.0, 2.0]}},
    "stages": [
        {"depth": [1, 2], "width": [16, 32], "patterns": ["uniform"]},
        {
            "depth": [1, 2],
            "width": [32, 48],
            "downsample": "patch_merging",
            "patterns": ["uniform", {"last_k": [1], "tail": ["attention"]}],
        },
    ],
    "head": {"name": "classifier"},
    "constraints": {"params": {"max": 5.0e6}},
}

DEEP = "[" * 5000 + "]" * 5000
ALIAS_BOMB = "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in zip("abcdefg", "bcdefgh", strict=False)
)
HOSTILE: list[Any] = [
    None, True, False, 0, -1, 1, 2, 3.5, -0.5, 2**31, 2**63, 10**30, -(10**30), 1e308,
    "", " ", "x" * 5000, "nan", "-1", "1e400", "../../../etc/passwd", "/dev/zero", "é\u202e\u0000",
    "auto", "cuda:7", "random", "cost", "hybrid", [], {}, [[[[[[]]]]]], {"a": {"b": {"c": {}}}},
    list(range(50)), [None], ["nwot"] * 20, {"name": "x"}, {"from": "hybrid"},
]  # fmt: skip


# -- seeds --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Seed:
    name: str
    suffix: str  # ".yaml" or ".json"
    data: Any  # the parsed seed (tree mutations)
    text: str  # the seed as written (byte mutations)


def _seed(name: str, data: Any, suffix: str, text: str | None = None) -> Seed:
    if text is None:
        text = json.dumps(data, indent=1) if suffix == ".json" else yaml.safe_dump(data)
    return Seed(name, suffix, data, text)


def space_seeds() -> list[Seed]:
    out = []
    for name in ("hybrid", "hybrid_cpu", "isotropic", "sequence"):
        path = ROOT / "search_space" / "spaces" / f"{name}.yaml"
        data = yaml.safe_load(path.read_text())
        out.append(_seed(name, data, ".yaml", path.read_text()))
        out.append(_seed(f"{name}.json", data, ".json"))
    out.append(_seed("tiny", TINY_SPACE, ".yaml"))
    out.append(_seed("around", {"around": {"zoo": "convnext_t", "depth": 1}}, ".yaml"))
    return out


def config_seeds() -> list[Seed]:
    default = (ROOT / "mixnas" / "default_search.yaml").read_text()
    cost = {
        "name": "fuzz",
        "seed": 1,
        "space": "hybrid",
        "objectives": [
            {"metric": "macs", "direction": "minimize"},
            {"metric": "params", "direction": "minimize"},
        ],
        "constraints": {"params": {"max": 2.0e6}},
        "evaluators": ["cost"],
        "strategy": {"name": "nsga2", "options": {"population_size": 12, "crossover_prob": 0.9}},
        "budget": {"trials": 20, "seconds": 60},
        "backend": {"name": "local", "workers": 1, "batch": 8},
        "trial_timeout": 30,
        "export": {"pick": "front", "dir": "export"},
    }
    inline = {
        **cost,
        "space": TINY_SPACE,
        "objectives": ["proxy:nwot", {"metric": "params", "direction": "minimize"}],
        "evaluators": [
            {"name": "proxy", "options": {"names": ["nwot", "synflow"], "batch_size": 8}},
            {
                "name": "train",
                "budget": {"steps": 10},
                "data": "digits",
                "options": {"lr": 0.002, "batch_size": 16},
                "promote": {"metric": "proxy:nwot", "top": 0.5, "warmup": 2},
            },
        ],
        "strategy": {"name": "evolution", "options": {"population_size": 8, "sample_size": 3}},
    }
    derived = {
        **cost,
        "space": {"from": "hybrid_cpu", "constraints": {"macs": {"max": 5e7}}},
        "strategy": {"name": "surrogate", "options": {"num_init": 4, "mc_samples": 16}},
        "evaluators": [{"name": "latency", "options": {"repeats": 3, "warmup": 1}}],
        "objectives": ["latency_ms@host", "params"],
    }
    return [
        _seed("default", yaml.safe_load(default), ".yaml", default),
        _seed("cost", cost, ".yaml"),
        _seed("cost.json", cost, ".json"),
        _seed("inline", inline, ".yaml"),
        _seed("derived", derived, ".json"),
    ]


def spec_seeds() -> list[Seed]:
    import numpy as np

    from search_space import SearchSpace

    space = SearchSpace.from_dict(copy.deepcopy(TINY_SPACE), source="tiny")
    rng = np.random.default_rng(0)
    out = []
    for i in range(4):
        spec = space.sample(rng).to_dict()
        out.append(_seed(f"tiny-{i}", spec, ".json"))
    record = {"id": "x", "spec": out[0].data, "params": 1.0, "trial_id": 3}
    out.append(_seed("record", record, ".json"))
    return out


# -- mutation -----------------------------------------------------------------------------------
def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _paths(v, (*prefix, i))


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def _swap_type(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return rng.choice([str(value), [value], value * rng.choice([-1, 1000, 10**12]), None])
    if isinstance(value, str):
        return rng.choice([len(value), [value], {value: value}, value * 1000, value.upper()])
    if isinstance(value, list):
        return value[0] if value else {}
    if isinstance(value, dict):
        return list(value.values()) or list(value)
    return rng.choice(HOSTILE)


def mutate_tree(data: Any, rng: random.Random) -> Any:
    """One structural mutation of a copy of ``data`` (see the module docstring)."""
    data = copy.deepcopy(data)
    paths = list(_paths(data))
    path = rng.choice(paths)
    if not path:  # the root itself
        return rng.choice([rng.choice(HOSTILE), [data], {"x": data}])
    parent, key = _get(data, path[:-1]), path[-1]
    value = parent[key]
    op = rng.randrange(7)
    if op == 0:
        parent[key] = copy.deepcopy(rng.choice(HOSTILE))
    elif op == 1:
        parent[key] = _swap_type(value, rng)
    elif op == 2:
        del parent[key]
    elif op == 3 and isinstance(parent, dict):
        parent[rng.choice(["bogus", f"{key}_", str(key).upper(), "__proto__"])] = value
    elif op == 3:
        parent.insert(rng.randrange(len(parent) + 1), copy.deepcopy(value))
    elif op == 4 and isinstance(value, int | float) and not isinstance(value, bool):
        parent[key] = rng.choice([value + 1, value - 1, -value, value * 10**6, 0, value / 3])
    elif op == 5 and isinstance(parent, dict):
        other = rng.choice(list(parent))  # two fields swapped
        parent[key], parent[other] = parent[other], value
    else:  # another part of the document copied here
        parent[key] = copy.deepcopy(_get(data, rng.choice(paths)))
    return data


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One byte-level mutation of ``data`` (see the module docstring)."""
    b = bytearray(data)
    n = len(b)
    at = rng.randrange(n + 1)
    op = rng.randrange(10)
    if op == 0 and n:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(n)] = rng.randrange(256)
    elif op == 1:
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif op == 2:
        b[at:at] = rng.choice([b"\xff\xfe", b"\x00", b"\xc3\x28", b"\xed\xa0\x80", b"\xef\xbb\xbf"])
    elif op == 3 and n:
        end = min(n, at + rng.randint(1, 200))
        del b[at:end]
    elif op == 4 and n:
        end = min(n, at + rng.randint(1, 200))
        b[at:at] = bytes(b[at:end]) * rng.randint(2, 50)
    elif op == 5:
        del b[rng.randrange(n + 1) :]
    elif op == 6:
        b[at:at] = rng.choice([DEEP, "{" * 3000, "[" * 100]).encode()
    elif op == 7:
        lines = bytes(b).splitlines(keepends=True)
        if lines:  # a line repeated: in a mapping, a key given twice
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
        b = bytearray(b"".join(lines))
    elif op == 8:
        b[at:at] = rng.choice(
            ["\n" + ALIAS_BOMB, ": :", "&a *a", "!!python/object:os.system", "\t"]
        ).encode()
    else:
        b[at:at] = str(rng.choice([10**30, -1, 1e400, "NaN", "Infinity", 2**64])).encode()
    return bytes(b)


def mutant(seed: Seed, rng: random.Random) -> bytes:
    """A mutated copy of a seed: 1-3 tree mutations, then (for some) 0-2 byte mutations."""
    if rng.random() < 0.6:
        data = seed.data
        for _ in range(rng.randint(1, 3)):
            data = mutate_tree(data, rng)
        try:
            if seed.suffix == ".json":
                text = json.dumps(data, indent=1)
            else:
                text = yaml.safe_dump(data, allow_unicode=True)
        except (ValueError, OverflowError):
            text = seed.text
        raw = text.encode("utf-8", "surrogatepass")
        byte_ops = rng.choice([0, 0, 1])
    else:
        raw = seed.text.encode()
        byte_ops = rng.randint(1, 3)
    for _ in range(byte_ops):
        raw = mutate_bytes(raw, rng)
    return raw


# -- running one input --------------------------------------------------------------------------
class _Hang(BaseException):  # not an Exception: the CLI's last-resort handler must not catch it
    pass


@dataclass
class Outcome:
    target: str
    verdict: str
    code: int | None
    stderr: str
    seconds: float
    argv: tuple[str, ...]
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict in FAILURES

    def describe(self) -> str:
        err = self.stderr.strip()[-600:]
        argv = " ".join(self.argv)
        return f"{self.target} {argv}: {self.verdict} (exit {self.code}) {err} {self.detail}"


def run_cli(argv: list[str], *, timeout: float, accept: tuple[int, ...] = (0,)) -> Outcome:
    """Runs ``mixnas.cli.main(argv)`` in this process with a time limit; the verdict as in the
    module docstring (``accept``: exit codes that are a normal answer, e.g. 1 for doctor)."""
    from mixnas.cli import main

    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)  # the CLI's warnings, into this run's stderr
    root = logging.getLogger()
    root.addHandler(handler)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    start = time.perf_counter()
    code: int | None = None
    detail = ""
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        verdict = _verdict(code, err.getvalue(), accept)
    except _Hang:
        verdict = "hang"
    except SystemExit as exc:  # argparse: a usage error is exit 2 with a usage line
        code = exc.code if isinstance(exc.code, int) else 1
        verdict = "refused" if code == 2 else "traceback"
    except BaseException as exc:
        verdict, detail = "traceback", "".join(traceback.format_exception_only(exc)).strip()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        root.removeHandler(handler)
    return Outcome(
        "", verdict, code, err.getvalue(), time.perf_counter() - start, tuple(argv), detail
    )


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang


def _verdict(code: int, stderr: str, accept: tuple[int, ...]) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    if "Traceback (most recent call last)" in stderr:
        return "traceback"
    if code in accept:
        return "accepted"
    if code == 70:
        return "internal"
    errors = [line for line in lines if line.startswith("mixnas: error: ")]
    others = [line for line in lines if line not in errors]
    warnings = all(line.startswith(("WARNING ", "mixnas: warning: ")) for line in others)
    if code == 2 and len(errors) == 1 and warnings:
        return "refused"
    return "not one line"


# -- the targets --------------------------------------------------------------------------------
class Fuzzer:
    """Runs mutated inputs of the targets in a scratch folder; seeds are built once."""

    def __init__(self, workdir: Path, *, timeout: float = 20.0) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self._seeds: dict[str, list[Seed]] = {}
        self._healthy_run: Path | None = None

    def seeds(self, target: str) -> list[Seed]:
        if target not in self._seeds:
            make: dict[str, Callable[[], list[Seed]]] = {
                "space": space_seeds,
                "config": config_seeds,
                "spec": spec_seeds,
                "run": lambda: [],
            }
            self._seeds[target] = make[target]()
        return self._seeds[target]

    def one(self, target: str, rng: random.Random) -> Outcome:
        """One mutated input of ``target``, run; the input is kept in ``workdir/last-*``."""
        if target == "run":
            return self._run_folder(rng)
        seed = rng.choice(self.seeds(target))
        path = self.workdir / f"last-{target}{seed.suffix}"
        path.write_bytes(mutant(seed, rng))
        if target == "space":
            outcome = run_cli(["space", "describe", str(path)], timeout=self.timeout)
        elif target == "config":
            runs = self.workdir / "runs"
            argv = ["search", str(path), "--check", "--runs-dir", str(runs)]
            outcome = run_cli(argv, timeout=self.timeout)
        else:
            outcome = self._spec(path)
        outcome.target = target
        return outcome

    def _spec(self, path: Path) -> Outcome:
        """``mixnas build`` on a spec small enough to build; a larger valid one is loaded and
        costed (see the module docstring)."""
        from search_space import spec_cost
        from search_space.declare.loader import load_spec
        from search_space.errors import MixnasError

        try:
            cost = spec_cost(load_spec(path))
            small = cost.macs <= BUILD_LIMIT["macs"] and cost.params <= BUILD_LIMIT["params"]
        except MixnasError:
            small = True  # refused: the CLI must say so in one line
        except Exception:
            small = True
        if small:
            return run_cli(["build", str(path)], timeout=self.timeout)
        return Outcome("", "accepted", 0, "", 0.0, ("load_spec", str(path)), "too large to build")

    def healthy_run(self) -> Path:
        """A small finished run, made once, copied for each input."""
        if self._healthy_run is None:
            from mixnas.config import parse_config
            from mixnas.driver import run_search

            data = {
                "name": "healthy",
                "seed": 2,
                "space": copy.deepcopy(TINY_SPACE),
                "objectives": ["macs", {"metric": "params", "direction": "minimize"}],
                "evaluators": ["cost"],
                "strategy": {"name": "nsga2", "options": {"population_size": 4}},
                "budget": {"trials": 12},
                "backend": {"name": "local", "batch": 4},
                "runs_dir": str(self.workdir / "seed-runs"),
                "export": None,
            }
            shutil.rmtree(self.workdir / "seed-runs", ignore_errors=True)
            self._healthy_run = run_search(parse_config(data)).run_dir
        return self._healthy_run

    def _run_folder(self, rng: random.Random) -> Outcome:
        healthy = self.healthy_run()
        run_dir = self.workdir / "run-input" / "run"
        shutil.rmtree(run_dir.parent, ignore_errors=True)
        shutil.copytree(healthy, run_dir)
        name = rng.choice(
            ["config.json", "strategy.json", "manifest.json", "events.jsonl", "trials.sqlite"]
        )
        path = run_dir / name
        raw = path.read_bytes()
        if name.endswith(".json") and rng.random() < 0.6:
            data = json.loads(raw)
            for _ in range(rng.randint(1, 3)):
                data = mutate_tree(data, rng)
            raw = json.dumps(data).encode()
        elif name == "trials.sqlite" and rng.random() < 0.5:
            b = bytearray(raw)  # pages damaged in place, the size kept
            for _ in range(rng.randint(1, 20)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            raw = bytes(b)
        else:
            for _ in range(rng.randint(1, 3)):
                raw = mutate_bytes(raw, rng)
        path.write_bytes(raw)
        commands = [
            (["doctor", str(run_dir)], (0, 1)),
            (["report", str(run_dir)], (0,)),
            (["search", "--resume", str(run_dir), "--budget", "12", "-q"], (0,)),
        ]
        outcomes = []
        for argv, accept in commands:
            outcome = run_cli(argv, timeout=self.timeout, accept=accept)
            outcome.detail = f"{name} mutated; {outcome.detail}"
            outcomes.append(outcome)
            if outcome.failed:
                break
        # the verdict of the folder: its first failure, else a refusal, else accepted
        worst = next(
            (o for o in outcomes if o.failed),
            next((o for o in outcomes if o.verdict == "refused"), outcomes[0]),
        )
        worst.seconds = sum(o.seconds for o in outcomes)
        worst.target = "run"
        return worst
