"""Contract every registered proxy passes (`mixnas.testing.proxies`): a finite score on a tiny
network around every registered token mixer (plus a LayerNorm-only network, a token-id network and
a NAS-Bench-201 cell), the same score twice for the same seed. The only exceptions are the
declared cases in `UNSCORABLE`, where the proxy is undefined and must say so instead of returning
a number."""

from __future__ import annotations

from typing import Any

import pytest

from mixnas.testing.proxies import check_proxies, proxy_cases


@pytest.mark.parametrize(("case", "make_spec"), proxy_cases())
def test_every_proxy_is_finite_and_deterministic(case: str, make_spec: Any) -> None:
    check_proxies(case, make_spec)
