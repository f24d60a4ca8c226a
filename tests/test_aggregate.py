"""Proxy aggregation: rank vote, learned combination, reliability against the params baseline."""

from __future__ import annotations

import numpy as np

from evaluators.proxies.aggregate import LearnedCombination, rank_vote, reliability


def _scores(n: int = 60, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    acc = rng.normal(size=n)
    return {
        "good": acc + 0.3 * rng.normal(size=n),
        "noisy": acc + 2.0 * rng.normal(size=n),
        "params": acc + 1.0 * rng.normal(size=n),
        "broken": np.where(rng.random(n) < 0.2, np.nan, -acc),
    }, acc


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def test_rank_vote_is_scale_free_and_tolerates_nan() -> None:
    scores, acc = _scores()
    vote = rank_vote(scores, ["good", "noisy"])
    scaled = rank_vote({"good": scores["good"] * 1e9, "noisy": scores["noisy"] - 5}, None)
    np.testing.assert_allclose(vote, scaled)
    assert np.isfinite(rank_vote(scores)).all()
    assert _rho(vote, acc) > _rho(scores["noisy"], acc)


def test_learned_combination_recovers_the_useful_proxy() -> None:
    scores, acc = _scores(200)
    train = np.arange(40)
    model = LearnedCombination(["good", "noisy", "broken"]).fit(scores, train, acc[train])
    assert abs(model.coef[0]) > abs(model.coef[1])
    assert _rho(model.predict(scores)[40:], acc[40:]) > 0.8


def test_reliability_compares_with_params() -> None:
    scores, acc = _scores()
    report = reliability(scores, acc)
    assert report["good"]["beats_baseline"] and not report["noisy"]["beats_baseline"]
    assert report["broken"]["spearman"] < 0
