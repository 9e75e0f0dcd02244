"""Storage: the SQLite catalog, FAISS vector files and the write lock (the KV store, which needs torch, is storage.kvstore)."""
from .catalog import Catalog
from .lock import write_lock
from .vectors import VectorStore

__all__ = ["Catalog", "VectorStore", "write_lock"]
