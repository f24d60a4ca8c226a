"""A recipe: one seed paper's search method as a chain of mixnas stages, read from a YAML file.

A recipe file (``recipes/NAME.yaml``)::

    recipe:
      name: vit_resnas                # the command's NAME; a folder-safe identifier
      title: ViT-ResNAS               # what the report and `mixnas recipes` call it
      paper: "Searching for Efficient Multi-Stage Vision Transformers (Liao et al., 2021)"
      seeds: [000, 001, 003]           # the seed documents that carry the paper's abstract
      method: one paragraph: what the paper's method does
      reproduces: what this recipe reproduces of it
      scaled_down: what is smaller than in the paper, and why
      full_scale: what a user changes to run it at full scale (GPUs, data, budgets)
      headline: {stage: search, metric: top1, direction: maximize}
    stages:                           # run in order; a later stage may cite an earlier one
      supernet: {kind: supernet, config: {...a `mixnas supernet train` config...}}
      search:   {kind: search, config: {...a `mixnas search` config...}}
    smoke:                            # deep-merged into stage configs by --smoke (the tests)
      supernet: {config: {supernet: {steps: 4}}}

A string ``${STAGE.OUTPUT}`` anywhere in a stage's mapping is replaced by an output of an earlier
stage (``${supernet.checkpoint}``, ``${search.best_trial}``, ...); ``${recipe.dir}`` is the
recipe's run folder. The outputs each stage kind gives are listed in `mixnas.recipes.stages`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_space.errors import MixnasError
from strategies.base import MAXIMIZE, Direction

ABOUT_FIELDS = ("name", "title", "paper", "seeds", "method", "reproduces", "scaled_down",
                "full_scale", "headline")  # fmt: skip
TOP_FIELDS = ("recipe", "stages", "smoke")
STAGE_FIELDS = ("kind", "config", "args")
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class RecipeError(MixnasError, ValueError):
    """A recipe file is malformed, or a stage cannot run; the message is one line."""

    def __init__(self, source: str, field: str, message: str) -> None:
        super().__init__(f"{source}: {field}: {message}")


@dataclass(frozen=True)
class Headline:
    """The metric the paper's method optimises, read from one stage's outputs."""

    stage: str
    metric: str
    direction: Direction = MAXIMIZE


@dataclass(frozen=True)
class Stage:
    """One step of a recipe: a stage kind (`mixnas.recipes.stages.KINDS`) and its settings.

    ``config`` is the config file the stage's command reads (written into the recipe's folder);
    ``args`` are the kind's other settings (a scale stage's base and budget, a python stage's
    function).
    """

    name: str
    kind: str
    config: Mapping[str, Any] = field(default_factory=dict)
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    paper: str
    seeds: tuple[str, ...]
    method: str
    reproduces: str
    scaled_down: str
    full_scale: str
    headline: Headline
    stages: tuple[Stage, ...]
    smoke: Mapping[str, Any]
    source: str

    def about(self) -> dict[str, Any]:
        """What a run folder and the report record of the recipe (plain data)."""
        return {
            "name": self.name,
            "title": self.title,
            "paper": self.paper,
            "seeds": list(self.seeds),
            "source": self.source,
        }

    def smoked(self) -> Recipe:
        """The recipe with its ``smoke`` overrides merged into the stages (tiny budgets)."""
        stages = []
        for stage in self.stages:
            extra = self.smoke.get(stage.name, {})
            stages.append(
                Stage(
                    stage.name,
                    stage.kind,
                    deep_merge(stage.config, extra.get("config", {})),
                    deep_merge(stage.args, extra.get("args", {})),
                )
            )
        return Recipe(**{**self.__dict__, "stages": tuple(stages)})


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra``'s keys replacing its own, mappings merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_recipe(data: Any, source: str) -> Recipe:
    """Checks a parsed recipe file (see the module docstring); every problem is one line."""
    from mixnas.recipes.stages import KINDS

    top = _mapping(data, "<root>", source)
    _known(top, TOP_FIELDS, "<root>", source)
    about = _mapping(top.get("recipe"), "recipe", source)
    _known(about, ABOUT_FIELDS, "recipe", source)
    for key in ABOUT_FIELDS:
        if key not in about:
            raise RecipeError(source, f"recipe.{key}", "is required")
    name = about["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise RecipeError(
            source, "recipe.name", f"{name!r}: lower-case letters, digits and _, a letter first"
        )
    text = {k: about[k] for k in ABOUT_FIELDS if k not in ("name", "seeds", "headline")}
    for key, value in text.items():
        if not isinstance(value, str) or not value.strip():
            raise RecipeError(source, f"recipe.{key}", "must be a non-empty string")
    seeds = about["seeds"]
    if not isinstance(seeds, list) or not seeds:
        raise RecipeError(source, "recipe.seeds", "must list the seed documents, e.g. [000, 003]")
    stages_raw = _mapping(top.get("stages"), "stages", source)
    if not stages_raw:
        raise RecipeError(source, "stages", "must name at least one stage")
    stages: list[Stage] = []
    for stage_name, raw in stages_raw.items():
        where = f"stages.{stage_name}"
        if not isinstance(stage_name, str) or not _NAME.match(stage_name) or stage_name == "recipe":
            raise RecipeError(source, where, "a stage name is a lower-case identifier, not recipe")
        body = _mapping(raw, where, source)
        _known(body, STAGE_FIELDS, where, source)
        kind = body.get("kind")
        if kind not in KINDS:
            raise RecipeError(source, f"{where}.kind", f"{kind!r}; allowed: {', '.join(KINDS)}")
        stage = Stage(
            stage_name,
            kind,
            _mapping(body.get("config", {}), f"{where}.config", source),
            _mapping(body.get("args", {}), f"{where}.args", source),
        )
        _check_references(stage, [s.name for s in stages], source)
        KINDS[kind].check(stage, source)
        stages.append(stage)
    headline = _headline(about["headline"], [s.name for s in stages], source)
    smoke = _mapping(top.get("smoke", {}), "smoke", source)
    for stage_name, extra in smoke.items():
        if stage_name not in stages_raw:
            raise RecipeError(source, f"smoke.{stage_name}", "names no stage of the recipe")
        _known(_mapping(extra, f"smoke.{stage_name}", source), ("config", "args"),
               f"smoke.{stage_name}", source)  # fmt: skip
    return Recipe(
        name=name,
        title=text["title"].strip(),
        paper=text["paper"].strip(),
        seeds=tuple(f"{s:03d}" if isinstance(s, int) else str(s) for s in seeds),
        method=text["method"].strip(),
        reproduces=text["reproduces"].strip(),
        scaled_down=text["scaled_down"].strip(),
        full_scale=text["full_scale"].strip(),
        headline=headline,
        stages=tuple(stages),
        smoke=smoke,
        source=source,
    )


def read_recipe(path: Path) -> Recipe:
    """Reads and checks a recipe file."""
    from search_space.declare.loader import read_declaration
    from search_space.errors import SpaceError

    try:
        data = read_declaration(path)
    except SpaceError as err:  # a YAML syntax error: the same one line, as a recipe error
        raise RecipeError(str(path), err.field, err.message) from None
    return parse_recipe(data, str(path))


def references(value: Any) -> list[tuple[str, str]]:
    """Every ``${stage.output}`` cited anywhere inside ``value``."""
    if isinstance(value, str):
        return REFERENCE.findall(value)
    if isinstance(value, Mapping):
        return [r for v in value.values() for r in references(v)]
    if isinstance(value, list | tuple):
        return [r for v in value for r in references(v)]
    return []


def resolve(value: Any, outputs: Mapping[str, Mapping[str, Any]], where: str) -> Any:
    """``value`` with every ``${stage.output}`` replaced by that output (a string that is only
    a reference takes the output's own type)."""
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value)
        if whole:
            return _lookup(whole.group(1), whole.group(2), outputs, where)
        return REFERENCE.sub(lambda m: str(_lookup(m.group(1), m.group(2), outputs, where)), value)
    if isinstance(value, Mapping):
        return {k: resolve(v, outputs, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(v, outputs, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _lookup(stage: str, key: str, outputs: Mapping[str, Mapping[str, Any]], where: str) -> Any:
    if stage not in outputs or key not in outputs[stage]:
        known = ", ".join(f"{s}.{k}" for s, out in outputs.items() for k in out) or "none yet"
        raise RecipeError("<recipe>", where, f"${{{stage}.{key}}} is not known; known: {known}")
    return outputs[stage][key]


def _check_references(stage: Stage, earlier: list[str], source: str) -> None:
    for cited, _key in references({"config": stage.config, "args": stage.args}):
        if cited != "recipe" and cited not in earlier:
            raise RecipeError(
                source,
                f"stages.{stage.name}",
                f"cites ${{{cited}...}}, which is not an earlier stage (earlier: "
                f"{', '.join(earlier) or 'none'})",
            )


def _headline(value: Any, stages: list[str], source: str) -> Headline:
    body = _mapping(value, "recipe.headline", source)
    _known(body, ("stage", "metric", "direction"), "recipe.headline", source)
    stage, metric = body.get("stage"), body.get("metric")
    if stage not in stages:
        raise RecipeError(source, "recipe.headline.stage", f"{stage!r}; stages: {stages}")
    if not isinstance(metric, str) or not metric:
        raise RecipeError(source, "recipe.headline.metric", "must name a metric")
    direction = body.get("direction", MAXIMIZE.value)
    if direction not in Direction.values():
        raise RecipeError(
            source,
            "recipe.headline.direction",
            f"{direction!r}; allowed: {', '.join(Direction.values())}",
        )
    return Headline(stage, metric, Direction(direction))


def _mapping(value: Any, where: str, source: str) -> dict[str, Any]:
    if value is None:
        raise RecipeError(source, where, "is required")
    if not isinstance(value, Mapping):
        raise RecipeError(source, where, f"must be a mapping, not {type(value).__name__}")
    return dict(value)


def _known(body: Mapping[str, Any], allowed: tuple[str, ...], where: str, source: str) -> None:
    unknown = sorted(str(k) for k in body if k not in allowed)
    if unknown:
        raise RecipeError(
            source, f"{where}.{unknown[0]}", f"unknown field; allowed: {', '.join(allowed)}"
        )
