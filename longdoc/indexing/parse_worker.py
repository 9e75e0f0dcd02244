"""Loading and chunking files in a child process, under a time limit per file.

A parser that hangs or loops on one hostile or broken file (a PDF whose objects refer to each other, a
pathological HTML tree) would stall the whole run, and no thread can be stopped from outside. In a child
process it can: past the limit the child is killed, the file is skipped with one line, and the next file
goes to a fresh child. A parser that crashes the child (a segfault, the kernel's OOM killer) skips only
its file too. The child is started on the first file that needs parsing (an unchanged folder starts none)
and kept for the next runs in this process with the same tokenizer."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import traceback
from multiprocessing.connection import Connection

from ..errors import LongdocError, SkippedFile
from .chunking import Chunker
from .loaders import load_document

_START_TIMEOUT_S = 120
# A child keeps the memory a big file took (CPython seldom hands freed memory back to the system), and
# it lives beside the indexer while that embeds and writes vectors; after a file this large it is ended,
# and the next file starts a fresh one (about a second).
_RETIRE_AFTER_BYTES = 8 * 2**20


def load_and_chunk(path: str, data: bytes, chunker: Chunker):
    doc = load_document(path, data)
    return doc, chunker.chunk(doc)


def _serve(conn: Connection) -> None:
    """The child: take the chunker, then parse what the parent sends, one file at a time, until the
    socket closes."""
    chunker = conn.recv()
    conn.send("ready")  # its start-up (imports, the tokenizer) is not counted against the first file
    while True:
        try:
            path, data = conn.recv()
        except (EOFError, OSError):
            return
        try:
            result = (True, load_and_chunk(path, data, chunker))
        except SkippedFile as e:
            result = (False, e)
        except Exception:  # noqa: BLE001 - a bug to see: the parent raises it with the child's traceback
            # as text (a library's exception class may not survive unpickling on the other side)
            result = (False, RuntimeError(f"parsing {path} failed in the parse child:\n{traceback.format_exc()}"))
        try:
            conn.send(result)
        except OSError:  # the parent is gone (killed): nobody to answer
            return


class ParseWorker:
    def __init__(self, chunker: Chunker, timeout_s: float):
        self.chunker, self.timeout_s = chunker, timeout_s
        self._proc = self._conn = None
        self._lock = threading.Lock()

    def parse(self, path: str, data: bytes):
        """(document, chunks) for one file's bytes; SkippedFile when it takes over timeout_s or kills its
        parser. Threads take turns: two indexes written at once from one process share the child."""
        with self._lock:
            return self._parse(path, data)

    def _parse(self, path: str, data: bytes):
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        try:
            self._conn.send((path, data))
            if not self._conn.poll(self.timeout_s):
                self.close()
                raise SkippedFile(path, f"took over {self.timeout_s:g} s to load and chunk; skipped (the limit is "
                                        f"the parse_timeout_s setting)")
            ok, value = self._conn.recv()
        except (EOFError, OSError):
            code = self._proc.wait() if self._proc is not None else None
            self.close()
            raise SkippedFile(path, f"its parser crashed (exit code {code}); skipped") from None
        if len(data) > _RETIRE_AFTER_BYTES:
            self.close()
        if not ok:
            raise value
        return value

    def _start(self) -> None:
        # A new interpreter (`python -m` this module), not multiprocessing: a fork would copy torch's and
        # the tokenizer's threads mid-flight, and multiprocessing's spawn re-runs the caller's script
        # (one without a __main__ guard would index again inside the child).
        ours, theirs = socket.socketpair()
        with theirs:
            self._proc = subprocess.Popen([sys.executable, "-m", __name__, str(theirs.fileno())],
                                          pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._conn = Connection(ours.detach())
        try:
            self._conn.send(self.chunker)
            ready = self._conn.poll(_START_TIMEOUT_S) and self._conn.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.close()
            raise LongdocError(f"the file-parsing child process did not start in {_START_TIMEOUT_S} s")

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._conn.close()
        self._proc = self._conn = None


_shared: dict = {}
_shared_lock = threading.Lock()


def shared_worker(chunker: Chunker, timeout_s: float) -> ParseWorker:
    """The process's parse worker for this tokenizer and chunk size (one at a time: a new key replaces it)."""
    # The pid too: a forked copy of this process must start its own child (the parent's is not its to use).
    key = (os.getpid(), chunker.tokenizer.name_or_path, chunker.tokens, chunker.overlap)
    with _shared_lock:
        worker = _shared.get(key)
        if worker is None:
            for (pid, *_), old in _shared.items():
                if pid == os.getpid():
                    with old._lock:  # after a parse in flight on another thread
                        old.close()
            _shared.clear()
            worker = _shared[key] = ParseWorker(chunker, timeout_s)
        worker.timeout_s = timeout_s
        return worker


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
