"""Head modules: ``(B, P + N, C)`` tokens to ``(B, num_classes)`` logits, or to next-token logits
``(B, N, vocab)`` (`LMHead`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
    `tie_to` with the stem once both exist. The head reads the table from the embedding at every
    call instead of holding it as a parameter of its own, so the table is one parameter of one
    module (counted once, one state-dict entry) and a supernet's `functional_call`, which
    replaces ``stem.embed.weight`` by its slice, reaches the head too.
    The tied logits are scaled by C^-1/2, as T5 does with tied embeddings: the table's entries
    are unit-variance embeddings, so unscaled logits of normed features would start with a
    standard deviation of about sqrt(C) (a loss near 40 at C = 64); the product is elementwise,
    no MAC.
    Cost: norm over N C elements, N C vocab MACs; params of the norm, C vocab unless tied, vocab
    with ``bias``.
    """

    def __init__(
        self, dim: int, num_classes: int, *, prefix: int, norm: str, tie: bool, bias: bool
    ) -> None:
        super().__init__()
        self.num_prefix, self.tie = prefix, tie
        self.norm = make_norm(norm, dim)
        self.fc: nn.Linear | None = None if tie else nn.Linear(dim, num_classes, bias=bias)
        self.bias = nn.Parameter(torch.zeros(num_classes)) if tie and bias else None
        self.shape = (num_classes, dim)
        self.scale = dim**-0.5
        # the embedding in a list: a reference, not a submodule (its table belongs to the stem)
        self._embedding: list[nn.Embedding] = []

    def tie_to(self, stem: nn.Module) -> None:
        """Reads the output weight from ``stem.embed`` (a ``TokenEmbed``'s ``(vocab, C)``
        table) from now on."""
        if not self.tie:
            return
        embed = getattr(stem, "embed", None)
        if not isinstance(embed, nn.Embedding) or tuple(embed.weight.shape) != self.shape:
            raise ValueError(f"tie: the stem has no token embedding of shape {self.shape}")
        self._embedding[:] = [embed]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x[:, self.num_prefix :])
        if self.fc is not None:
            return self.fc(h)  # type: ignore[no-any-return]
        if not self._embedding:
            raise RuntimeError("a tied LM head runs only after tie_to(stem) (build_model does it)")
        return F.linear(h * self.scale, self._embedding[0].weight, self.bias)
