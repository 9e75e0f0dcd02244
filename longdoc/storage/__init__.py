"""Storage: the SQLite catalog, FAISS vector files and the write lock (the KV store, which needs torch, is
storage.kvstore). The names load lazily, so the reader's KV store imports on a machine without FAISS
(a GPU box timing the reader)."""
from ..lazy import lazy_names

_LAZY = {"Catalog": ".catalog", "VectorStore": ".vectors", "write_lock": ".lock"}
__all__ = ["Catalog", "VectorStore", "write_lock"]

__getattr__ = lazy_names(__name__, _LAZY)
