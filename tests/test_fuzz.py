"""The seeded fuzz suite (issue 23): mutated space, config, spec and run-folder files through the
CLI, each answered with exit 0, or exit 2 and one line; never a traceback, an unexpected
exception (exit 70) or a hang. See tests/fuzzing.py for the targets and mutations.

Hypothesis draws the mutations (``derandomize``: the same inputs on every run, shrunk to a
small failing one if a run fails). A few dozen inputs per target keep the file to about half a
minute; ``python bench/fuzz.py`` runs thousands (docs/benchmarks.md).
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import Fuzzer

EXAMPLES = {"space": 150, "config": 150, "spec": 150, "run": 60}
TIMEOUT = 30.0  # seconds per input: a hang, on a machine as loaded as CI's


@pytest.fixture(scope="module")
def fuzzer() -> Iterator[Fuzzer]:
    with tempfile.TemporaryDirectory(prefix="mixnas-fuzz-") as folder:
        yield Fuzzer(Path(folder), timeout=TIMEOUT)


def _check(fuzzer: Fuzzer, target: str, rng: random.Random) -> None:
    outcome = fuzzer.one(target, rng)
    kept = sorted(fuzzer.workdir.glob(f"last-{target}*"))
    shown = kept[0].read_bytes()[:400] if kept else b""
    assert not outcome.failed, f"{outcome.describe()}\ninput (start): {shown!r}"


def _settings(target: str):  # type: ignore[no-untyped-def]
    return settings(
        max_examples=EXAMPLES[target],
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


@_settings("space")
@given(rng=st.randoms(use_true_random=False))
def test_space_files(fuzzer: Fuzzer, rng: random.Random) -> None:
    _check(fuzzer, "space", rng)


@_settings("config")
@given(rng=st.randoms(use_true_random=False))
def test_config_files(fuzzer: Fuzzer, rng: random.Random) -> None:
    _check(fuzzer, "config", rng)


@_settings("spec")
@given(rng=st.randoms(use_true_random=False))
def test_spec_files(fuzzer: Fuzzer, rng: random.Random) -> None:
    _check(fuzzer, "spec", rng)


@_settings("run")
@given(rng=st.randoms(use_true_random=False))
def test_run_folders(fuzzer: Fuzzer, rng: random.Random) -> None:
    _check(fuzzer, "run", rng)


def test_the_verdicts_tell_failures_from_refusals() -> None:
    """The harness itself: a refusal, an unexpected exception and a hang are told apart."""
    from tests.fuzzing import _verdict, run_cli

    assert _verdict(2, "mixnas: error: f: x: bad\n", (0,)) == "refused"
    assert _verdict(2, "WARNING a: b\nmixnas: error: f: x: bad\n", (0,)) == "refused"
    assert _verdict(2, "mixnas: error: a\nmixnas: error: b\n", (0,)) == "not one line"
    assert _verdict(70, "mixnas: internal error: KeyError\n", (0,)) == "internal"
    assert _verdict(0, "Traceback (most recent call last):\n", (0,)) == "traceback"
    assert run_cli(["space", "describe", "hybrid"], timeout=60).verdict == "accepted"
    assert run_cli(["space", "describe", "/nonexistent.yaml"], timeout=60).verdict == "refused"
