"""Declaring search spaces: parsing, conditional dimensions, patterns, sampling and counting."""

from search_space.declare.loader import load_space
from search_space.declare.schema import Constraint
from search_space.declare.space import Dim, SearchSpace

__all__ = ["Constraint", "Dim", "SearchSpace", "load_space"]
