"""Head modules: ``(B, P + N, C)`` tokens to ``(B, num_classes)`` logits, or to next-token logits
``(B, N, vocab)`` (`LMHead`)."""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.activations import make_activation
from search_space.nn.norms import make_norm


class Classifier(nn.Module):
    """Pooled classifier: norm (before or after pooling), optional pre-logits layer, linear;
    optionally a distillation classifier and token labelling (see `search_space.ops.heads`)."""

    def __init__(
        self,
        dim: int,
        num_classes: int,
        *,
        prefix: int,
        pool: str,
        norm: str,
        norm_position: str,
        act: str,
        hidden: int,
        hidden_act: str,
        distill: bool = False,
        token_label: bool = False,
    ) -> None:
        super().__init__()
        self.num_prefix, self.pool, self.pre_pool = prefix, pool, norm_position == "pre_pool"
        self.norm = nn.Sequential(make_norm(norm, dim), make_activation(act))
        self.pre_logits: nn.Module = nn.Identity()
        if hidden:
            self.pre_logits = nn.Sequential(nn.Linear(dim, hidden), make_activation(hidden_act))
        self.fc = nn.Linear(hidden or dim, num_classes)
        # DeiT-style distillation head; inference averages the two classifiers' logits
        self.dist = nn.Linear(hidden or dim, num_classes) if distill else None
        # token labelling (Jiang et al., "All Tokens Matter", LV-ViT; VOLO, SpectFormer-H): a
        # classifier on every grid token whose strongest logit per class joins the output
        self.aux = nn.Linear(dim, num_classes) if token_label else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_pool:
            x = self.norm(x)
        tokens = x[:, self.num_prefix :]
        x = x[:, 0] if self.pool == "cls" else tokens.mean(dim=1)
        if not self.pre_pool:
            x = self.norm(x)
        x = self.pre_logits(x)
        logits = self.fc(x) if self.dist is None else (self.fc(x) + self.dist(x)) / 2
        if self.aux is not None:
            logits = logits + 0.5 * self.aux(tokens).amax(dim=1)
        return logits


class LMHead(nn.Module):
    """Causal LM head: drops the prefix tokens, norms each position and maps it to next-token
    logits, ``(B, P + N, C) -> (B, N, vocab)``.

    With ``tie`` the output weight is the token embedding's table (GPT-2): the builder calls
    `tie_to` with the stem once both exist, and the table's parameters count once (in the stem).
    Cost: norm over N C elements, N C vocab MACs; params of the norm, C vocab unless tied, vocab
    with ``bias``.
    """

    def __init__(
        self, dim: int, num_classes: int, *, prefix: int, norm: str, tie: bool, bias: bool
    ) -> None:
        super().__init__()
        self.num_prefix, self.tie = prefix, tie
        self.norm = make_norm(norm, dim)
        self.fc = nn.Linear(dim, num_classes, bias=bias)
        if tie:  # replaced by the embedding's table in tie_to; no weight of its own meanwhile
            del self.fc.weight

    def tie_to(self, stem: nn.Module) -> None:
        """Uses ``stem.embed.weight`` (a ``TokenEmbed``'s ``(vocab, C)`` table) as the weight."""
        if not self.tie:
            return
        embed = getattr(stem, "embed", None)
        if not isinstance(embed, nn.Embedding) or embed.weight.shape != (
            self.fc.out_features,
            self.fc.in_features,
        ):
            raise ValueError("tie: the stem has no token embedding of the head's shape")
        self.fc.weight = embed.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x[:, self.num_prefix :]))
