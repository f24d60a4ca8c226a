"""`ArchSpec`: one concrete architecture, explicit enough to build the same model anywhere.

A spec is immutable and fully expanded: every block names its token mixer and channel mixer with all
of their parameters, its norm, layer scale and quantization policy. It round-trips to canonical JSON
(sorted keys, no whitespace) and its ``id`` is a hash of that JSON, so two processes on two machines
agree on identity without sharing anything but the text.

This module is torch-free; `search_space.ops.validate_spec` checks a spec against the registries and
`search_space.build_model` turns it into a `torch.nn.Module`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from search_space.errors import SpaceError

SCHEMA_VERSION = 1
FLOAT_BITS = 32
# bounds where a larger value can only be a mistake (widths of 10^30 describe no model); a
# number a spec holds is at most MAX_INT unless a tighter bound below applies
MAX_INT = 1 << 24
MAX_WIDTH = 1 << 16  # channels of a stage (the widest published models use ~20,000)
MAX_DEPTH = 1024  # blocks of a stage, and a block's repeat
MAX_RESOLUTION = 1 << 14  # pixels along an image side
MAX_SEQ_LEN = 1 << 20
INPUT_KINDS = ("image", "tokens")
GRANULARITIES = ("per_tensor", "per_channel")
SCOPES = ("data", "latent")
SCOPE_DATA = "data"
MERGES = ("concat", "add")
# which tokens a block updates: all of them, or only the prefix (class) tokens (CaiT)
BLOCK_TOKENS = ("all", "prefix")
TOKENS_ALL = "all"
TOKENS_PREFIX = "prefix"
# Bit-widths a quantization policy may name; 32 means float (no quantization).
ALLOWED_BITS = (2, 3, 4, 5, 6, 8, 16, 32)

JsonScalar = int | float | bool | str | None


def _freeze(value: Any) -> Any:
    """Makes a JSON-like parameter value hashable (lists become tuples)."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class InputSpec:
    """What the network consumes.

    ``kind="image"``: ``channels`` x ``resolution`` (height, width) images.
    ``kind="tokens"``: sequences of ``seq_len`` tokens, either integer ids below ``vocab_size`` or,
    when ``vocab_size`` is 0, float feature vectors of width ``feature_dim``.
    """

    kind: str
    num_classes: int
    channels: int = 3
    resolution: tuple[int, int] = (224, 224)
    seq_len: int = 0
    vocab_size: int = 0
    feature_dim: int = 0

    @property
    def grid(self) -> tuple[int, ...]:
        """The spatial extent of the raw input: (H, W) for images, (L,) for sequences."""
        return tuple(self.resolution) if self.kind == "image" else (self.seq_len,)

    @property
    def in_channels(self) -> int:
        """Channels the stem consumes (image channels, vocabulary size or feature width)."""
        if self.kind == "image":
            return self.channels
        return self.vocab_size or self.feature_dim

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "image":
            return {
                "kind": "image",
                "num_classes": self.num_classes,
                "channels": self.channels,
                "resolution": list(self.resolution),
            }
        return {
            "kind": "tokens",
            "num_classes": self.num_classes,
            "seq_len": self.seq_len,
            "vocab_size": self.vocab_size,
            "feature_dim": self.feature_dim,
        }


@dataclass(frozen=True)
class Op:
    """A reference to a registered operation: its name and every one of its parameters."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def of(name: str, params: Mapping[str, Any] | None = None) -> Op:
        items = sorted((k, _freeze(v)) for k, v in (params or {}).items())
        return Op(name, tuple(items))

    @cached_property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    def __getitem__(self, key: str) -> Any:
        return self.kwargs[key]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": {k: _thaw(v) for k, v in self.params}}

    def label(self) -> str:
        """Short human-readable form, e.g. ``attention(head_dim=32)``."""
        inner = ",".join(f"{k}={_thaw(v)}" for k, v in self.params)
        return f"{self.name}({inner})" if inner else self.name


@dataclass(frozen=True)
class Quant:
    """A quantization policy for one layer: weight and activation bits (32 means float)."""

    weight_bits: int = FLOAT_BITS
    act_bits: int = FLOAT_BITS
    granularity: str = "per_tensor"

    @property
    def is_float(self) -> bool:
        return self.weight_bits >= FLOAT_BITS and self.act_bits >= FLOAT_BITS

    def to_dict(self) -> dict[str, Any]:
        return {
            "weight_bits": self.weight_bits,
            "act_bits": self.act_bits,
            "granularity": self.granularity,
        }


FLOAT = Quant()


@dataclass(frozen=True)
class Block:
    """One residual block: ``x + ls1 * token_mixer(norm1(x))``, then likewise the channel mixer.

    A channel mixer named ``none`` drops the second residual branch (and its norm).
    ``layer_scale`` is the initial value of the learnable per-channel scale, or None for no scale.
    ``residual=False`` makes the token branch replace ``x`` instead of adding to it, for cells that
    carry their own skip connections (NAS-Bench-201).

    Structural fields (omitted from the JSON at their defaults, so older specs keep their ids):
    ``repeat`` applies the block ``repeat`` times with the same weights (recursive weight sharing,
    SReT: Zhang et al., "Sliced Recursive Transformer", 2022): MACs count every application,
    parameters once; ``share`` = k makes the block reuse the weights of block k of the same stage
    (an identical block apart from ``share``), so shared blocks can be interleaved with unshared
    ones (SReT's recursion with non-shared projections between loops). ``nested_ratio`` stores
    the channel mixer (an ``mlp``) at this hidden ratio and uses the prefix of its hidden units
    that the mixer's own ``ratio`` names (MatFormer:
    Devvrit et al., "MatFormer: Nested Transformer for Elastic Inference", 2023). ``scope``
    ``latent`` applies the block to the stage's latent tokens instead of the data tokens (FIT:
    Chen & Li, "FIT: Far-reaching Interleaved Transformers", 2023; see `Latents`). ``channels``
    = [start, end] applies the block to that channel slice only, the other channels passing
    through (partial-channel branches: Next-ViT's NTB, FasterNet, SHViT). ``tokens`` =
    ``prefix`` makes the block update the prefix (class) tokens only, the grid tokens passing
    through unchanged: the token mixer reads every token and only its prefix rows are added
    (pair it with ``class_attention``, which computes only those), and the channel branch
    (norm, channel mixer, layer scale) runs on the prefix tokens alone (CaiT's class-attention
    blocks: Touvron et al., "Going deeper with Image Transformers", 2021; VOLO, SpectFormer-H).
    """

    token_mixer: Op
    channel_mixer: Op
    norm: str = "layernorm"
    layer_scale: float | None = None
    quant: Quant = FLOAT
    residual: bool = True
    repeat: int = 1
    nested_ratio: float | None = None
    scope: str = SCOPE_DATA
    share: int | None = None
    channels: tuple[int, int] | None = None
    tokens: str = TOKENS_ALL

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "token_mixer": self.token_mixer.to_dict(),
            "channel_mixer": self.channel_mixer.to_dict(),
            "norm": self.norm,
            "layer_scale": self.layer_scale,
            "quant": self.quant.to_dict(),
            "residual": self.residual,
        }
        if self.repeat != 1:
            out["repeat"] = self.repeat
        if self.nested_ratio is not None:
            out["nested_ratio"] = self.nested_ratio
        if self.scope != SCOPE_DATA:
            out["scope"] = self.scope
        if self.share is not None:
            out["share"] = self.share
        if self.channels is not None:
            out["channels"] = list(self.channels)
        if self.tokens != TOKENS_ALL:
            out["tokens"] = self.tokens
        return out


@dataclass(frozen=True)
class Latents:
    """Latent tokens a stage carries beside its data tokens (FIT's interleaved local/global
    layers: Chen & Li, "FIT: Far-reaching Interleaved Transformers", 2023).

    The data grid is cut into ``group`` x ``group`` windows (one per axis for sequences); each
    window owns ``tokens`` learned latent tokens. Entering a run of ``scope: latent`` blocks, the
    latents read their window (cross-attention, latents query the data); leaving it, the data
    read the latents back (cross-attention, data query their window's latents). Latent blocks see
    all windows' latents as one sequence, so attention there is global.
    """

    tokens: int
    group: int
    head_dim: int = 32

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "group": self.group, "head_dim": self.head_dim}


@dataclass(frozen=True)
class Skip:
    """A skip connection into a stage (U-Net encoder-decoder wiring; Ronneberger et al., "U-Net",
    2015; Oktay et al., "Attention U-Net: Learning Where to Look for the Pancreas", 2018).

    After the stage's downsampler (an upsampler in a decoder), the output of stage ``source``
    (an earlier stage with the same grid) joins the tokens: ``concat`` concatenates channels and
    projects back to the width with a linear layer; ``add`` sums (same width required).
    """

    source: int
    merge: str = "concat"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "merge": self.merge}


@dataclass(frozen=True)
class Stage:
    """A run of blocks at one width, entered through ``downsample`` (``none`` keeps the grid).

    ``skip`` (a `Skip`) and ``latents`` (a `Latents`) are optional structure, omitted from the
    JSON when absent.
    """

    width: int
    downsample: Op
    blocks: tuple[Block, ...]
    skip: Skip | None = None
    latents: Latents | None = None

    @property
    def depth(self) -> int:
        return len(self.blocks)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "width": self.width,
            "downsample": self.downsample.to_dict(),
            "blocks": [b.to_dict() for b in self.blocks],
        }
        if self.skip is not None:
            out["skip"] = self.skip.to_dict()
        if self.latents is not None:
            out["latents"] = self.latents.to_dict()
        return out


@dataclass(frozen=True)
class ArchSpec:
    """A concrete architecture: input, stem, stages of blocks, head, and quantization policy.

    ``boundary_quant`` is the policy of the layers outside the blocks (stem, downsamplers, head),
    which quantization practice usually keeps at higher precision.
    """

    input: InputSpec
    stem: Op
    stages: tuple[Stage, ...]
    head: Op
    boundary_quant: Quant = FLOAT
    schema_version: int = SCHEMA_VERSION
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    # -- identity -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "input": self.input.to_dict(),
            "stem": self.stem.to_dict(),
            "stages": [s.to_dict() for s in self.stages],
            "head": self.head.to_dict(),
            "boundary_quant": self.boundary_quant.to_dict(),
        }

    def to_json(self, *, indent: int | None = None) -> str:
        """Canonical JSON: sorted keys; compact unless ``indent`` is given."""
        if indent is None:
            if "json" not in self._cache:
                self._cache["json"] = json.dumps(
                    self.to_dict(), sort_keys=True, separators=(",", ":")
                )
            return str(self._cache["json"])
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    @property
    def id(self) -> str:
        """Content hash of the canonical JSON (16 hex digits of SHA-256)."""
        if "id" not in self._cache:
            digest = hashlib.sha256(self.to_json().encode()).hexdigest()
            self._cache["id"] = digest[:16]
        return str(self._cache["id"])

    def __hash__(self) -> int:
        return hash(self.id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArchSpec) and self.to_json() == other.to_json()

    # -- convenience ----------------------------------------------------------------------------
    @property
    def blocks(self) -> list[Block]:
        return [b for s in self.stages for b in s.blocks]

    @property
    def depths(self) -> list[int]:
        return [s.depth for s in self.stages]

    @property
    def widths(self) -> list[int]:
        return [s.width for s in self.stages]

    def mixer_names(self) -> list[str]:
        """Distinct token mixers used, in order of first appearance."""
        return list(dict.fromkeys(b.token_mixer.name for b in self.blocks))

    def replace(self, **changes: Any) -> ArchSpec:
        return replace(self, _cache={}, **changes)

    @staticmethod
    def from_json(text: str, *, source: str | None = None) -> ArchSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpaceError(
                "<json>", f"not valid JSON: {exc.msg} at line {exc.lineno}", source=source
            ) from None
        except RecursionError:
            raise SpaceError("<json>", "is nested too deeply", source=source) from None
        return ArchSpec.from_dict(data, source=source)

    @staticmethod
    def from_dict(data: Any, *, source: str | None = None) -> ArchSpec:
        """Parses a spec dict; structural errors name the field path. See `validate_spec`."""
        try:
            return _parse_spec(data)
        except SpaceError as err:
            if source:
                raise err.with_source(source) from None
            raise


# -- parsing -----------------------------------------------------------------------------------


def _expect_mapping(data: Any, path: str, keys: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise SpaceError(path or "<root>", "must be a mapping", value=data)
    unknown = sorted(set(data) - keys)
    if unknown:
        raise SpaceError(
            f"{path}.{unknown[0]}".lstrip("."), f"unknown key; allowed: {', '.join(sorted(keys))}"
        )
    missing = sorted(required - set(data))
    if missing:
        raise SpaceError(f"{path}.{missing[0]}".lstrip("."), "is required")
    return dict(data)


def _int(value: Any, path: str, minimum: int = 0, maximum: int = MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpaceError(path, f"must be an integer >= {minimum}", value=value)
    if value > maximum:
        raise SpaceError(path, f"must be at most {maximum:,}", value=value)
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise SpaceError(path, "must be true or false", value=value)
    return value


def _parse_op(data: Any, path: str) -> Op:
    d = _expect_mapping(data, path, {"name", "params"}, {"name"})
    if not isinstance(d["name"], str):
        raise SpaceError(f"{path}.name", "must be a string", value=d["name"])
    params = d.get("params") or {}
    if not isinstance(params, Mapping):
        raise SpaceError(f"{path}.params", "must be a mapping", value=params)
    return Op.of(d["name"], params)


def _parse_quant(data: Any, path: str) -> Quant:
    d = _expect_mapping(data, path, {"weight_bits", "act_bits", "granularity"}, set())
    granularity = d.get("granularity", "per_tensor")
    if granularity not in GRANULARITIES:
        raise SpaceError(
            f"{path}.granularity", f"must be one of {list(GRANULARITIES)}", value=granularity
        )
    return Quant(
        weight_bits=_int(d.get("weight_bits", FLOAT_BITS), f"{path}.weight_bits", 1),
        act_bits=_int(d.get("act_bits", FLOAT_BITS), f"{path}.act_bits", 1),
        granularity=granularity,
    )


def parse_input(data: Any, path: str = "input") -> InputSpec:
    keys = {"kind", "num_classes", "channels", "resolution", "seq_len", "vocab_size", "feature_dim"}
    d = _expect_mapping(data, path, keys, {"kind", "num_classes"})
    kind = d["kind"]
    if kind not in INPUT_KINDS:
        raise SpaceError(f"{path}.kind", f"must be one of {list(INPUT_KINDS)}", value=kind)
    num_classes = _int(d["num_classes"], f"{path}.num_classes", 1)
    if kind == "image":
        res = d.get("resolution", 224)
        res = [res, res] if isinstance(res, int) and not isinstance(res, bool) else res
        if not isinstance(res, list | tuple) or len(res) != 2:
            raise SpaceError(
                f"{path}.resolution", "must be an integer or [height, width]", value=res
            )
        hw = (
            _int(res[0], f"{path}.resolution", 1, MAX_RESOLUTION),
            _int(res[1], f"{path}.resolution", 1, MAX_RESOLUTION),
        )
        channels = _int(d.get("channels", 3), f"{path}.channels", 1, MAX_WIDTH)
        return InputSpec("image", num_classes, channels=channels, resolution=hw)
    seq_len = _int(d.get("seq_len", 0), f"{path}.seq_len", 1, MAX_SEQ_LEN)
    vocab = _int(d.get("vocab_size", 0), f"{path}.vocab_size", 0)
    feat = _int(d.get("feature_dim", 0), f"{path}.feature_dim", 0, MAX_WIDTH)
    if (vocab > 0) == (feat > 0):
        raise SpaceError(path, "token input needs exactly one of vocab_size or feature_dim > 0")
    return InputSpec("tokens", num_classes, seq_len=seq_len, vocab_size=vocab, feature_dim=feat)


def parse_block(data: Any, path: str) -> Block:
    keys = {"token_mixer", "channel_mixer", "norm", "layer_scale", "quant", "residual"}
    keys |= {"repeat", "nested_ratio", "scope", "share", "channels", "tokens"}
    d = _expect_mapping(data, path, keys, {"token_mixer", "channel_mixer"})
    nested = d.get("nested_ratio")
    if nested is not None and (
        isinstance(nested, bool) or not isinstance(nested, int | float) or nested <= 0
    ):
        raise SpaceError(f"{path}.nested_ratio", "must be a positive number or null", value=nested)
    scope = d.get("scope", SCOPE_DATA)
    if scope not in SCOPES:
        raise SpaceError(f"{path}.scope", f"must be one of {list(SCOPES)}", value=scope)
    tokens = d.get("tokens", TOKENS_ALL)
    if tokens not in BLOCK_TOKENS:
        raise SpaceError(f"{path}.tokens", f"must be one of {list(BLOCK_TOKENS)}", value=tokens)
    ls = d.get("layer_scale")
    if ls is not None and (isinstance(ls, bool) or not isinstance(ls, int | float) or ls <= 0):
        raise SpaceError(f"{path}.layer_scale", "must be a positive number or null", value=ls)
    norm = d.get("norm", "layernorm")
    if not isinstance(norm, str):
        raise SpaceError(f"{path}.norm", "must be a string", value=norm)
    return Block(
        token_mixer=_parse_op(d["token_mixer"], f"{path}.token_mixer"),
        channel_mixer=_parse_op(d["channel_mixer"], f"{path}.channel_mixer"),
        norm=norm,
        layer_scale=None if ls is None else float(ls),
        quant=_parse_quant(d.get("quant", {}), f"{path}.quant"),
        residual=_bool(d.get("residual", True), f"{path}.residual"),
        repeat=_int(d.get("repeat", 1), f"{path}.repeat", 1, MAX_DEPTH),
        nested_ratio=None if nested is None else float(nested),
        scope=scope,
        share=None if d.get("share") is None else _int(d["share"], f"{path}.share", 0),
        channels=_channels(d.get("channels"), f"{path}.channels"),
        tokens=tokens,
    )


def _channels(value: Any, path: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise SpaceError(path, "must be [start, end] (a channel slice)", value=value)
    start, end = _int(value[0], path, 0), _int(value[1], path, 1)
    if start >= end:
        raise SpaceError(path, "start must be below end", value=list(value))
    return start, end


def parse_skip(data: Any, path: str) -> Skip | None:
    if data is None:
        return None
    d = _expect_mapping(data, path, {"source", "merge"}, {"source"})
    merge = d.get("merge", "concat")
    if merge not in MERGES:
        raise SpaceError(f"{path}.merge", f"must be one of {list(MERGES)}", value=merge)
    return Skip(_int(d["source"], f"{path}.source", 0), merge)


def parse_latents(data: Any, path: str) -> Latents | None:
    if data is None:
        return None
    d = _expect_mapping(data, path, {"tokens", "group", "head_dim"}, {"tokens", "group"})
    return Latents(
        _int(d["tokens"], f"{path}.tokens", 1),
        _int(d["group"], f"{path}.group", 1),
        _int(d.get("head_dim", 32), f"{path}.head_dim", 1),
    )


def _parse_spec(data: Any) -> ArchSpec:
    keys = {"schema_version", "input", "stem", "stages", "head", "boundary_quant"}
    d = _expect_mapping(data, "", keys, {"input", "stem", "stages", "head"})
    version = d.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise SpaceError(
            "schema_version", f"this mixnas reads version {SCHEMA_VERSION}", value=version
        )
    stages_data = d["stages"]
    if not isinstance(stages_data, list) or not stages_data:
        raise SpaceError("stages", "must be a non-empty list", value=stages_data)
    stages = []
    for i, st in enumerate(stages_data):
        path = f"stages[{i}]"
        sd = _expect_mapping(
            st, path, {"width", "downsample", "blocks", "skip", "latents"}, {"width", "blocks"}
        )
        blocks = sd["blocks"]
        if not isinstance(blocks, list) or not blocks:
            raise SpaceError(f"{path}.blocks", "must be a non-empty list", value=blocks)
        if len(blocks) > MAX_DEPTH:
            raise SpaceError(f"{path}.blocks", f"at most {MAX_DEPTH} blocks", value=len(blocks))
        stages.append(
            Stage(
                width=_int(sd["width"], f"{path}.width", 1, MAX_WIDTH),
                downsample=_parse_op(sd.get("downsample", {"name": "none"}), f"{path}.downsample"),
                blocks=tuple(parse_block(b, f"{path}.blocks[{j}]") for j, b in enumerate(blocks)),
                skip=parse_skip(sd.get("skip"), f"{path}.skip"),
                latents=parse_latents(sd.get("latents"), f"{path}.latents"),
            )
        )
    return ArchSpec(
        input=parse_input(d["input"]),
        stem=_parse_op(d["stem"], "stem"),
        stages=tuple(stages),
        head=_parse_op(d["head"], "head"),
        boundary_quant=_parse_quant(d.get("boundary_quant", {}), "boundary_quant"),
    )
