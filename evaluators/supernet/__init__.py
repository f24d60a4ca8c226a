"""Weight-sharing supernet: one set of shared weights for a declared space, its training recipe
(sandwich rule with in-place distillation, and the SPOS baseline), and the ``supernet``
evaluator that scores specs with inherited weights. See docs/supernet.md."""

from evaluators.supernet.network import Supernet
from evaluators.supernet.rules import supported

__all__ = ["Supernet", "supported"]
