"""The disk cache of generated splits, keyed by a content hash.

One ``.npz`` file (arrays ``x`` and ``y``, uncompressed: loading is a read) per split, named by
the SHA-256 of the canonical JSON of everything that determines its arrays: task name, generator
version, settings (shape and knobs), seed, split and size. The folder is ``$MIXNAS_DATA_CACHE``
when set, else ``~/.cache/mixnas/data``. Writes go to a temporary file that is then renamed, so
a reader never sees half a file; an unreadable file is regenerated and rewritten; a folder that
cannot be written only costs the caching (a warning), never the data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CACHE_ENV = "MIXNAS_DATA_CACHE"


def cache_dir() -> Path:
    """The cache folder (``$MIXNAS_DATA_CACHE`` or ``~/.cache/mixnas/data``)."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "mixnas" / "data"


def cache_key(content: Mapping[str, Any]) -> str:
    """The hex SHA-256 of ``content`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def cached_arrays(
    content: Mapping[str, Any], make: Callable[[], tuple[np.ndarray, np.ndarray]], *, use: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(x, y)`` stored under ``content``'s key, or ``make()``'s, then stored."""
    if not use:
        return make()
    key = cache_key(content)
    path = cache_dir() / f"{content['task']}-{content['split']}-{key[:24]}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                return np.asarray(data["x"]), np.asarray(data["y"])
        except Exception as exc:  # a damaged file (zip, header, missing array): regenerate it
            log.warning("%s: unreadable cached data (%s); generating it again", path, exc)
    x, y = make()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, x=x, y=y)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.warning("%s: could not cache the generated data (%s)", path, exc)
    return x, y
