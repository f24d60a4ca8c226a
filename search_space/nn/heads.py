"""Head modules: ``(B, P + N, C)`` tokens to ``(B, num_classes)`` logits."""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.activations import make_activation
from search_space.nn.norms import make_norm


class Classifier(nn.Module):
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
