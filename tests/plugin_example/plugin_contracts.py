"""The plug-in author's own tests: mixnas.testing's contract suites on the plug-in's names.

Run with the plug-in installed (``pip install -e .`` then ``pytest plugin_contracts.py``);
tests/test_plugins.py runs this file in a fresh interpreter with the plug-in on a path entry.
"""

import pytest

from mixnas.testing.ops import check_documented, check_mixer, mixer_cases
from mixnas.testing.proxies import check_proxies, proxy_cases
from mixnas.testing.quant import check_quantized_mixer, quant_cases
from mixnas.testing.sharing import check_sharing, check_sharing_declared, sharing_cases
from mixnas.testing.strategies import CHECKS as STRATEGY_CHECKS
from search_space.ops import TOKEN_MIXERS

MIXERS = ["example_gate"]


def test_the_mixer_came_from_the_plugin():
    assert TOKEN_MIXERS.origin("example_gate").startswith("mixnas.ops:example_ops")


@pytest.mark.parametrize(("op", "example", "ctx"), mixer_cases(MIXERS))
def test_mixer(op, example, ctx):
    check_mixer(op, example, ctx)


def test_mixer_is_documented():
    check_documented(TOKEN_MIXERS.get("example_gate"))


def test_mixer_declares_sharing():
    check_sharing_declared(MIXERS)


@pytest.mark.parametrize(("kind", "name"), sharing_cases(MIXERS))
def test_mixer_shares_its_weights(kind, name):
    check_sharing(kind, name)


@pytest.mark.parametrize(("case", "make_spec"), proxy_cases(["pooling", "attention", *MIXERS]))
def test_proxy(case, make_spec):
    check_proxies(case, make_spec, ["example_log_weight_mass"])


@pytest.mark.parametrize(("case", "make_spec"), proxy_cases(MIXERS, extras=False))
def test_every_proxy_scores_the_mixer(case, make_spec):
    check_proxies(case, make_spec)


@pytest.mark.parametrize("check", STRATEGY_CHECKS, ids=lambda c: c.__name__)
def test_strategy(check):
    check("example_greedy")


@pytest.mark.parametrize(("op", "example", "ctx"), quant_cases(MIXERS))
def test_mixer_under_fake_quantization(op, example, ctx):
    check_quantized_mixer(op, example, ctx)
