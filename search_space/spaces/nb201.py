"""NAS-Bench-201 as a space of mixnas specs: arch strings to specs and back, and `NB201Space`.

The macro skeleton is NAS-Bench-201's ``TinyNetwork`` (C=16, N=5): a 3x3 conv stem without bias
and a batch norm; three stages of five cells at 16, 32 and 64 channels, entered the second and third
time through the stride-2 ResNet basic block; batch norm, ReLU, global average pooling and a linear
classifier. The cell is the ``nb201_cell`` token mixer in a block without norm, channel mixer or
residual of its own; all fifteen cells share one genotype.

An arch string names the op of each edge, grouped by target node, with the source node after the
``~``: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``. This module is torch-free.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

import numpy as np

from search_space.declare.decisions import DecisionSpace
from search_space.errors import SpaceError
from search_space.ops import DOWNSAMPLERS, HEADS, STEMS, TOKEN_MIXERS
from search_space.ops.token_mixers.nb201 import EDGES, NUM_NODES, OPS
from search_space.spec import ArchSpec, Block, InputSpec, Op, Stage

__all__ = [
    "DATASETS",
    "EDGES",
    "OPS",
    "NB201Space",
    "edges_of",
    "from_arch_str",
    "from_ops",
    "parse_arch_str",
    "to_arch_str",
]

# dataset: (classes, input resolution)
DATASETS: dict[str, tuple[int, int]] = {
    "cifar10": (10, 32),
    "cifar100": (100, 32),
    "ImageNet16-120": (120, 16),
}
WIDTH = 16  # C
CELLS_PER_STAGE = 5  # N
STAGE_WIDTHS = (WIDTH, 2 * WIDTH, 4 * WIDTH)


def _full(registry: Any, name: str, params: dict[str, Any] | None = None) -> Op:
    """The op with every parameter spelled out, as declared spaces write them."""
    return Op.of(name, registry.get(name).complete(params or {}, name))


_STEM = _full(
    STEMS,
    "patch_embed",
    {"patch_size": 3, "stride": 1, "padding": 1, "norm": "batchnorm", "bias": False},
)
_HEAD = _full(
    HEADS,
    "classifier",
    {"pool": "gap", "norm": "batchnorm", "norm_position": "pre_pool", "act": "relu"},
)
_REDUCTION = _full(DOWNSAMPLERS, "resnet_basic")
_KEEP = Op.of("none")
_NO_CHANNEL_MIXER = Op.of("none")


def dataset_input(dataset: str) -> InputSpec:
    """The input of NAS-Bench-201's networks for ``dataset``."""
    if dataset not in DATASETS:
        raise SpaceError("dataset", f"must be one of {list(DATASETS)}", value=dataset)
    classes, res = DATASETS[dataset]
    return InputSpec("image", classes, channels=3, resolution=(res, res))


def parse_arch_str(arch: str) -> list[str]:
    """The six edge ops of an arch string, in arch-string order; raises `SpaceError`."""
    if not isinstance(arch, str):
        raise SpaceError("arch_str", "must be a string", value=arch)
    expected = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2| with op one of " + ", ".join(OPS)
    groups = arch.strip().split("+")
    if len(groups) != NUM_NODES - 1:
        raise SpaceError(
            "arch_str",
            f"needs {NUM_NODES - 1} node groups separated by '+', like {expected}",
            value=arch,
        )
    ops: list[str] = []
    for j, group in enumerate(groups, start=1):
        if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
            raise SpaceError(
                "arch_str", f"node {j}'s group must be enclosed in '|', like {expected}", value=arch
            )
        entries = group[1:-1].split("|")
        if len(entries) != j:
            raise SpaceError(
                "arch_str",
                f"node {j} needs {j} inputs (edges from nodes 0..{j - 1}), got {len(entries)}",
                value=arch,
            )
        for i, entry in enumerate(entries):
            op, sep, source = entry.partition("~")
            if not sep or source != str(i):
                raise SpaceError(
                    "arch_str",
                    f"edge {entry!r} of node {j} must read 'op~{i}' (inputs in order 0..{j - 1})",
                    value=arch,
                )
            if op not in OPS:
                raise SpaceError(
                    "arch_str", f"unknown op {op!r}; NB201 ops are {', '.join(OPS)}", value=arch
                )
            ops.append(op)
    return ops


def format_arch_str(ops: Sequence[str]) -> str:
    """The arch string of six edge ops given in arch-string order."""
    groups: dict[int, list[str]] = {}
    for op, (to, i) in zip(ops, EDGES, strict=True):
        groups.setdefault(to, []).append(f"{op}~{i}")
    return "+".join("|" + "|".join(groups[j]) + "|" for j in range(1, NUM_NODES))


def from_ops(ops: Sequence[str], *, dataset: str = "cifar10") -> ArchSpec:
    """The spec of the NAS-Bench-201 network whose cells have these six edge ops."""
    if len(ops) != len(EDGES):
        raise SpaceError("edges", f"needs {len(EDGES)} edge ops", value=list(ops))
    unknown = [op for op in ops if op not in OPS]
    if unknown:
        raise SpaceError("edges", f"unknown op; NB201 ops are {', '.join(OPS)}", value=unknown[0])
    cell = Op.of("nb201_cell", {"edges": [OPS.index(op) for op in ops]})
    block = Block(cell, _NO_CHANNEL_MIXER, norm="none", layer_scale=None, residual=False)
    stages = tuple(
        Stage(width, _KEEP if s == 0 else _REDUCTION, (block,) * CELLS_PER_STAGE)
        for s, width in enumerate(STAGE_WIDTHS)
    )
    return ArchSpec(dataset_input(dataset), _STEM, stages, _HEAD)


def from_arch_str(arch: str, *, dataset: str = "cifar10") -> ArchSpec:
    """The spec of the NAS-Bench-201 network of an arch string, e.g.
    ``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``.
    """
    return from_ops(parse_arch_str(arch), dataset=dataset)


def dataset_of(spec: ArchSpec) -> str:
    """The NAS-Bench-201 dataset whose input ``spec`` takes; raises `SpaceError` if none."""
    for name in DATASETS:
        if spec.input == dataset_input(name):
            return name
    raise SpaceError(
        "input",
        "is not a NAS-Bench-201 input (cifar10/cifar100 32x32, ImageNet16-120 16x16)",
        value=spec.input.to_dict(),
    )


def edges_of(spec: ArchSpec) -> list[str]:
    """The six edge ops of a NAS-Bench-201 spec; raises `SpaceError` if it is not one."""
    blocks = spec.blocks
    first = blocks[0].token_mixer if blocks else None
    if first is None or first.name != "nb201_cell":
        raise SpaceError("stages[0].blocks[0].token_mixer", "is not an 'nb201_cell'")
    edges = first.kwargs.get("edges", TOKEN_MIXERS.get("nb201_cell").defaults()["edges"])
    if len(edges) != len(EDGES) or not all(isinstance(e, int) and 0 <= e < len(OPS) for e in edges):
        raise SpaceError("stages[0].blocks[0].token_mixer.params.edges", "invalid", value=edges)
    ops = [OPS[e] for e in edges]
    if spec != from_ops(ops, dataset=dataset_of(spec)):
        raise SpaceError(
            "spec",
            "is not a NAS-Bench-201 network (the C=16, N=5 skeleton with one cell genotype)",
        )
    return ops


# NASLib (NAS-Bench-Suite-Zero) keys a cell by six op codes in its own edge order, nodes from 1
NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
NASLIB_EDGES = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))


def naslib_ops(key: str | Sequence[int]) -> list[str]:
    """The six edge ops, in arch-string order, of a NASLib op-code tuple such as
    ``"(0, 2, 3, 2, 3, 1)"``."""
    codes = ast.literal_eval(key) if isinstance(key, str) else tuple(key)
    ops = [""] * len(EDGES)
    for code, (src, dst) in zip(codes, NASLIB_EDGES, strict=True):
        ops[EDGES.index((dst - 1, src - 1))] = NASLIB_OPS[code]
    return ops


def to_arch_str(spec: ArchSpec) -> str:
    """The arch string of a NAS-Bench-201 spec; raises `SpaceError` for any other spec."""
    return format_arch_str(edges_of(spec))


class NB201Space(DecisionSpace):
    """NAS-Bench-201: six decisions ``edge[0]``..``edge[5]`` (arch-string order: 1<-0, 2<-0,
    2<-1, 3<-0, 3<-1, 3<-2), each one of the five ops; 5**6 = 15625 architectures."""

    def __init__(self, dataset: str = "cifar10") -> None:
        dataset_input(dataset)  # checks the name
        super().__init__(source=f"nb201[{dataset}]")
        self.dataset = dataset
        for k in range(len(EDGES)):
            self._add(f"edge[{k}]", OPS)

    def _decode(self, values: np.ndarray | list[int], active: list[bool] | None = None) -> ArchSpec:
        ops = [self._pick(values, active, f"edge[{k}]") for k in range(len(EDGES))]
        return from_ops(ops, dataset=self.dataset)

    def _encode_into(self, spec: ArchSpec, values: np.ndarray) -> None:
        if spec.input != dataset_input(self.dataset):
            raise SpaceError(
                "input", f"differs from the {self.dataset} input", value=spec.input.to_dict()
            )
        for k, op in enumerate(edges_of(spec)):
            self._set(values, f"edge[{k}]", op)

    def cardinality(self) -> int:
        return len(OPS) ** len(EDGES)

    def arch_str(self, values: np.ndarray | list[int]) -> str:
        """The arch string of a decision vector, without building the spec."""
        return format_arch_str([self.dims[k].choices[int(v)] for k, v in enumerate(values)])

    def describe(self) -> dict[str, Any]:
        return {
            "name": "nb201",
            "dataset": self.dataset,
            "input": dataset_input(self.dataset).to_dict(),
            "cardinality": self.cardinality(),
            "num_dims": len(self.dims),
            "ops": list(OPS),
            "dims": [{"name": dim.name, "size": dim.size} for dim in self.dims],
        }
