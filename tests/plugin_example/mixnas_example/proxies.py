"""The plug-in's proxy: the log of the weights' total magnitude (a data-free baseline)."""

from __future__ import annotations

import math

from evaluators.proxies.registry import proxy, weights


@proxy("example_log_weight_mass")
def log_weight_mass(model, inputs, targets, *, spec):
    return math.log1p(float(sum(p.detach().abs().sum() for p in weights(model))))
