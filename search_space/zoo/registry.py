"""The zoo's registry: one `ZooModel` per named architecture, its spec factory and its metadata.

Model modules (`search_space.zoo.isotropic`, `.pyramids`, ...) call `add` at import time; the
registry is the project's `Registry`, so a duplicate name raises and an unknown name lists close
matches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from search_space.costs import COUNTER_FVCORE, COUNTER_MIXNAS, check_counter
from search_space.errors import SpaceError
from search_space.registry import Registry
from search_space.spec import ArchSpec

# Where a published size comes from.
SOURCE_TIMM = "timm"  # ../shared/data/timm_results benchmark tables (fvcore MACs)
SOURCE_PAPER = "paper"  # the paper's own table
SOURCE_NONE = "not published"


@dataclass(frozen=True)
class Published:
    """A published size of a model at one input resolution.

    Attributes:
        params_m: parameters in millions, or None when not published.
        macs_g: multiply-accumulates in billions (papers' "FLOPs" are MACs), or None.
        resolution: input side the numbers are for.
        source: `SOURCE_TIMM`, `SOURCE_PAPER` or `SOURCE_NONE`.
        ref: the timm model name, or where in the paper the numbers are (e.g. "Table 1").
        counter: the MAC-counting convention ``macs_g`` was produced under, one of
            `search_space.costs.COUNTERS`; the tests and docs/zoo.md compare it with
            `search_space.costs.macs_as_counted` under that convention. "mixnas" (every MAC)
            unless there is evidence of the counter the authors used.
        counter_evidence: where that evidence is (required for a counter other than "mixnas").
    """

    params_m: float | None
    macs_g: float | None
    resolution: int
    source: str
    ref: str = ""
    counter: str = COUNTER_MIXNAS
    counter_evidence: str = ""

    def __post_init__(self) -> None:
        check_counter(self.counter, "published.counter")
        # a convention that lowers our count must say why it applies, or it could hide a miss
        if self.counter != COUNTER_MIXNAS and not self.counter_evidence:
            raise SpaceError(
                "published.counter_evidence",
                f"counter {self.counter!r} needs the evidence of the counter the authors used",
            )


@dataclass(frozen=True)
class ZooModel:
    """One named architecture of the zoo.

    Attributes:
        name: lowercase name from the paper's model name (``deit_s``, ``swin_t``).
        paper: the source paper's title, as written in the seed documents where it is one of them.
        families: mixer families of the seed catalog (M01..M23) the model exercises.
        macro: macro structures of the seed catalog (MA1..MA13).
        published: the published size and its source.
        factory: builds the spec (called once, then cached by `search_space.zoo.get`).
        notes: how the spec departs from the reference implementation, if at all.
        timm: the timm benchmark name when timm lists the model (checked in the tests).
        deviation: why the spec misses the published size beyond the tolerance, when it does
            (the tests expect that miss, and fail if it disappears).
    """

    name: str
    paper: str
    families: tuple[str, ...]
    macro: tuple[str, ...]
    published: Published
    factory: Callable[[], ArchSpec] = field(repr=False, compare=False)
    notes: str = ""
    timm: str | None = None
    deviation: str = ""


MODELS: Registry[ZooModel] = Registry("zoo model")


def add(
    name: str,
    *,
    paper: str,
    families: tuple[str, ...],
    macro: tuple[str, ...],
    published: Published,
    notes: str = "",
    deviation: str = "",
) -> Callable[[Callable[[], ArchSpec]], Callable[[], ArchSpec]]:
    """Decorator registering a spec factory under ``name``."""

    def wrap(factory: Callable[[], ArchSpec]) -> Callable[[], ArchSpec]:
        timm = published.ref if published.source == SOURCE_TIMM else None
        MODELS.register(
            name,
            ZooModel(name, paper, families, macro, published, factory, notes, timm, deviation),
        )
        return factory

    return wrap


TIMM_COUNTER_EVIDENCE = "timm's benchmark tables give fvcore counts (infer_gmacs)"


def timm(model: str, params_m: float, macs_g: float, resolution: int = 224) -> Published:
    return Published(
        params_m, macs_g, resolution, SOURCE_TIMM, model, COUNTER_FVCORE, TIMM_COUNTER_EVIDENCE
    )


def paper(
    params_m: float | None,
    macs_g: float | None,
    ref: str,
    resolution: int = 224,
    *,
    counter: str = COUNTER_MIXNAS,
    counter_evidence: str = "",
) -> Published:
    """A paper's (or official README's) size; ``counter`` and ``counter_evidence`` record the MAC
    counter its code used, when the code shows it (see `Published`)."""
    return Published(params_m, macs_g, resolution, SOURCE_PAPER, ref, counter, counter_evidence)


def unpublished(resolution: int = 224, why: str = "") -> Published:
    return Published(None, None, resolution, SOURCE_NONE, why)
