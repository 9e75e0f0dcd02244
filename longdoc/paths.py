"""File paths in the catalog, stored losslessly and shown readably.

A POSIX file name is bytes; Python hands back the ones that are not UTF-8 as text with lone surrogates
(os.fsdecode), which SQLite's TEXT cannot hold. Such a path is stored as a BLOB of its exact bytes: SQLite
keeps BLOB and TEXT values distinct, so no name can collide with another, and indexing compares the real
paths. What is shown (search hits, document lists, the service's JSON) escapes the odd bytes: \\xff."""
from __future__ import annotations

import os


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
