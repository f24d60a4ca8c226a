"""Contract every registered op passes for the weight-sharing supernet.

Every op of every registry declares how its weights are shared (`OpDef.sharing`, naming only
parameters it has), and a strict supernet over a tiny space offering the op's defaults, examples
and elastic variants at several widths holds every spec of it: ``extract(spec)`` has the
builder's parameter count and equals the active supernet.
"""

from __future__ import annotations

import numpy as np
import pytest

from evaluators.supernet import Supernet
from search_space.ops import REGISTRIES
from search_space.ops.sharing import missing_sharing
from tests.supernet_helpers import assert_extract_matches, op_space


def test_every_registered_op_declares_a_sharing_rule() -> None:
    problems = missing_sharing(REGISTRIES)
    assert not problems, "ops without a usable weight-sharing rule:\n" + "\n".join(problems)


def _ops() -> list:
    return [
        pytest.param(kind, name, id=f"{kind}-{name}")
        for kind, registry in REGISTRIES.items()
        for name in registry.names()
    ]


@pytest.mark.parametrize(("kind", "name"), _ops())
def test_supernet_holds_every_variant_of_the_op(kind: str, name: str) -> None:
    space = op_space(kind, name)
    supernet = Supernet(space, seed=0)
    rng = np.random.default_rng(0)
    specs = [supernet.largest(), supernet.smallest(), *(space.sample(rng) for _ in range(6))]
    assert_extract_matches(supernet, specs)
