"""One writer per index: an OS file lock, released by the kernel even when the writer is killed."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import IndexLockedError
from .files import writing


@contextmanager
def write_lock(index_dir: Path):
    lock_path = Path(index_dir) / "write.lock"
    lock = FileLock(str(lock_path), timeout=0, thread_local=False)
    try:
        with writing(lock_path):
            lock.acquire()
    except Timeout:
        raise IndexLockedError(
            f"index {index_dir} is locked: another longdoc process is writing to it "
            f"(lock file {lock_path}); wait for it to finish"
        ) from None
    try:
        with writing(lock_path):
            Path(str(lock_path) + ".pid").write_text(str(os.getpid()))
        yield
    finally:
        lock.release()
