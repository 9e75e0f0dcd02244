"""longdoc: retrieval-augmented long-document search and question answering.

The public names load lazily, so `import longdoc.attention` (say, on a GPU box without FAISS) pulls in
neither the index nor its storage."""
from .config import Settings, load_settings
from .errors import IndexLockedError, IndexMismatchError, IndexNotFoundError, LongdocError, SkippedFile, StorageError
from .lazy import lazy_names

__version__ = "0.1.0"
_LAZY = {"Index": ".index", "open_index": ".index", "IndexReport": ".indexing.pipeline",
         "index_paths": ".indexing.pipeline", "Hit": ".retrieval", "read": ".reader.read"}
__all__ = ["Hit", "Index", "IndexLockedError", "IndexMismatchError", "IndexNotFoundError", "IndexReport",
           "LongdocError", "Settings", "SkippedFile", "StorageError", "index_paths", "load_settings", "open_index", "read"]

__getattr__ = lazy_names(__name__, _LAZY)
