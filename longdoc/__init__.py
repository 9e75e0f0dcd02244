"""longdoc: retrieval-augmented long-document search and question answering."""
from .config import Settings, load_settings
from .errors import IndexLockedError, IndexMismatchError, IndexNotFoundError, LongdocError, SkippedFile
from .index import Index, open_index
from .indexing.pipeline import IndexReport, index_paths
from .retrieval import Hit


def read(path, question: str, attention: str = "retrieval", **kwargs):
    """Answer a question over a whole document with no retrieval stage (see longdoc.reader.read)."""
    from .reader.read import read as _read

    return _read(path, question, attention, **kwargs)


__version__ = "0.1.0"
__all__ = ["Hit", "Index", "IndexLockedError", "IndexMismatchError", "IndexNotFoundError", "IndexReport",
           "LongdocError", "Settings", "SkippedFile", "index_paths", "load_settings", "open_index", "read"]
