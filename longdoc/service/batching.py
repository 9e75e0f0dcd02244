"""Concurrent queries share one forward pass of the embedder.

The first request thread to find the encoder idle becomes the leader: it encodes every query queued
by then in one batch, hands each waiting thread its rows, and repeats until the queue is empty. Results
are kept in a small cache, so the search that follows (inside the index lock) does not run the model."""
from __future__ import annotations

import threading
from collections import OrderedDict


class BatchingEncoder:
    def __init__(self, embedder, max_batch: int = 64, cache_size: int = 1024):
        self._embedder = embedder
        self._max_batch = max_batch
        self._pending: list[dict] = []
        self._cv = threading.Condition()
        self._busy = False
        self._cache: OrderedDict[str, tuple] = OrderedDict()
        self._cache_size = cache_size
        self.batches = 0  # forward passes run for queries
        self.queries = 0  # queries encoded in them

    def __getattr__(self, name):  # everything else is the wrapped embedder's (dim, heads, fingerprint, ...)
        return getattr(self._embedder, name)

    def encode(self, texts: list[str], on_batch=None):
        if len(texts) != 1 or on_batch is not None:  # indexing: the embedder batches it already
            return self._embedder.encode(texts, on_batch)
        text = texts[0]
        with self._cv:
            if text in self._cache:
                self._cache.move_to_end(text)
                return self._cache[text]
            slot = {"text": text, "done": False}
            self._pending.append(slot)
            while self._busy and not slot["done"]:
                self._cv.wait()
            if not slot["done"]:
                self._busy = True
        if not slot["done"]:
            self._lead()
        if "error" in slot:
            raise slot["error"]
        return slot["result"]

    def _lead(self) -> None:
        while True:
            with self._cv:
                batch, self._pending = self._pending[:self._max_batch], self._pending[self._max_batch:]
                if not batch:
                    self._busy = False
                    self._cv.notify_all()
                    return
            try:
                dense, heads = self._embedder.encode([s["text"] for s in batch])
                for i, s in enumerate(batch):
                    s["result"] = (dense[i:i + 1], heads[i:i + 1])
            except BaseException as e:  # noqa: BLE001 - every waiter gets the error, not a hang
                for s in batch:
                    s["error"] = e
            with self._cv:
                self.batches += 1
                self.queries += len(batch)
                for s in batch:
                    s["done"] = True
                    if "result" in s:
                        self._cache[s["text"]] = s["result"]
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
                self._cv.notify_all()
