"""Errors a user can act on. Each names the file or index and the cause."""

from .paths import shown


class LongdocError(Exception):
    """Base class: the CLI prints these as one line, without a traceback."""


class IndexLockedError(LongdocError):
    """Another process is writing to the same index."""


class IndexNotFoundError(LongdocError):
    """The index directory holds no catalog."""


class IndexDamagedError(LongdocError):
    """A stored file of the index (its catalog) cannot be read; the message names it and the fix."""


class IndexMismatchError(LongdocError):
    """The index was built with settings (embedder, dims) that differ from the ones asked for."""


class SkippedFile(LongdocError):
    """A file that cannot be indexed; the message is the one-line reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)  # the real path (a name that is not UTF-8 keeps its bytes as surrogates)
        self.reason = reason
        super().__init__(f"{shown(self.path)}: {reason}")

    def __reduce__(self):  # travels from Ray workers intact
        return SkippedFile, (self.path, self.reason)


class ModelError(LongdocError):
    """A model name that cannot be resolved or loaded."""
