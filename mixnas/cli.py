"""The ``mixnas`` command line.

Each subcommand lives in a module of `mixnas.commands`. Bad input (a malformed space file, an
unknown mixer, a broken spec or config, a damaged run folder) prints one line on stderr that names
the file, the field and what is allowed, and exits with status 2; no traceback. An unexpected
error (a bug) is one line too, with status 70; ``-v`` shows its traceback.

Exit statuses: 0 done; 1 the command ran but its result is bad (a search whose trials all
failed, an export that does not rebuild; said on stderr); 2 bad input; 70 a bug; 130 interrupted
by Ctrl-C (a search stops cleanly first: `mixnas.commands.search`). Output piped into a reader
that closes early (``mixnas zoo list | head -1``) ends the command quietly with status 0.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence

from mixnas.commands import COMMANDS
from search_space.errors import InfeasibleError, MixnasError, SpaceError

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE: an error mixnas did not expect
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C
log = logging.getLogger("mixnas")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixnas", description="Hybrid-architecture NAS engine")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"mixnas {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMANDS:
        importlib.import_module(module_name).add_to(sub)
    return parser


def version() -> str:
    """The installed package's version (its metadata), else the source tree's."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("mixnas")
    except PackageNotFoundError:
        from mixnas import __version__

        return __version__


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except KeyboardInterrupt:  # Ctrl-C while the command modules are imported
        return _interrupted()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        status = func(args)
        if sys.stdout is not None:
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except KeyboardInterrupt:
        return _interrupted()
    except (SpaceError, InfeasibleError, MixnasError) as err:
        print(f"mixnas: error: {_one_line(str(err))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except json.JSONDecodeError as err:
        print(f"mixnas: error: not valid JSON: {err.msg} at line {err.lineno}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # the output was piped into `head` or a closed pager
        _quiet_stdout()
        return 0
    except Exception as err:
        # a bug, not bad input: still one line (the traceback with -v), and a status of its
        # own so that scripts and the fuzz suite can tell it from a refused input
        if args.verbose:
            raise
        print(
            f"mixnas: internal error: {type(err).__name__}: {_one_line(str(err))} (run with -v "
            "for the traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _interrupted() -> int:
    print("mixnas: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def _quiet_stdout() -> None:
    """Points stdout at /dev/null: what is still buffered for the closed pipe is dropped, and
    the interpreter's flush at exit has nothing to fail on (no 'Exception ignored' line)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a file descriptor (captured in tests)
        pass


def _one_line(text: str, limit: int = 600) -> str:
    """An error's text as one line of bounded length (a message may quote a multi-line or
    very long value)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else f"{line[: limit - 40]}... ({len(line):,} characters)"


if __name__ == "__main__":
    sys.exit(main())
