"""Retrieval over an index: dense, MRAG multi-head, BM25 and hybrid fusion."""
from .filters import Filters
from .hit import Hit
from .searcher import MODES, Searcher

__all__ = ["Filters", "Hit", "MODES", "Searcher"]
