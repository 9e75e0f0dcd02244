"""`longdoc eval run --ray`: the QA questions spread over Ray actors, each holding the index and one
reader; this process keeps scoring retrieval and writing every result (the one writer), in order."""
from __future__ import annotations

from pathlib import Path

from ..config import Settings
from .cluster import connect


def answer_on_ray(address: str, index_dir: Path, settings: Settings, jobs: list[tuple]):
    """Yield each job's rows, in job order, as runner.answer_cells would return them here."""
    import ray
    from ray.util import ActorPool

    connect(address)

    @ray.remote(num_cpus=1)
    class QAWorker:
        def __init__(self, index_dir: str, settings: Settings):
            import torch

            from .. import open_index

            torch.set_num_threads(1)  # one core per actor: the pool is the parallelism
            self.index = open_index(index_dir, settings=settings)

        def answer(self, question, golds, gold_docs, cells):
            from ..evaluation.runner import answer_cells

            return answer_cells(self.index, question, golds, gold_docs, cells)

    cpus = int(ray.cluster_resources().get("CPU", 1))
    actors = [QAWorker.remote(str(Path(index_dir).resolve()), settings) for _ in range(max(1, min(cpus, len(jobs))))]
    pool = ActorPool(actors)
    try:
        yield from pool.map(lambda actor, job: actor.answer.remote(*job[1:]), jobs)
    finally:
        for actor in actors:
            ray.kill(actor)
