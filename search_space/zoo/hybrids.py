"""Hybrid models (conv + attention/SSM in one network); filled as their ops land."""
