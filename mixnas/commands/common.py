"""Small helpers shared by the subcommands: output formatting and argument types."""

from __future__ import annotations

import argparse
import json
from typing import Any


def emit(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def fmt_int(n: int) -> str:
    return f"{n:,}"


def fmt_big(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:g}"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
