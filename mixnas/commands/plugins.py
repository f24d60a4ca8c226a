"""``mixnas plugins``: the installed plug-ins, by entry point group, and what each registered."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from mixnas.commands.common import emit

log = logging.getLogger(__name__)


def _ops() -> None:
    from search_space.ops import TOKEN_MIXERS

    TOKEN_MIXERS.names()


def _proxies() -> None:
    from evaluators.proxies import PROXIES

    PROXIES.names()


def _strategies() -> None:
    import strategies

    strategies.names()


def _evaluators() -> None:
    import evaluators

    evaluators.names()


def _predictors() -> None:
    import predictors

    predictors.names()


def _datasets() -> None:
    import evaluators.tasks  # noqa: F401 (the built-in tasks, before the plug-ins)
    from evaluators.tasks.base import TASKS
    from search_space.plugins import load_group

    load_group("mixnas.datasets", watch=lambda: (("task", name) for name in TASKS))


# each group is loaded through its registry, so built-ins register first, as in a run
LOADERS: dict[str, Callable[[], None]] = {
    "mixnas.ops": _ops,
    "mixnas.proxies": _proxies,
    "mixnas.strategies": _strategies,
    "mixnas.evaluators": _evaluators,
    "mixnas.predictors": _predictors,
    "mixnas.datasets": _datasets,
}


def plugin_rows() -> list[dict[str, Any]]:
    """Every installed plug-in of every group: where it comes from, what it registered, and why
    it was not loaded (``error``)."""
    from search_space.plugins import GROUPS, load_group

    rows = []
    for group in GROUPS:
        try:
            LOADERS[group]()
        except Exception as err:  # e.g. torch missing: the other groups still list
            log.warning("mixnas: the %s registries did not load: %s", group, err)
        for plugin in load_group(group):
            rows.append(
                {
                    "group": plugin.group,
                    "name": plugin.name,
                    "distribution": plugin.distribution,
                    "module": plugin.value,
                    "registered": [f"{kind} {name}" for kind, name in plugin.registered],
                    "error": plugin.error,
                }
            )
    return rows


def cmd_plugins(args: argparse.Namespace) -> int:
    from search_space.plugins import DISABLE_ENV, disabled

    rows = plugin_rows()
    if args.json:
        emit(rows)
        return 0
    if disabled():
        print(f"plug-ins are off ({DISABLE_ENV} is set)")
        return 0
    if not rows:
        print("no mixnas plug-ins installed (entry point groups: mixnas.ops, mixnas.proxies, ...)")
        return 0
    for r in rows:
        source = f"{r['distribution']}: {r['module']}" if r["distribution"] else r["module"]
        print(f"{r['group']}  {r['name']}  ({source})")
        if r["error"]:
            print(f"    not loaded: {r['error']}")
        else:
            print(f"    {', '.join(r['registered']) or 'registered nothing'}")
    return 0


def add_to(sub: Any) -> None:
    parser = sub.add_parser(
        "plugins", help="list installed plug-ins: group, distribution, module, what they add"
    )
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=cmd_plugins)
