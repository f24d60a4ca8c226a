"""The supernet test helpers now live in `mixnas.testing.sharing` (plug-in authors use them too)."""

from mixnas.testing.sharing import (  # noqa: F401
    assert_extract_matches,
    op_space,
    op_variants,
    temporarily_registered,
)
