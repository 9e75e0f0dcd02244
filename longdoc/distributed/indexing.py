"""`longdoc index --ray`: Ray Data reads and chunks the files on the cluster, an actor pool embeds the
chunks (on GPUs where the cluster has them), and this process, the one writer, commits to the catalog
and writes the FAISS files exactly as a local run does."""
from __future__ import annotations

import pickle

import numpy as np

from ..config import ChunkSettings, Settings
from ..errors import SkippedFile
from .cluster import actor_pool, connect


class _Parser:
    """A Ray Data actor: one tokenizer (the embedder's, for the chunker) per actor, loaded once, and a
    parse child under the time limit, as a local run has."""

    def __init__(self, tokenizer: str, chunk: ChunkSettings, max_bytes: int, parse_timeout_s: float):
        from ..indexing.chunking import Chunker
        from ..indexing.pipeline import parser_for
        from ..models.sentence_encoder import load_tokenizer

        self.parse = parser_for(Chunker(load_tokenizer(tokenizer), chunk), parse_timeout_s)
        self.max_bytes = max_bytes

    def __call__(self, row: dict) -> dict:
        from ..indexing.pipeline import prepare_file

        known = row["known_sha"] or None
        try:
            outcome = prepare_file(row["path"], known, self.max_bytes, self.parse)
        except SkippedFile as e:
            outcome = (e, {})
        return {"i": row["i"], "payload": pickle.dumps(outcome)}


class _Embedder:
    """A Ray actor holding one embedder (a GPU each when the cluster has them), kept for the whole run."""

    def __init__(self, name: str, batch_size: int, pooling: str | None):
        import torch

        from ..indexing.embedder import MultiHeadEmbedder

        torch.set_num_threads(1)  # one core per actor: the pool is the parallelism
        self.embedder = MultiHeadEmbedder(name, "cuda" if torch.cuda.is_available() else "cpu", batch_size, pooling)

    def encode(self, texts: list[str]):
        return self.embedder.encode(texts)


class RayEngine:
    def __init__(self, address: str):
        connect(address)

    def prepare(self, files: list[str], known: dict, chunker, max_bytes: int, parse_timeout_s: float, on_file):
        import ray.data

        rows = [{"i": i, "path": p, "known_sha": known[p][1] if p in known else ""} for i, p in enumerate(files)]
        if not rows:
            return
        chunker = chunker()  # the workers hash every file, so the tokenizer is needed up front
        chunk = ChunkSettings(tokens=chunker.tokens, overlap=chunker.overlap)
        args = (chunker.tokenizer.name_or_path, chunk, max_bytes, parse_timeout_s)
        ds = ray.data.from_items(rows).map(_Parser, fn_constructor_args=args, compute=actor_pool(len(rows)))
        results = sorted(ds.take_all(), key=lambda r: r["i"])  # file order, as a local run commits them
        for row in results:
            on_file()
            outcome, timings = pickle.loads(row["payload"])
            yield files[row["i"]], outcome, timings

    def encoder(self, embedder, settings: Settings):
        """Embedding on a pool of actors started once per run (each loads the model once); slices of a
        few batches go out in order and come back in order."""
        import ray
        from ray.util import ActorPool

        step = settings.batch_size * 4
        pools: list[ActorPool] = []

        def pool() -> ActorPool:  # started on first use: parsing (which runs first) has the CPUs until then
            if not pools:
                gpus = ray.cluster_resources().get("GPU", 0)
                count = int(gpus) if gpus >= 1 else int(ray.cluster_resources().get("CPU", 1))
                actor = ray.remote(num_cpus=1, num_gpus=1 if gpus >= 1 else 0)(_Embedder)
                self._actors = [actor.remote(settings.embedder, settings.batch_size, settings.embed_pooling)
                                for _ in range(max(1, count))]
                pools.append(ActorPool(self._actors))
            return pools[0]

        def encode(texts: list[str], on_batch=None):
            dense = np.zeros((len(texts), embedder.dim), np.float32)
            heads = np.zeros((len(texts), embedder.heads, embedder.head_dim), np.float32)
            slices = [texts[i:i + step] for i in range(0, len(texts), step)]
            for n, (d, h) in enumerate(pool().map(lambda a, part: a.encode.remote(part), slices)):
                dense[n * step:n * step + len(d)], heads[n * step:n * step + len(h)] = d, h
                if on_batch:
                    on_batch(len(d))
            return dense, heads
        return encode

    def close(self) -> None:
        """Free the embedding actors' CPUs and GPUs for the next job on the cluster."""
        import ray

        for actor in getattr(self, "_actors", []):
            ray.kill(actor)
        self._actors = []
