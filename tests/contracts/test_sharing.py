"""Contract every registered op passes for the weight-sharing supernet (`mixnas.testing.sharing`).

Every op of every registry declares how its weights are shared (`OpDef.sharing`, naming only
parameters it has), and a strict supernet over a tiny space offering the op's defaults, examples
and elastic variants at several widths holds every spec of it: ``extract(spec)`` has the
builder's parameter count and equals the active supernet.
"""

from __future__ import annotations

import pytest

from mixnas.testing.sharing import check_sharing, check_sharing_declared, sharing_cases


def test_every_registered_op_declares_a_sharing_rule() -> None:
    check_sharing_declared()


@pytest.mark.parametrize(("kind", "name"), sharing_cases())
def test_supernet_holds_every_variant_of_the_op(kind: str, name: str) -> None:
    check_sharing(kind, name)
