"""Retrieval over an index: dense, MRAG multi-head, BM25 and hybrid fusion. The names load lazily, so the
reader (which needs only Hit) imports on a machine without FAISS or sqlite-utils."""
_LAZY = {"Filters": ".filters", "Hit": ".hit", "MODES": ".searcher", "Searcher": ".searcher"}
__all__ = ["Filters", "Hit", "MODES", "Searcher"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'longdoc.retrieval' has no attribute {name!r}")
