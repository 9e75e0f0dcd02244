"""longdoc: retrieval-augmented long-document search and question answering."""
from .config import Settings, load_settings
from .errors import IndexLockedError, IndexMismatchError, IndexNotFoundError, LongdocError, SkippedFile
from .index import Index, open_index
from .indexing.pipeline import IndexReport, index_paths
from .retrieval import Hit

__version__ = "0.1.0"
__all__ = ["Hit", "Index", "IndexLockedError", "IndexMismatchError", "IndexNotFoundError", "IndexReport",
           "LongdocError", "Settings", "SkippedFile", "index_paths", "load_settings", "open_index"]
