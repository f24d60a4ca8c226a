"""The one generic builder: any `ArchSpec` to a `torch.nn.Module`, for images and token sequences.

The builder reads `search_space.plan.plan`, so shapes and parameters are exactly those the analytic
costs use. Building is deterministic for a given seed: parameters are initialised under a local
`torch.Generator` state, leaving the global RNG of the caller untouched.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from search_space.nn.block import Branch, MixerBlock, PrefixOnly
from search_space.nn.structure import ChannelSlice, Repeated
from search_space.plan import PlannedOp, plan
from search_space.spec import SCOPE_DATA, TOKENS_PREFIX, ArchSpec, Block, Quant, Stage


def instantiate(item: PlannedOp) -> nn.Module:
    """The module of one planned op: its definition builds it (`OpDef.build`) at its context."""
    if item.op is None:
        raise ValueError(f"{item.path}: {item.role} has no registered op to build")
    module = item.op.build(item.ctx, item.params)
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"{item.op.kind} {item.op.name!r} built a {type(module).__name__}, not a "
            "torch.nn.Module"
        )
    return module


class MixNet(nn.Module):
    """A network built from a spec: stem, stages (downsample then blocks), head.

    A stage without a skip or latent tokens is an ``nn.Sequential`` (downsampler, blocks); one
    with them is a `StructuredStage`, which also sees the earlier stages' outputs.
    """

    def __init__(self, spec: ArchSpec, *, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.spec_id = spec.id
        items = plan(spec)
        self.stem = instantiate(items[0])
        total = max(1, sum(spec.depths))
        self.stages = nn.ModuleList()
        by_block: dict[tuple[int, int], dict[str, PlannedOp]] = {}
        by_stage: dict[int, list[PlannedOp]] = {}
        for item in items[1:-1]:
            if item.block >= 0 and item.role not in ("read", "write"):
                by_block.setdefault((item.stage, item.block), {})[item.role] = item
            else:
                by_stage.setdefault(item.stage, []).append(item)
        index = 0
        for i, stage in enumerate(spec.stages):
            blocks: list[nn.Module] = []
            for j, block in enumerate(stage.blocks):
                rate = drop_path_rate * index / max(1, total - 1)
                if block.share is not None:  # the same module object: weights counted once
                    blocks.append(blocks[block.share])
                    index += 1
                    continue
                built: nn.Module = _block(by_block[(i, j)], block, rate)
                if block.repeat != 1:
                    built = Repeated(built, block.repeat)
                if block.channels is not None:
                    built = ChannelSlice(built, *block.channels)
                blocks.append(built)
                index += 1
            extras = by_stage[i]
            if stage.skip is None and stage.latents is None:
                self.stages.append(nn.Sequential(instantiate(extras[0]), *blocks))
            else:
                self.stages.append(StructuredStage(stage, extras, blocks))
        self.head = instantiate(items[-1])
        # a dense head (segmentation, super-resolution) also reads the input and earlier outputs
        self.head_reads_sources = bool(items[-1].op is not None and items[-1].op.sources)
        tie = getattr(self.head, "tie_to", None)
        if callable(tie):  # a head that shares the stem's embedding table (LMHead with tie)
            tie(self.stem)

    def forward_features(
        self, x: torch.Tensor, sources: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """The last stage's tokens; ``sources``, when given, receives the stem's output and
        every stage's (what a dense head reads besides the input)."""
        x = self.stem(x)
        if sources is not None:
            sources.append(x)
        outputs: list[torch.Tensor] = []
        for stage in self.stages:
            x = stage(x, outputs) if isinstance(stage, StructuredStage) else stage(x)
            outputs.append(x)
        if sources is not None:
            sources.extend(outputs)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head_reads_sources:
            sources = [x]
            return self.head(self.forward_features(x, sources), sources)
        return self.head(self.forward_features(x))


class StructuredStage(nn.Module):
    """A stage with a skip merge and/or latent tokens (see `search_space.spec.Skip`, `Latents`).

    ``steps`` runs in order: ``data`` blocks update the tokens, ``latent`` blocks the latents,
    ``read`` updates the latents from the tokens and ``write`` the tokens from the latents.
    """

    def __init__(self, stage: Stage, extras: list[PlannedOp], blocks: list[nn.Module]) -> None:
        super().__init__()
        self.downsample = instantiate(extras[0])
        roles = {item.role: item for item in extras}
        self.source = stage.skip.source if stage.skip is not None else -1
        self.merge = instantiate(roles["merge"]) if "merge" in roles else None
        self.latents = instantiate(roles["latents"]) if "latents" in roles else None
        first = extras[0]
        assert first.op is not None
        # the blocks see the downsampler's output, which may carry new prefix tokens
        self.prefix = first.op.out_prefix(first.ctx, first.params)
        cross = iter(item for item in extras[1:] if item.role in ("read", "write"))
        self.kinds: list[str] = []
        self.steps = nn.ModuleList()
        scope = SCOPE_DATA
        for block, module in zip(stage.blocks, blocks, strict=True):
            if block.scope != scope:
                item = next(cross)
                self.kinds.append(item.role)
                self.steps.append(instantiate(item))
                scope = block.scope
            self.kinds.append(scope)
            self.steps.append(module)
        if scope != SCOPE_DATA:
            item = next(cross)
            self.kinds.append(item.role)
            self.steps.append(instantiate(item))

    def forward(self, x: torch.Tensor, outputs: list[torch.Tensor]) -> torch.Tensor:
        x = self.downsample(x)
        if self.merge is not None:
            x = self.merge(x, outputs[self.source])
        z = self.latents(x.shape[0]) if self.latents is not None else None
        for kind, step in zip(self.kinds, self.steps, strict=True):
            if kind == SCOPE_DATA:
                x = step(x)
            elif kind == "read":
                z = step(z, x, self.prefix)
            elif kind == "write":
                x = step(x, z, self.prefix)
            else:
                z = step(z)
        return x


def _block(roles: dict[str, PlannedOp], block: Block, drop_path: float) -> nn.Module:
    def branch(role: str, residual: bool = True) -> nn.Module:
        item = roles[role]
        assert item.op is not None
        ctx = item.ctx
        built = Branch(
            block.norm,
            instantiate(item),
            item.op,
            ctx.dim,
            ctx.grid,
            ctx.prefix,
            block.layer_scale,
            drop_path,
            residual,
        )
        if block.tokens != TOKENS_PREFIX:
            return built
        # the plan gives the channel branch the prefix tokens as its whole (1-D) grid
        reads_all = role == "token_mixer"
        prefix = ctx.prefix if reads_all else ctx.grid[0]
        return PrefixOnly(built, prefix, reads_all=reads_all)

    channel = branch("channel_mixer") if "norm2" in roles else None
    if "token_mixer" not in roles:  # token mixer 'none': the channel branch is the block
        assert channel is not None
        return channel
    return MixerBlock(branch("token_mixer", block.residual), channel)


def build_model(
    spec: ArchSpec, *, seed: int = 0, drop_path_rate: float = 0.0, quantize: bool = True
) -> MixNet:
    """Builds the model of ``spec``; the same spec and seed give bit-identical weights.

    ``quantize`` (default) fake-quantizes it as the spec's quantization policy says
    (`search_space.nn.quant.policy.apply_policy`; same parameters and state dict); ``False``
    builds the float model, e.g. to train it before post-training quantization.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MixNet(spec, drop_path_rate=drop_path_rate)
    if quantize and not all(q.is_float for q in _policies(spec)):
        from search_space.nn.quant.policy import apply_policy

        apply_policy(model, spec)
    return model


def _policies(spec: ArchSpec) -> list[Quant]:
    return [spec.boundary_quant, *(b.quant for b in spec.blocks)]


def example_input(spec: ArchSpec, batch_size: int = 2, *, seed: int = 0) -> torch.Tensor:
    """A random input batch the model of ``spec`` accepts: images, token ids or feature vectors."""
    gen = torch.Generator().manual_seed(seed)
    inp = spec.input
    if inp.kind == "image":
        return torch.randn(batch_size, inp.channels, *inp.resolution, generator=gen)
    if inp.vocab_size:
        return torch.randint(0, inp.vocab_size, (batch_size, inp.seq_len), generator=gen)
    return torch.randn(batch_size, inp.seq_len, inp.feature_dim, generator=gen)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def summary(model: nn.Module) -> list[dict[str, Any]]:
    """Parameter count per top-level child, for the CLI's model summary."""
    return [
        {"module": name, "params": count_params(child)} for name, child in model.named_children()
    ]
