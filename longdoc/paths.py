"""File paths in the catalog, stored losslessly and shown readably.

A POSIX file name is bytes; Python hands back the ones that are not UTF-8 as text with lone surrogates
(os.fsdecode), which SQLite's TEXT cannot hold. Such a path is stored as a BLOB of its exact bytes: SQLite
keeps BLOB and TEXT values distinct, so no name can collide with another, and indexing compares the real
paths. What is shown (search hits, document lists, the service's JSON) escapes the odd bytes: \\xff."""
from __future__ import annotations

import os
from pathlib import Path


def to_db(path: str) -> str | bytes:
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def from_db(value: str | bytes) -> str:
    """The real path (lone surrogates for bytes that are not UTF-8), to compare with files on disk."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def shown(value: str | bytes) -> str:
    """A printable form: bytes that are not UTF-8 as \\xNN."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


def as_path(given, what: str) -> Path:
    """A path argument checked: LongdocError for anything that is not one (None, a number, "")."""
    if not isinstance(given, (str, os.PathLike)) or not os.fspath(given):
        from .errors import LongdocError  # errors shows paths with this module

        raise LongdocError(f"{what} must be a path, got {given!r:.80}")
    return Path(given)


def as_path_list(given, what: str) -> list:
    """One path or a list of them; a single string is one path, never its characters (indexing "/")."""
    if isinstance(given, bytes):  # a raw POSIX name, taken as it was before as_path
        return [given]
    if isinstance(given, (str, os.PathLike)):
        return [as_path(given, what)]
    if not isinstance(given, (list, tuple)) or not all(isinstance(p, (str, os.PathLike)) and os.fspath(p)
                                                           for p in given):
        from .errors import LongdocError

        raise LongdocError(f"{what} must be a path or a list of paths, got {given!r:.80}")
    return list(given)
