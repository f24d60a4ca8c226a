"""The ``mixnas`` command line.

Each subcommand lives in a module of `mixnas.commands`. Bad input (a malformed space file, an
unknown mixer, a broken spec or config) prints one line on stderr that names the file, the field
and what is allowed, and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence

from mixnas.commands import COMMANDS
from search_space.errors import InfeasibleError, MixnasError, SpaceError

EXIT_BAD_INPUT = 2
log = logging.getLogger("mixnas")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixnas", description="Hybrid-architecture NAS engine")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMANDS:
        importlib.import_module(module_name).add_to(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (SpaceError, InfeasibleError, MixnasError) as err:
        print(f"mixnas: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except json.JSONDecodeError as err:
        print(f"mixnas: error: not valid JSON: {err.msg} at line {err.lineno}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
