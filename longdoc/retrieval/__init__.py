"""Retrieval over an index: dense and BM25 so far."""
from .bm25 import bm25_search
from .dense import dense_search
from .hit import Hit

__all__ = ["Hit", "bm25_search", "dense_search"]
