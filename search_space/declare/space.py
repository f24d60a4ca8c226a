"""`SearchSpace`: a declared space as fixed-length conditional decisions over concrete choices.

A space is a list of labelled dimensions (`Dim`), each a finite list of choices. A decision vector
holds one index per dimension; some dimensions are active only under others (a stage's blocks only
when the stage exists, a pattern's k only when that pattern is chosen), and any vector of in-range
indices decodes to a valid spec, because the declaration was checked for every combination when it
was loaded. That makes sampling, mutation and crossover (in `DecisionSpace`) closed over the space
by construction.

The numeric encoding of a spec is its canonical decision vector with -1 for inactive dimensions;
`decode(encode(spec)) == spec` for every spec in the space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np

from search_space.declare.decisions import INACTIVE, DecisionSpace, Dim, as_rng
from search_space.declare.patterns import Pattern, count_sequences
from search_space.declare.schema import SpaceDecl, parse_space
from search_space.errors import SpaceError
from search_space.spec import ArchSpec, Block, Stage

__all__ = ["INACTIVE", "Dim", "SearchSpace", "as_rng"]


class SearchSpace(DecisionSpace):
    """A declared space of architectures; see the module docstring for the decision model.

    Build one with `load_space(path)` or `SearchSpace.from_dict(data)`.
    """

    def __init__(self, decl: SpaceDecl, *, source: str | None = None) -> None:
        super().__init__(source=source, constraints=decl.constraints)
        self.decl = decl
        self._build_dims()

    # -- construction ---------------------------------------------------------------------------
    @staticmethod
    def from_dict(data: Mapping[str, Any], *, source: str | None = None) -> SearchSpace:
        try:
            return SearchSpace(parse_space(data), source=source)
        except SpaceError as err:
            if source:
                raise err.with_source(source) from None
            raise

    def _build_dims(self) -> None:
        d = self.decl
        self._add("stem", d.stems)
        self._add("num_stages", d.num_stages, ordinal=True)
        for s, st in enumerate(d.stages):
            p = f"stages[{s}]"
            if st.fixed is not None:  # blocks given verbatim: width and downsampler only
                self._add(f"{p}.width", st.widths, ordinal=True)
                self._add(f"{p}.downsample", st.downsamples)
                continue
            self._add(f"{p}.depth", st.depths, ordinal=True)
            self._add(f"{p}.width", st.widths, ordinal=True)
            self._add(f"{p}.downsample", st.downsamples)
            self._add(f"{p}.norm", st.norms)
            self._add(f"{p}.channel_mixer", st.channel_mixers)
            self._add(f"{p}.pattern", st.patterns)
            if st.repeats is not None:
                self._add(f"{p}.repeat", st.repeats, ordinal=True)
            for k, pat in enumerate(st.patterns):
                q = f"{p}.patterns[{k}]"
                if pat.kind == "free":
                    for j in range(st.max_depth):
                        self._add(f"{q}.blocks[{j}]", [st.mixers[i] for i in pat.base])
                    continue
                if pat.values:
                    self._add(f"{q}.{pat.kind}", pat.values, ordinal=True)
                self._add(f"{q}.mixer", [st.mixers[i] for i in pat.base])
                if pat.kind != "uniform":
                    self._add(f"{q}.other", [st.mixers[i] for i in pat.other])
            if d.quant_scope == "per_stage":
                self._add(f"{p}.quant", d.quants)
            else:
                for j in range(st.max_depth):
                    self._add(f"{p}.blocks[{j}].quant", d.quants)
        self._add("head", d.heads)
        self._add("layer_scale", d.layer_scales)

    # -- decoding -------------------------------------------------------------------------------
    def _decode(self, values: np.ndarray | list[int], active: list[bool] | None = None) -> ArchSpec:
        pick = partial(self._pick, values, active)

        d = self.decl
        stem = pick("stem")
        n = pick("num_stages")
        ls = pick("layer_scale")
        stages = []
        for s in range(n):
            st, p = d.stages[s], f"stages[{s}]"
            if st.fixed is not None:
                stages.append(
                    Stage(
                        pick(f"{p}.width"),
                        pick(f"{p}.downsample"),
                        st.fixed,
                        skip=st.skip,
                        latents=st.latents,
                    )
                )
                continue
            depth = pick(f"{p}.depth")
            width = pick(f"{p}.width")
            downsample = pick(f"{p}.downsample")
            norm = pick(f"{p}.norm")
            channel = pick(f"{p}.channel_mixer")
            pat: Pattern = pick(f"{p}.pattern")
            q = f"{p}.patterns[{st.patterns.index(pat)}]"
            if pat.kind == "free":
                mixers = [pick(f"{q}.blocks[{j}]") for j in range(depth)]
            else:
                value = pick(f"{q}.{pat.kind}") if pat.values else 0
                x = pick(f"{q}.mixer")
                y = pick(f"{q}.other") if pat.kind != "uniform" else x
                mixers = [y if m else x for m in pat.mask(value, depth)]
            if d.quant_scope == "per_stage":
                quant = pick(f"{p}.quant")
                quants = [quant] * depth
            else:
                quants = [pick(f"{p}.blocks[{j}].quant") for j in range(depth)]
            repeat = pick(f"{p}.repeat") if st.repeats is not None else 1
            blocks = tuple(
                Block(m, channel, norm, ls, qu, repeat=repeat, nested_ratio=st.nested_ratio)
                for m, qu in zip(mixers, quants, strict=True)
            )
            stages.append(Stage(width, downsample, blocks, skip=st.skip))
        return ArchSpec(
            input=d.input,
            stem=stem,
            stages=tuple(stages),
            head=pick("head"),
            boundary_quant=d.boundary_quant,
        )

    # -- encoding -------------------------------------------------------------------------------
    def _encode_into(self, spec: ArchSpec, values: np.ndarray) -> None:
        d = self.decl
        if spec.input != d.input:
            raise SpaceError("input", "differs from the space's input", value=spec.input.to_dict())
        if spec.boundary_quant != d.boundary_quant:
            raise SpaceError("boundary_quant", "differs from the space's boundary policy")
        self._set(values, "stem", spec.stem)
        self._set(values, "num_stages", len(spec.stages))
        self._set(values, "head", spec.head)
        free = [
            b
            for st, dst in zip(spec.stages, d.stages, strict=False)
            if dst.fixed is None
            for b in st.blocks
        ]
        scales = {b.layer_scale for b in free}
        if len(scales) > 1:
            raise SpaceError("layer_scale", "the space uses one layer scale for all blocks")
        if scales:
            self._set(values, "layer_scale", scales.pop())
        elif len(d.layer_scales) == 1:  # only fixed stages: the scale dimension has one value
            values[self._index["layer_scale"]] = 0
        for s, stage in enumerate(spec.stages):
            self._encode_stage(s, stage, values)

    def _encode_stage(self, s: int, stage: Stage, values: np.ndarray) -> None:
        st, p = self.decl.stages[s], f"stages[{s}]"
        if (stage.skip, stage.latents) != (st.skip, st.latents):
            raise SpaceError(p, "the stage's skip or latent tokens differ from the space's")
        if st.fixed is not None:
            if stage.blocks != st.fixed:
                raise SpaceError(f"{p}.blocks", "differ from the fixed stage's blocks")
            self._set(values, f"{p}.width", stage.width)
            self._set(values, f"{p}.downsample", stage.downsample)
            return
        repeats = {b.repeat for b in stage.blocks}
        if len(repeats) != 1 or (st.repeats is None and repeats != {1}):
            raise SpaceError(f"{p}.repeat", "the space repeats every block of a stage alike")
        if any(
            b
            != Block(
                b.token_mixer,
                b.channel_mixer,
                b.norm,
                b.layer_scale,
                b.quant,
                repeat=b.repeat,
                nested_ratio=st.nested_ratio,
            )
            for b in stage.blocks
        ):
            raise SpaceError(f"{p}.blocks", "structural block fields need a fixed stage")
        if st.repeats is not None:
            self._set(values, f"{p}.repeat", repeats.pop())
        blocks = stage.blocks
        self._set(values, f"{p}.depth", len(blocks))
        self._set(values, f"{p}.width", stage.width)
        self._set(values, f"{p}.downsample", stage.downsample)
        for attr, dim in (("norm", "norm"), ("channel_mixer", "channel_mixer")):
            seen = {getattr(b, attr) for b in blocks}
            if len(seen) != 1:
                raise SpaceError(f"{p}.{dim}", "the space uses one per stage")
            self._set(values, f"{p}.{dim}", seen.pop())
        if self.decl.quant_scope == "per_stage":
            quants = {b.quant for b in blocks}
            if len(quants) != 1:
                raise SpaceError(f"{p}.quant", "the space uses one quantization policy per stage")
            self._set(values, f"{p}.quant", quants.pop())
        else:
            for j, b in enumerate(blocks):
                self._set(values, f"{p}.blocks[{j}].quant", b.quant)
        try:
            seq = [st.mixers.index(b.token_mixer) for b in blocks]
        except ValueError:
            raise SpaceError(
                f"{p}.token_mixers", "a block's token mixer is not among the stage's choices"
            ) from None
        for k, pat in enumerate(st.patterns):
            q = f"{p}.patterns[{k}]"
            if pat.kind == "free":
                if all(i in pat.base for i in seq):
                    self._set(values, f"{p}.pattern", pat)
                    for j, i in enumerate(seq):
                        self._set(values, f"{q}.blocks[{j}]", st.mixers[i])
                    return
                continue
            found = pat.match(seq)
            if found is None:
                continue
            vi, x, y = found
            self._set(values, f"{p}.pattern", pat)
            if pat.values:
                values[self._index[f"{q}.{pat.kind}"]] = vi
            self._set(values, f"{q}.mixer", st.mixers[x])
            if pat.kind != "uniform":
                self._set(values, f"{q}.other", st.mixers[y])
            return
        raise SpaceError(
            f"{p}.patterns",
            "the stage's mixer sequence matches none of its patterns",
            value=[st.mixers[i].name for i in seq],
        )

    # -- size -----------------------------------------------------------------------------------
    def cardinality(self) -> int:
        """Exact number of distinct specs (ignoring constraints), as a Python integer."""
        d = self.decl
        per_block_quant = d.quant_scope == "per_block"
        stage_counts = []
        for st in d.stages:
            if st.fixed is not None:
                stage_counts.append(len(st.widths) * len(st.downsamples))
                continue
            total = 0
            for depth in st.depths:
                seqs = count_sequences(st.patterns, depth)
                quant = len(d.quants) ** depth if per_block_quant else len(d.quants)
                total += seqs * quant
            total *= len(st.widths) * len(st.downsamples) * len(st.norms) * len(st.channel_mixers)
            total *= len(st.repeats) if st.repeats is not None else 1
            stage_counts.append(total)
        structures = sum(math.prod(stage_counts[:n]) for n in d.num_stages)
        return len(d.stems) * len(d.heads) * len(d.layer_scales) * structures

    # -- description ----------------------------------------------------------------------------
    def mixer_names(self) -> list[str]:
        names = [m.name for st in self.decl.stages for m in st.mixers]
        return list(dict.fromkeys(names))

    def quant_bits(self) -> list[int]:
        bits = {q.weight_bits for q in self.decl.quants} | {q.act_bits for q in self.decl.quants}
        return sorted(bits)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary: dimensions, mixers, quantization choices, cardinality."""
        d = self.decl
        return {
            "name": d.name,
            "description": d.description,
            "source": self.source,
            "input": d.input.to_dict(),
            "cardinality": self.cardinality(),
            "num_dims": len(self.dims),
            "mixers": self.mixer_names(),
            "channel_mixers": list(
                dict.fromkeys(m.name for st in d.stages for m in st.channel_mixers)
            ),
            "quant_bits": self.quant_bits(),
            "quant_scope": d.quant_scope,
            "num_stages": list(d.num_stages),
            "stages": [
                {
                    "depth": list(st.depths),
                    "width": list(st.widths),
                    "downsample": [o.label() for o in st.downsamples],
                    "norms": list(st.norms),
                    "token_mixers": [m.label() for m in st.mixers],
                    "channel_mixers": [m.label() for m in st.channel_mixers],
                    "patterns": [_pattern_label(p) for p in st.patterns],
                    "repeat": list(st.repeats) if st.repeats is not None else [1],
                    "nested_ratio": st.nested_ratio,
                }
                for st in d.stages
            ],
            "constraints": [c.describe() for c in self.constraints],
            "dims": [{"name": dim.name, "size": dim.size} for dim in self.dims],
        }


def _pattern_label(p: Pattern) -> str:
    return p.kind if not p.values else f"{p.kind}{list(p.values)}"
