"""Writing stored files: atomically (temp file, fsync, rename), and a full disk or a missing write
permission reported as one line naming the file (StorageError)."""
from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from ..errors import storage_error

_UMASK = os.umask(0o022)  # read once (setting it is the only way to read it), then put back
os.umask(_UMASK)


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a full disk or a missing write permission met inside the block into StorageError naming path."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as e:
        error = storage_error(path, e)
        if error is None:
            raise
        raise error from None


@contextmanager
def atomic_file(path: Path, shared: bool = False) -> Iterator[BinaryIO]:
    """An open binary file that replaces path when the block ends, so a crash leaves the old file or the
    new one, never part of one. The temp file is path + ".tmp", which the next write replaces (one
    writer: the index's lock holder), or with shared=True a unique name, for files that several threads
    may write at once. A failed write leaves no temp file."""
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if shared:
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.fchmod(fd, 0o666 & ~_UMASK)  # as open() would make it: others may read a shared index
            tmp = Path(name)
        else:
            tmp = path.with_name(path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


def atomic_write(path: Path, data: bytes, shared: bool = False) -> None:
    """atomic_file for bytes in hand."""
    with atomic_file(path, shared) as f:
        f.write(data)
