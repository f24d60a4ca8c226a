"""Shared fixtures: small declared spaces whose size brute force can check."""

from __future__ import annotations

import os

# xdist runs one worker per core: more intra-op threads per worker only oversubscribe the cores
# (numpy's BLAS and torch both read these when first imported, which is after this file)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import copy
from pathlib import Path
from typing import Any

import pytest

from search_space import SearchSpace

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

SMALL_SPACE: dict[str, Any] = {
    "name": "small",
    "input": {"kind": "image", "channels": 3, "resolution": 16, "num_classes": 5},
    "stem": [{"name": "patch_embed", "patch_size": [2, 4]}],
    "num_stages": [1, 2],
    "token_mixers": {"attention": {"head_dim": 8}, "identity": {}, "pooling": {}},
    "channel_mixers": {"mlp": {"ratio": [2.0, 4.0]}},
    "stages": [
        {
            "depth": [1, 2, 3],
            "width": [16, 32],
            "patterns": ["uniform", {"last_k": [1, 2], "tail": ["attention"]}, {"periodic": [2]}],
        },
        {
            "depth": [1, 2],
            "width": [32],
            "downsample": [{"name": "conv", "kernel": 3}, "patch_merging"],
            "patterns": ["free"],
        },
    ],
    "head": {"name": "classifier"},
    "quantization": {
        "weight_bits": [8, 32],
        "act_bits": [8],
        "granularity": ["per_channel", "per_tensor"],
    },
}


def small_space_dict() -> dict[str, Any]:
    return copy.deepcopy(SMALL_SPACE)


@pytest.fixture
def small_space() -> SearchSpace:
    return SearchSpace.from_dict(small_space_dict(), source="small")
