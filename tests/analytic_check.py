"""The built-model-vs-analytic check now lives in `mixnas.testing.analytic` (plug-ins use it)."""

from mixnas.testing.analytic import built_matches_analytic  # noqa: F401
