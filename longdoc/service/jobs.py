"""Index writes from the service: one writer thread runs add and remove jobs in order, while request
threads keep searching (SQLite WAL; the served FAISS indexes catch up with the catalog's generation)."""
from __future__ import annotations

import itertools
import queue
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Job:
    id: int
    kind: str  # add | remove
    target: str
    state: str = "queued"  # queued | running | done | failed
    submitted: float = field(default_factory=time.time)
    finished: float | None = None
    result: dict = field(default_factory=dict)
    error: str | None = None
    progress: dict = field(default_factory=dict)  # while it runs: what the work reports (files, chunks embedded)

    def as_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "target": self.target, "state": self.state,
                "submitted": self.submitted, "finished": self.finished, "result": self.result, "error": self.error,
                "progress": dict(self.progress)}


class Writer:
    def __init__(self):
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="longdoc-writer", daemon=True)
        self._thread.start()

    def submit(self, kind: str, target: str, work) -> Job:
        job = Job(next(self._ids), kind, target)
        self.jobs[job.id] = job
        self._queue.put((job, work))
        return job

    def pending(self) -> int:
        return sum(j.state in ("queued", "running") for j in self.jobs.values())

    def _run(self) -> None:
        while True:
            job, work = self._queue.get()
            job.state = "running"
            try:
                job.result = work(job) or {}
                job.state = "done"
            except Exception as e:  # noqa: BLE001 - a failed job is reported, the writer goes on
                job.error = str(e)
                job.state = "failed"
            job.finished = time.time()
