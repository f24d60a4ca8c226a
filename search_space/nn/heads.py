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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_pool:
            x = self.norm(x)
        x = x[:, 0] if self.pool == "cls" else x[:, self.num_prefix :].mean(dim=1)
        if not self.pre_pool:
            x = self.norm(x)
        x = self.pre_logits(x)
        if self.dist is not None:
            return (self.fc(x) + self.dist(x)) / 2
        return self.fc(x)
