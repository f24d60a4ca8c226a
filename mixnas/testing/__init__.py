"""The contract suites every implementation of an extension point passes, for plug-in authors.

mixnas's own contract tests (tests/contracts/) are these functions applied to the built-ins; a
plug-in's tests apply them to its own names, as `optuna.testing` lets a third-party sampler run
Optuna's sampler tests. Each module has ``*_cases(names)`` (pytest parameters for the named items,
every registered one when None) and ``check_*`` functions that assert the contract:

- `mixnas.testing.ops`: token and channel mixers (shape, forward/backward, exact parameters,
  analytic MACs vs counted, documentation; causality: a mixer that declares it never reads later
  positions, any other is refused before an LM head in one line);
- `mixnas.testing.quant`: token and channel mixers under fake quantization at 4, 6 and 8 bits;
- `mixnas.testing.layers`: stems, downsamplers, heads and norms in a minimal network (exact
  parameters, analytic MACs vs counted, forward and backward; `mixnas.testing.analytic`);
- `mixnas.testing.sharing`: every op's weight-sharing rule in a strict supernet;
- `mixnas.testing.proxies`: a finite, deterministic score around every registered token mixer;
- `mixnas.testing.strategies`: ask/tell on a toy space with a known optimum (in the space, no
  repeats, failures, constraints, exact resume, reaching the optimum, declared options);
- `mixnas.testing.evaluators`: an ``ok`` result with the declared finite metrics, determinism, a
  broken spec as a ``failed`` result;
- `mixnas.testing.predictors`: fit/predict on declared-space specs, finite uncertainty,
  determinism.

They need the test extras (pytest, and torch for all but `strategies`). See docs/extending.md.
"""
