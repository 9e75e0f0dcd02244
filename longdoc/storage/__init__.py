"""Storage: the SQLite catalog, FAISS vector files and the write lock (the KV store, which needs torch, is
storage.kvstore). The names load lazily, so the reader's KV store imports on a machine without FAISS or
sqlite-utils (a GPU box timing the reader)."""
_LAZY = {"Catalog": ".catalog", "VectorStore": ".vectors", "write_lock": ".lock"}
__all__ = ["Catalog", "VectorStore", "write_lock"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'longdoc.storage' has no attribute {name!r}")
