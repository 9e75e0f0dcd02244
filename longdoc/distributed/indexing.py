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
    """A Ray Data actor: one tokenizer (the embedder's, for the chunker) per actor, loaded once."""

    def __init__(self, tokenizer: str, chunk: ChunkSettings, max_bytes: int):
        from transformers import AutoTokenizer

        from ..indexing.chunking import Chunker

        self.chunker = Chunker(AutoTokenizer.from_pretrained(tokenizer), chunk)
        self.max_bytes = max_bytes

    def __call__(self, row: dict) -> dict:
        from ..indexing.pipeline import prepare_file

        known = row["known_sha"] or None
        try:
            outcome = prepare_file(row["path"], known, self.chunker, self.max_bytes)
        except SkippedFile as e:
            outcome = (e, {})
        return {"i": row["i"], "payload": pickle.dumps(outcome)}


class _Embedder:
    """A Ray Data actor holding one embedder; a GPU each when the cluster has them."""

    def __init__(self, name: str, batch_size: int):
        import torch

        from ..indexing.embedder import MultiHeadEmbedder

        torch.set_num_threads(1)  # one core per actor: the pool is the parallelism
        self.embedder = MultiHeadEmbedder(name, "cuda" if torch.cuda.is_available() else "cpu", batch_size)

    def __call__(self, batch: dict) -> dict:
        dense, heads = self.embedder.encode([str(t) for t in batch["text"]])
        return {"i": batch["i"], "dense": dense, "heads": heads.reshape(len(heads), -1)}


class RayEngine:
    def __init__(self, address: str):
        connect(address)

    def prepare(self, files: list[str], known: dict, chunker, max_bytes: int, on_file):
        import ray.data

        chunk = ChunkSettings(tokens=chunker.tokens, overlap=chunker.overlap)
        rows = [{"i": i, "path": p, "known_sha": known[p][1] if p in known else ""} for i, p in enumerate(files)]
        if not rows:
            return
        ds = ray.data.from_items(rows).map(_Parser, fn_constructor_args=(chunker.tokenizer.name_or_path, chunk, max_bytes),
                                           compute=actor_pool(len(rows)))
        results = sorted(ds.take_all(), key=lambda r: r["i"])  # file order, as a local run commits them
        for row in results:
            on_file()
            outcome, timings = pickle.loads(row["payload"])
            yield files[row["i"]], outcome, timings

    def encoder(self, embedder, settings: Settings):
        def encode(texts: list[str], on_batch=None):
            import ray.data

            ds = ray.data.from_items([{"i": i, "text": t} for i, t in enumerate(texts)])
            ds = ds.map_batches(_Embedder, fn_constructor_args=(settings.embedder, settings.batch_size),
                                batch_size=settings.batch_size, batch_format="numpy",
                                compute=actor_pool(-(-len(texts) // settings.batch_size)))
            dense = np.zeros((len(texts), embedder.dim), np.float32)
            heads = np.zeros((len(texts), embedder.heads, embedder.head_dim), np.float32)
            for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
                dense[batch["i"]] = batch["dense"]
                heads[batch["i"]] = batch["heads"].reshape(len(batch["i"]), embedder.heads, embedder.head_dim)
                if on_batch:
                    on_batch(len(batch["i"]))
            return dense, heads
        return encode
