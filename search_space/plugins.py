"""Plug-ins: third-party packages that register ops, proxies, strategies, evaluators, predictors
and datasets through `importlib.metadata` entry points.

A plug-in package declares, in its ``pyproject.toml``::

    [project.entry-points."mixnas.ops"]
    my_mixers = "my_package.mixers"                 # importing the module registers its ops
    [project.entry-points."mixnas.strategies"]
    my_search = "my_package.search:register"        # or a function of no arguments, called

Each registry names its group (`search_space.registry.Registry`) and loads it once, on its first
lookup or listing, after its built-ins; so a plug-in costs nothing until it is used, and the
torch-free core stays torch-free unless a plug-in imports torch itself. A plug-in that fails (its
import raises, its registration raises, it reuses a registered name) is logged as one warning line
naming it, whatever it had registered is taken back, and the rest of mixnas carries on.
``mixnas plugins`` lists what is installed (`installed`).

Set ``MIXNAS_NO_PLUGINS=1`` to load none (a reproducible run, or to rule a plug-in out).
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

from search_space.registry import discard, registered_by, registering_as

log = logging.getLogger(__name__)

# the entry point groups, each loaded by the registry (or registries) of its kind
GROUPS: dict[str, str] = {
    "mixnas.ops": "token mixers, channel mixers, stems, downsamplers, heads, norms",
    "mixnas.proxies": "training-free proxies",
    "mixnas.strategies": "search strategies",
    "mixnas.evaluators": "evaluators",
    "mixnas.predictors": "predictors",
    "mixnas.datasets": "generated datasets (tasks)",
}
DISABLE_ENV = "MIXNAS_NO_PLUGINS"


@dataclass
class Plugin:
    """One entry point of one group, once loaded.

    Attributes:
        group: the entry point group (``mixnas.ops``, ...).
        name: the entry point's name.
        value: what it points at, ``module`` or ``module:function``.
        distribution: the installed distribution that declares it, ``name version`` ("" when
            unknown).
        error: why it was not loaded ("" when it was).
        registered: the (kind, name) pairs it registered, in any registry.
    """

    group: str
    name: str
    value: str
    distribution: str = ""
    error: str = ""
    registered: list[tuple[str, str]] = field(default_factory=list)

    @property
    def origin(self) -> str:
        """The key its registrations are recorded under (`search_space.registry`)."""
        return f"{self.group}:{self.name}={self.value}"

    @property
    def ok(self) -> bool:
        return not self.error


_LOADED: dict[str, list[Plugin]] = {}


def disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip() not in ("", "0")


def load_group(
    group: str, *, watch: Callable[[], Iterable[tuple[str, str]]] | None = None
) -> list[Plugin]:
    """Loads the plug-ins of ``group`` (once; later calls return the same records).

    ``watch`` lists the (kind, name) pairs of a registry that is not a `Registry` (the tasks'
    dict): what each plug-in adds to it is recorded as registered by that plug-in too.
    """
    if group in _LOADED:
        return _LOADED[group]
    plugins: list[Plugin] = []
    _LOADED[group] = plugins
    if disabled():
        return plugins
    try:
        found = sorted(entry_points(group=group), key=lambda ep: (ep.name, ep.value))
    except Exception as err:  # a damaged metadata directory on sys.path
        log.warning("mixnas plug-ins of %s not listed: %s", group, _one_line(err))
        return plugins
    for ep in found:
        before = set(watch()) if watch is not None else set()
        plugin = _load(group, ep)
        if watch is not None:
            plugin.registered = sorted({*plugin.registered, *(set(watch()) - before)})
        plugins.append(plugin)
    return plugins


def loaded() -> list[Plugin]:
    """Every plug-in loaded so far, by group."""
    return [p for group in sorted(_LOADED) for p in _LOADED[group]]


def _load(group: str, ep: EntryPoint) -> Plugin:
    dist = getattr(ep, "dist", None)
    plugin = Plugin(
        group,
        ep.name,
        ep.value,
        f"{dist.name} {dist.version}" if dist is not None else "",
    )
    try:
        with registering_as(plugin.origin):
            target = ep.load()
            if isinstance(target, ModuleType):
                pass  # importing it registered what it offers
            elif inspect.isfunction(target) or inspect.isbuiltin(target):
                target()
            else:
                raise TypeError(
                    f"{ep.value} is a {type(target).__name__}; an entry point names a module "
                    "(imported) or a function of no arguments (called)"
                )
    except Exception as err:
        discard(plugin.origin)
        plugin.error = f"{type(err).__name__}: {_one_line(err)}"
        where = f", {plugin.distribution}" if plugin.distribution else ""
        log.warning(
            "mixnas plug-in %r (%s%s, %s) not loaded: %s",
            ep.name,
            group,
            where,
            ep.value,
            plugin.error,
        )
    plugin.registered = registered_by(plugin.origin)
    return plugin


def _one_line(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
