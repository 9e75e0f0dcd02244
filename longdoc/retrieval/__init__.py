"""Retrieval over an index: dense, MRAG multi-head, BM25 and hybrid fusion. The names load lazily, so the
reader (which needs only Hit) imports on a machine without FAISS."""
from ..lazy import lazy_names

_LAZY = {"Filters": ".filters", "Hit": ".hit", "MODES": ".searcher", "Searcher": ".searcher"}
__all__ = ["Filters", "Hit", "MODES", "Searcher"]

__getattr__ = lazy_names(__name__, _LAZY)
