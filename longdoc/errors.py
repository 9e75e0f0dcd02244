"""Errors a user can act on. Each names the file or index and the cause."""
import errno
import sqlite3

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


class StorageError(LongdocError):
    """A file could not be written: the disk is full (full=True), or the file or its folder is not writable."""

    def __init__(self, message: str, cause: str, full: bool):
        super().__init__(message)
        self.cause = cause
        self.full = full


_FULL = "free some space and run the command again"
_DENIED = "give this user write access to it, or work on a copy it can write"
# errno -> (cause, fix)
_STORAGE_CAUSES = {errno.ENOSPC: ("the disk is full", _FULL), errno.EDQUOT: ("the disk quota is used up", _FULL),
                   errno.EACCES: ("permission denied", _DENIED), errno.EPERM: ("permission denied", _DENIED),
                   errno.EROFS: ("the file system is read-only", _DENIED)}
# SQLite reports these conditions only in its messages.
_SQLITE_CAUSES = {"database or disk is full": errno.ENOSPC, "attempt to write a readonly database": errno.EACCES,
                  "unable to open database file": errno.EACCES}


def storage_error(path, exc: BaseException) -> StorageError | None:
    """The one-line error for a write to `path` that failed with `exc`, or None when `exc` is not a full
    disk or a missing write permission (then it is the caller's to handle)."""
    if isinstance(exc, OSError):
        code = exc.errno
    elif isinstance(exc, sqlite3.OperationalError):
        code = next((c for text, c in _SQLITE_CAUSES.items() if text in str(exc)), None)
    else:
        code = None
    if code not in _STORAGE_CAUSES:
        return None
    cause, fix = _STORAGE_CAUSES[code]
    return StorageError(f"cannot write {shown(str(path))}: {cause}; {fix}", cause, fix == _FULL)
